"""Property-based tests (hypothesis) of the CSV reader and the mapping on hostile input.

tests/unit/test_csv_reader.py already proves that well-formed CSV round-trips, and
tests/unit/test_mapping.py that validation partitions rows into loaded and rejected; these add the
faults: ragged records, arbitrary bytes, NUL bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.csv.reader import BLOCK_BYTES, LINE, RECORD, CsvFormat, iter_batches, read_header, to_utf8
from tasks.errors import BadFileError
from tasks.hub.entities import entity
from tasks.hub.mapping import (
    NUL_BYTE,
    TOO_FEW_FIELDS,
    TOO_MANY_FIELDS,
    CellFormats,
    plan_mapping,
    validate_batch,
)

HEADER = ["Supplier External Id", "Supplier Name", "Description"]
PLAN = plan_mapping(entity("suppliers"), None, HEADER, name="p.csv")
CELL = st.text(alphabet=st.sampled_from(list("ab Zé€\"',;\n|09")), min_size=1, max_size=8)


def _quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


def _read_and_validate(data: bytes, block_bytes: int) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.csv"
        path.write_bytes(data)
        utf8 = to_utf8(path, "utf-8", name="p.csv")
        header = read_header(utf8, ",", name="p.csv")
        plan = plan_mapping(entity("suppliers"), None, header.columns, name="p.csv")
        rows, rejects, read = [], [], 0
        fmt = CsvFormat(delimiter=",", batch_rows=1_000)
        for batch in iter_batches(utf8, fmt, header, name="p.csv", block_bytes=block_bytes):
            result = validate_batch(batch, plan, CellFormats())
            rows.append(result.rows.select(RECORD, LINE))
            rejects.append(result.rejects)
            read += batch.height
    empty_rows = pl.DataFrame(schema={RECORD: pl.Int64, LINE: pl.Int64})
    return pl.concat([empty_rows, *rows]), pl.concat([_no_rejects(), *rejects]), read


def _no_rejects() -> pl.DataFrame:
    empty = pl.DataFrame(schema={RECORD: pl.Int64, **dict.fromkeys(HEADER, pl.String), LINE: pl.Int64})
    return validate_batch(empty, PLAN, CellFormats()).rejects


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(st.lists(CELL, min_size=1, max_size=5), min_size=1, max_size=12),
    block_bytes=st.sampled_from([1, 3, 16, BLOCK_BYTES]),
)
def test_ragged_records_are_rejected_exactly_and_the_others_load(
    records: list[list[str]], block_bytes: int
) -> None:
    lines, starts, line = [",".join(HEADER)], [], 2
    for cells in records:
        starts.append(line)
        text = ",".join(_quoted(cell) for cell in cells)
        lines.append(text)
        line += text.count("\n") + 1
    data = ("\n".join(lines) + "\n").encode()

    loaded, rejects, read = _read_and_validate(data, block_bytes)

    assert read == len(records)
    shape = rejects.filter(pl.col("code").is_in([TOO_MANY_FIELDS, TOO_FEW_FIELDS]))
    assert list(shape.select("record", "line", "code").iter_rows()) == [
        (n + 1, starts[n], TOO_MANY_FIELDS if len(cells) > 3 else TOO_FEW_FIELDS)
        for n, cells in enumerate(records)
        if len(cells) != 3
    ]
    # A record of the header's width is loaded or rejected by a field rule (a blank name, say).
    other = set(rejects.filter(~pl.col("code").is_in([TOO_MANY_FIELDS, TOO_FEW_FIELDS]))["record"])
    assert other.isdisjoint(shape["record"])
    assert sorted([*loaded[RECORD], *other]) == [n + 1 for n, cells in enumerate(records) if len(cells) == 3]
    assert set(loaded.select(RECORD, LINE).iter_rows()) <= {(n + 1, starts[n]) for n in range(len(records))}


@settings(max_examples=120, deadline=None)
@given(body=st.binary(max_size=200), block_bytes=st.sampled_from([1, 7, BLOCK_BYTES]))
def test_any_bytes_after_a_header_load_or_fail_as_a_bad_file(body: bytes, block_bytes: int) -> None:
    # Never an internal error: either rows (loaded or rejected) or one BadFileError naming the file.
    data = (",".join(HEADER) + "\n").encode() + body
    try:
        loaded, rejects, read = _read_and_validate(data, block_bytes)
    except BadFileError as exc:
        refused = str(exc)
    else:
        refused = ""
        assert loaded.height + rejects["record"].n_unique() == read
    assert refused == "" or refused.startswith("p.csv: ")


@settings(max_examples=100, deadline=None)
@given(cells=st.lists(st.text(alphabet=st.sampled_from(["a", "\x00", " ", "é"]), max_size=4), max_size=20))
def test_a_cell_with_a_nul_byte_is_always_rejected_and_never_loaded(cells: list[str]) -> None:
    batch = pl.DataFrame(
        {
            RECORD: list(range(1, len(cells) + 1)),
            "Supplier External Id": [f"S{n}" for n in range(len(cells))],
            "Supplier Name": [f"name {cell}" for cell in cells],
            "Description": cells,
            LINE: list(range(2, len(cells) + 2)),
        },
        schema={RECORD: pl.Int64, **dict.fromkeys(HEADER, pl.String), LINE: pl.Int64},
    )
    result = validate_batch(batch, PLAN, CellFormats())
    with_nul = {n + 1 for n, cell in enumerate(cells) if "\x00" in cell}
    assert set(result.rejects.filter(pl.col("code") == NUL_BYTE)["record"]) == with_nul
    assert with_nul.isdisjoint(result.rows[RECORD])
    assert not any(
        "\x00" in (value or "") for column in ("supplierName", "description") for value in result.rows[column]
    )
