"""The streaming CSV reader: header checks, transcoding, record numbers and physical lines."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tasks.csv.reader import (
    BLOCK_BYTES,
    EXTRA,
    FIELDS,
    LINE,
    MAX_RECORD_BYTES,
    RECORD,
    CsvFormat,
    CsvHeader,
    HeaderLimits,
    iter_batches,
    open_csv,
    read_header,
    to_utf8,
)
from tasks.errors import BadFileError


def write(folder: Path, data: bytes | str, name: str = "in.csv") -> Path:
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read_all(
    path: Path,
    delimiter: str = ",",
    batch_rows: int = 1_000,
    block_bytes: int = BLOCK_BYTES,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> tuple[CsvHeader, list[pl.DataFrame]]:
    header = read_header(path, delimiter, name=path.name)
    fmt = CsvFormat(delimiter=delimiter, batch_rows=batch_rows)  # type: ignore[arg-type]
    batches = iter_batches(
        path, fmt, header, name=path.name, block_bytes=block_bytes, max_record_bytes=max_record_bytes
    )
    return header, list(batches)


def records(batches: list[pl.DataFrame]) -> list[dict[str, object]]:
    return [row for batch in batches for row in batch.to_dicts()]


# -- header -----------------------------------------------------------------------------------------


def test_header_names_are_read_unquoted_and_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, '"Name; full";" Price ";Stock\n"a";1;2\n')
    header = read_header(path, ";", name="in.csv")
    assert header == CsvHeader(["Name; full", "Price", "Stock"], lines=1)


def test_header_after_a_utf8_bom_has_a_clean_first_name(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffStock External Id,Stock Number\nS1,3\n".encode())
    header, batches = read_all(path)
    assert header.columns == ["Stock External Id", "Stock Number"]
    assert records(batches) == [{RECORD: 1, "Stock External Id": "S1", "Stock Number": "3", LINE: 2}]


def test_header_spanning_two_lines_moves_the_first_record_down(tmp_path: Path) -> None:
    path = write(tmp_path, '"Stock\nExternal Id",Number\nS1,3\nS2,4\n')
    header, batches = read_all(path)
    assert header == CsvHeader(["Stock\nExternal Id", "Number"], lines=2)
    assert [(row[RECORD], row[LINE]) for row in records(batches)] == [(1, 3), (2, 4)]


INVALID_HEADERS = [
    pytest.param(b"", ",", "in.csv: the file is empty; a CSV file needs a header line.", id="empty-file"),
    pytest.param(
        b"\n\n", ",", "in.csv: the file is empty; a CSV file needs a header line.", id="blank-lines"
    ),
    pytest.param(
        b"a;b;c\n1;2;3\n",
        ",",
        "in.csv: the header is a single column, 'a;b;c'. The file looks ';'-delimited but the job says ',': "
        "set `csv.delimiter: ';'`.",
        id="semicolon-file-read-with-comma",
    ),
    pytest.param(
        b"a,b,c\n1,2,3\n",
        ";",
        "in.csv: the header is a single column, 'a,b,c'. The file looks ','-delimited but the job says ';': "
        "set `csv.delimiter: ','`.",
        id="comma-file-read-with-semicolon",
    ),
    pytest.param(
        b"Name,Price,Name,Stock,Stock\n",
        ",",
        "in.csv: the header repeats column(s) ['Name', 'Stock']; each column name must be unique. "
        "Rename or remove the repeated columns in the file.",
        id="duplicate-names",
    ),
    pytest.param(
        b"Name, Name\n1,2\n",
        ",",
        "in.csv: the header repeats column(s) ['Name']",
        id="duplicate-names-after-stripping-blanks",
    ),
    pytest.param(
        b"Name,Pr\x00ice\n",
        ",",
        "in.csv: the header holds NUL bytes; this is not a text CSV file.",
        id="nul-in-header",
    ),
]


@pytest.mark.parametrize(("data", "delimiter", "message"), INVALID_HEADERS)
def test_invalid_header_is_explained(tmp_path: Path, data: bytes, delimiter: str, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(BadFileError) as caught:
        read_header(path, delimiter, name="in.csv")
    assert str(caught.value).startswith(message)


def test_a_crlf_or_cr_header_ends_at_its_line_end(tmp_path: Path) -> None:
    for data in ("Key;Value\r\nK1;1\r\n", "Key;Value\rK1;1\r"):
        assert read_header(write(tmp_path, data), ";", name="in.csv") == CsvHeader(["Key", "Value"], 1)


@pytest.mark.parametrize(
    "column",
    [
        "_record",
        "_line",
        "_fields",
        "_extra_field",
        "_span",
        "_code0",
        "_parsed12",
        "_failed",
        "_custom_fields_given",
    ],
)
def test_a_column_named_as_an_internal_one_is_refused(tmp_path: Path, column: str) -> None:
    path = write(tmp_path, f"Key,{column}\nK1,x\n")
    with pytest.raises(BadFileError) as caught:
        read_header(path, ",", name="in.csv")
    assert str(caught.value) == (
        f"in.csv: the header has column(s) [{column!r}], a name the import reserves for its own "
        "bookkeeping. Rename those columns in the file (and in the job's `mapping`, if mapped)."
    )


def test_names_that_only_look_internal_are_columns_like_any_other(tmp_path: Path) -> None:
    path = write(tmp_path, "Key,_records,_Line,record,_code\nK1,1,2,3,4\n")
    assert read_header(path, ",", name="in.csv").columns == ["Key", "_records", "_Line", "record", "_code"]


# -- width limits: a header is read in bounded steps and refused at the first limit it passes -------


class CountedReads:
    """Counts the bytes read through `Path.open` while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read = 0
        real_open = Path.open

        def counting_open(path: Path, *args: Any, **kwargs: Any) -> Any:
            return _Counted(real_open(path, *args, **kwargs), self)

        monkeypatch.setattr(Path, "open", counting_open)


class _Counted:
    def __init__(self, handle: Any, counter: CountedReads) -> None:
        self._handle, self._counter = handle, counter

    def read(self, *args: Any) -> Any:
        data = self._handle.read(*args)
        self._counter.read += len(data)
        return data

    def __enter__(self) -> _Counted:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def test_a_header_with_more_columns_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "Key,a,b,c,d\nK1,1,2,3,4\n")
    with pytest.raises(BadFileError) as caught:
        read_header(path, ",", name="in.csv", limits=HeaderLimits(columns=4))
    assert str(caught.value) == (
        "in.csv: the header has 5 columns; at most 4 are allowed (the limit `csv.max_columns`). Leave the "
        "columns the import does not need out of the file, or raise `csv.max_columns` in the job."
    )
    assert read_header(path, ",", name="in.csv", limits=HeaderLimits(columns=5)).columns[-1] == "d"


def test_a_million_columns_cost_the_limit_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, ";".join(f"c{n:07d}" for n in range(1_000_000)) + "\n" + ";" * 999_999 + "\n")
    reads = CountedReads(monkeypatch)
    with pytest.raises(BadFileError) as caught:
        open_csv(path, CsvFormat(delimiter=";"), name="in.csv")
    message = str(caught.value)
    assert message.startswith("in.csv: the header has more than 1,000 columns (")
    assert (
        "counted where the reading stopped); at most 1,000 are allowed (the limit `csv.max_columns`)"
        in message
    )
    assert reads.read <= (1 << 20) + (64 << 10)  # the UTF-8 check's first MiB and one header step


def test_delimiters_inside_quotes_are_not_columns(tmp_path: Path) -> None:
    path = write(tmp_path, '"a;b;c;d;e";"x ""y;z""";K\n1;2;3\n')
    header = read_header(path, ";", name="in.csv", limits=HeaderLimits(columns=3))
    assert header.columns == ["a;b;c;d;e", 'x "y;z"', "K"]


def test_too_many_custom_field_columns_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "Key;" + ";".join(f"CF_f{n}" for n in range(30)) + "\n")
    with pytest.raises(BadFileError) as caught:
        read_header(path, ";", name="in.csv", limits=HeaderLimits(custom_field_columns=10))
    assert str(caught.value).startswith(
        "in.csv: the header has 30 custom-field (`CF_...`) columns; at most 10 are allowed (the limit "
        "`csv.max_custom_field_columns`)."
    )


def test_too_many_custom_field_columns_are_named_when_the_column_limit_stops_the_reading(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "Key;" + ";".join(f"CF_f{n}" for n in range(20_000)) + "\n")
    with pytest.raises(BadFileError) as caught:
        read_header(path, ";", name="in.csv")
    message = str(caught.value)
    assert message.startswith("in.csv: the header has more than 500 custom-field (`CF_...`) columns (")
    assert (
        "the reading stopped); at most 500 are allowed (the limit `csv.max_custom_field_columns`)" in message
    )


@pytest.mark.parametrize(
    "data",
    [b"Key," + b"x" * 300_000 + b"\nK1,1\n", b'Key,"never closed\n' + b"K1,1\n" * 60_000],
    ids=["long-name", "unclosed-quote"],
)
def test_a_header_longer_than_the_byte_limit_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(BadFileError) as caught:
        read_header(write(tmp_path, data), ",", name="in.csv")
    assert str(caught.value).startswith(
        "in.csv: the header is longer than 262,144 bytes, the limit `csv.max_header_bytes`."
    )


def test_a_wide_header_is_refused_before_a_transcoding(tmp_path: Path) -> None:
    path = write(tmp_path, (";".join(f"Spalte {n} é" for n in range(2_000)) + "\n").encode("windows-1252"))
    with pytest.raises(BadFileError, match="at most 1,000 are allowed"):
        open_csv(path, CsvFormat(delimiter=";", encoding="windows-1252"), name="in.csv")
    assert sorted(item.name for item in tmp_path.iterdir()) == ["in.csv"]  # no transcoded copy


def test_open_csv_transcodes_after_reading_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "Nom;Été\nx;5 €\n".encode("windows-1252"))
    utf8, header = open_csv(path, CsvFormat(delimiter=";", encoding="windows-1252"), name="in.csv")
    assert (utf8.name, header) == ("in.csv.utf8", CsvHeader(["Nom", "Été"], 1))
    assert utf8.read_text(encoding="utf-8") == "Nom;Été\nx;5 €\n"


def test_the_limits_have_bounds_and_defaults() -> None:
    assert CsvFormat(delimiter=",").header_limits == HeaderLimits(1_000, 500, 256 << 10)
    for field, value in (("max_columns", 0), ("max_custom_field_columns", -1), ("max_header_bytes", 10)):
        with pytest.raises(ValidationError, match=field):
            CsvFormat.model_validate({"delimiter": ",", field: value})


# -- encodings ----------------------------------------------------------------------------------------


def test_windows_1252_file_is_transcoded(tmp_path: Path) -> None:
    path = write(tmp_path, "Nom;Prix\nÉté;5 €\nœuvre « ça »;0\n".encode("windows-1252"))
    utf8 = to_utf8(path, "windows-1252")
    assert utf8 != path
    _, batches = read_all(utf8, ";")
    assert records(batches) == [
        {RECORD: 1, "Nom": "Été", "Prix": "5 €", LINE: 2},
        {RECORD: 2, "Nom": "œuvre « ça »", "Prix": "0", LINE: 3},
    ]


def test_utf8_file_is_read_in_place(tmp_path: Path) -> None:
    path = write(tmp_path, "Nom\nÉté €\n")
    assert to_utf8(path, "utf-8") == path


def test_windows_1252_file_read_as_utf8_suggests_the_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "Nom,Prix\nÉté,5 €\n".encode("windows-1252"))
    with pytest.raises(BadFileError) as caught:
        to_utf8(path, "utf-8")
    message = str(caught.value)
    assert message.startswith("in.csv: byte 9 is not valid UTF-8 (b'\\xc9t\\xe9,').")
    assert "set `csv.encoding: windows-1252` (or `iso-8859-1`)" in message


# -- records and lines ------------------------------------------------------------------------------


def test_records_are_numbered_across_batches(tmp_path: Path) -> None:
    lines = ["Key,Value"] + [f"K{n},v{n}" for n in range(1, 2_501)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    _, batches = read_all(path, batch_rows=1_000)
    assert len(batches) >= 3
    assert all(batch.height <= 1_000 for batch in batches)
    rows = records(batches)
    assert [row[RECORD] for row in rows] == list(range(1, 2_501))
    assert [row[LINE] for row in rows] == list(range(2, 2_502))
    assert rows[-1] == {RECORD: 2_500, "Key": "K2500", "Value": "v2500", LINE: 2_501}


def test_multiline_cell_shifts_lines_in_later_batches(tmp_path: Path) -> None:
    # Record 1500 holds a 3-line cell: every record after it starts 2 lines further down.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Key", "Text"])
    for n in range(1, 2_501):
        writer.writerow([f"K{n}", "one\ntwo, 2\nthree" if n == 1_500 else f"t{n}"])
    path = write(tmp_path, buffer.getvalue())
    _, batches = read_all(path, batch_rows=1_000)
    lines = {row[RECORD]: row[LINE] for row in records(batches)}
    assert (lines[1], lines[1_499], lines[1_500], lines[1_501], lines[2_500]) == (
        2,
        1_500,
        1_501,
        1_504,
        2_503,
    )


def test_quoted_cells_with_newlines_and_delimiters(tmp_path: Path) -> None:
    path = write(tmp_path, 'Key,Text,N\nA,"line 1\nline 2, still\nline 3",1\nB,"say ""hi""; ok",2\nC,,3\n')
    _, batches = read_all(path)
    assert records(batches) == [
        {RECORD: 1, "Key": "A", "Text": "line 1\nline 2, still\nline 3", "N": "1", LINE: 2},
        {RECORD: 2, "Key": "B", "Text": 'say "hi"; ok', "N": "2", LINE: 5},
        {RECORD: 3, "Key": "C", "Text": None, "N": "3", LINE: 6},
    ]


def test_crlf_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'Key;Text\r\nA;"x\r\ny"\r\nB;z\r\n')
    header, batches = read_all(path, ";")
    assert header.columns == ["Key", "Text"]
    assert records(batches) == [
        {RECORD: 1, "Key": "A", "Text": "x\r\ny", LINE: 2},
        {RECORD: 2, "Key": "B", "Text": "z", LINE: 4},
    ]


@pytest.mark.parametrize(
    "data", ["Key,Value\n", "Key,Value", "Key,Value\r\n"], ids=["lf", "no-newline", "crlf"]
)
def test_header_only_file_has_no_rows(tmp_path: Path, data: str) -> None:
    _, batches = read_all(write(tmp_path, data))
    assert sum(batch.height for batch in batches) == 0


def test_unparseable_body_is_a_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'Key,Value\n"K1,v1\n')
    with pytest.raises(BadFileError, match=r"^in\.csv: the file cannot be parsed as CSV: "):
        read_all(path)


# -- blocks: the file is read in byte blocks, each cut after its last whole record ----------------

TRICKY = (
    '\ufeffKey;"Multi\nline ""name""";N\r\n'
    'A;"x\r\ny";1\r\n'
    'B;"say ""hi""; ok";2\n'
    "\n"
    "C;;3\n"
    'D;"";4\n'
    'É€;"; \n\n; ""\n""";5\n'
    "F;plain;6"
)
TRICKY_RECORDS = [
    {RECORD: 1, "Key": "A", 'Multi\nline "name"': "x\r\ny", "N": "1", LINE: 3},
    {RECORD: 2, "Key": "B", 'Multi\nline "name"': 'say "hi"; ok', "N": "2", LINE: 5},
    {RECORD: 4, "Key": "C", 'Multi\nline "name"': None, "N": "3", LINE: 7},
    {RECORD: 5, "Key": "D", 'Multi\nline "name"': "", "N": "4", LINE: 8},
    {RECORD: 6, "Key": "É€", 'Multi\nline "name"': '; \n\n; "\n"', "N": "5", LINE: 9},
    {RECORD: 7, "Key": "F", 'Multi\nline "name"': "plain", "N": "6", LINE: 13},
]


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 5, 8, 13, 64, BLOCK_BYTES])
def test_records_quotes_and_newlines_straddling_blocks(tmp_path: Path, block_bytes: int) -> None:
    path = write(tmp_path, TRICKY)
    header, batches = read_all(path, ";", block_bytes=block_bytes)
    assert header.lines == 2
    assert records(batches) == TRICKY_RECORDS


@pytest.mark.parametrize("terminator", ["\n", "\r\n"])
def test_many_blocks_read_like_one(tmp_path: Path, terminator: str) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator=terminator)
    writer.writerow(["Key", "Text", "Note"])
    for n in range(1, 2_001):
        text = f'line {n}{terminator}"quoted"; next' if n % 7 == 0 else f"t{n}"
        writer.writerow([f"K{n}", text, "" if n % 5 == 0 else "é€" * (n % 4)])
    path = write(tmp_path, buffer.getvalue())
    _, whole = read_all(path, ";", batch_rows=1_000)
    _, blocks = read_all(path, ";", batch_rows=1_000, block_bytes=64)
    assert len(blocks) > 100
    assert all(batch.height <= 1_000 for batch in blocks)
    assert records(blocks) == records(whole)
    assert [row[RECORD] for row in records(blocks)] == list(range(1, 2_001))
    assert records(blocks)[-1][LINE] == 2_001 + 2_000 // 7


def test_a_batch_holds_about_one_block(tmp_path: Path) -> None:
    path = write(tmp_path, "Key,Value\n" + "".join(f"K{n},v{n}\n" for n in range(1, 10_001)))
    header = read_header(path, ",", name="in.csv")
    batches = iter_batches(
        path, CsvFormat(delimiter=",", batch_rows=1_000), header, name="in.csv", block_bytes=1_024
    )
    first = next(batches)
    assert 100 < first.height < 150  # the first kilobyte (8-9 bytes a record), not 1,000 records
    assert first[RECORD].to_list() == list(range(1, first.height + 1))


def test_a_record_longer_than_a_block_is_read_whole(tmp_path: Path) -> None:
    quoted = "x" * 1_000_000 + '\n""quoted""\n'
    unquoted = "y" * 1_000_000
    path = write(tmp_path, f'Key,Text\nA,"{quoted}"\nB,{unquoted}\nC,short\n')
    _, batches = read_all(path, block_bytes=64)
    assert records(batches) == [
        {RECORD: 1, "Key": "A", "Text": "x" * 1_000_000 + '\n"quoted"\n', LINE: 2},
        {RECORD: 2, "Key": "B", "Text": unquoted, LINE: 5},
        {RECORD: 3, "Key": "C", "Text": "short", LINE: 6},
    ]


def test_an_unclosed_quote_is_refused_before_it_swallows_the_file(tmp_path: Path) -> None:
    lines = ["Key,Text", *(f"K{n},t{n}" for n in range(1, 101)), 'K101,"never closed']
    path = write(tmp_path, "\n".join(lines + [f"K{n},t{n}" for n in range(102, 2_000)]) + "\n")
    with pytest.raises(BadFileError) as caught:
        read_all(path, block_bytes=64, max_record_bytes=1_024)
    assert str(caught.value) == (
        "in.csv: the record at line 102 runs over 1024 bytes without its quotes closing: a quoted cell "
        'is probably never closed. A quote inside a quoted cell must be doubled (`""`) and the cell must '
        "end with a quote: fix that record."
    )


def test_an_unclosed_quote_in_the_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '"Key,Text\n' + "K,t\n" * 1_000)
    with pytest.raises(BadFileError, match=r"^in\.csv: the record at line 1 runs over 1024 bytes"):
        read_all(path, block_bytes=64, max_record_bytes=1_024)


@pytest.mark.parametrize("block_bytes", [1, BLOCK_BYTES])
def test_ragged_records_are_marked_with_their_field_count(tmp_path: Path, block_bytes: int) -> None:
    # Per-row rejects need the reader to say which records are ragged (tasks.hub.mapping rejects them).
    path = write(tmp_path, "Key,Value\nK1,1\nK2\nK3,3,extra,more\nK4,4\n")
    _, batches = read_all(path, block_bytes=block_bytes)
    marked = [(row[RECORD], row[LINE], row.get(FIELDS), row.get(EXTRA)) for row in records(batches)]
    assert marked == [(1, 2, None, None), (2, 3, 1, None), (3, 4, 4, "extra"), (4, 5, None, None)]


def test_a_short_line_has_null_cells_and_its_field_count(tmp_path: Path) -> None:
    path = write(tmp_path, "Key,Value,Note\nK1\nK2,2\n")
    for block_bytes in (1, BLOCK_BYTES):
        _, batches = read_all(path, block_bytes=block_bytes)
        assert records(batches) == [
            {RECORD: 1, "Key": "K1", "Value": None, "Note": None, EXTRA: None, LINE: 2, FIELDS: 1},
            {RECORD: 2, "Key": "K2", "Value": "2", "Note": None, EXTRA: None, LINE: 3, FIELDS: 2},
        ]


# -- property: anything Python's csv module writes comes back unchanged -----------------------------

CELL = st.text(alphabet=st.sampled_from(list("ab Zé€ßœ\"',;\n|0.9")), max_size=12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.integers(min_value=1, max_value=4),
    data=st.data(),
    delimiter=st.sampled_from([",", ";"]),
    terminator=st.sampled_from(["\n", "\r\n"]),
    block_bytes=st.sampled_from([1, 2, 7, 64, BLOCK_BYTES]),
)
def test_written_csv_round_trips(
    tmp_path: Path, width: int, data: st.DataObject, delimiter: str, terminator: str, block_bytes: int
) -> None:
    rows = data.draw(st.lists(st.lists(CELL, min_size=width, max_size=width), max_size=15))
    header = [f"col{i}" for i in range(width)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=terminator)
    writer.writerow(header)
    starts = []
    for row in rows:
        starts.append(buffer.getvalue().count("\n") + 1)
        writer.writerow(row)
    path = write(tmp_path, buffer.getvalue(), name="round-trip.csv")

    found, batches = read_all(path, delimiter, block_bytes=block_bytes)

    assert found.columns == header
    read = records(batches)
    # A row of empty cells is a blank line, not a record: it is dropped, the others keep their numbers.
    kept = [
        i for i, row in enumerate(rows) if width == 1 or any(cell != "" for cell in row)
    ]  # csv writes a lone "" quoted
    assert [row[RECORD] for row in read] == [i + 1 for i in kept]
    assert [row[LINE] for row in read] == [starts[i] for i in kept]
    assert [[row[name] or "" for name in header] for row in read] == [rows[i] for i in kept]
