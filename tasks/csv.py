"""Read a downloaded CSV file as batches of text columns, streaming, with record and line numbers.

Every column is read as text: the entity catalogue decides the types later. Non-UTF-8 files are
transcoded while streaming (polars reads UTF-8 only). A file read with the wrong delimiter would
"succeed" as one wide column; that is detected from the header and reported with the fix.
"""

from __future__ import annotations

import codecs
import csv as stdlib_csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from tasks.errors import BadFileError

RECORD = "_record"
LINE = "_line"
DELIMITERS = (",", ";")
Encoding = Literal["utf-8", "windows-1252", "iso-8859-1", "iso-8859-15"]
_TRANSCODE_CHUNK = 1 << 20


class CsvFormat(BaseModel):
    """How the job's CSV files are written."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="CSV format")

    delimiter: Literal[",", ";"] = Field(
        description="Cell delimiter of the files: `,` or `;`. Required: a wrong one loads nothing."
    )
    encoding: Encoding = Field(
        default="utf-8",
        description="Text encoding of the files. UTF-8 may carry a byte-order mark. Windows-1252 and "
        "ISO-8859-1/15 are converted to UTF-8 while reading.",
    )
    batch_rows: int = Field(
        default=200_000,
        ge=1_000,
        le=2_000_000,
        title="Rows per batch",
        description="Rows parsed and validated at a time; bounds memory on large files.",
    )


@dataclass(frozen=True)
class CsvHeader:
    """The header of a CSV file: its column names and how many physical lines it spans."""

    columns: list[str]
    lines: int


def to_utf8(path: Path, encoding: Encoding) -> Path:
    """Return a UTF-8 version of `path`: the file itself, or a transcoded copy beside it."""
    if encoding == "utf-8":
        _check_utf8_start(path)
        return path
    target = path.with_name(path.name + ".utf8")
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as source, target.open("w", encoding="utf-8", newline="") as sink:
        while chunk := source.read(_TRANSCODE_CHUNK):
            sink.write(decoder.decode(chunk))
        sink.write(decoder.decode(b"", final=True))
    return target


def _check_utf8_start(path: Path) -> None:
    # Most wrong encodings show within the first megabyte; say which setting to change early.
    with path.open("rb") as source:
        head = source.read(_TRANSCODE_CHUNK)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise BadFileError(
            f"{path.name}: byte {exc.start} is not valid UTF-8 ({head[exc.start : exc.start + 4]!r}). "
            "The file is probably Windows-1252 or ISO-8859-1: set `csv.encoding: windows-1252` "
            "(or `iso-8859-1`)."
        ) from exc


def read_header(path: Path, delimiter: str, *, name: str) -> CsvHeader:
    """Return the header of the UTF-8 file `path`; refuse empty, garbled or mis-delimited headers."""
    with path.open(encoding="utf-8-sig", newline="") as text:
        reader = stdlib_csv.reader(text, delimiter=delimiter)
        try:
            columns = next(reader, None)
        except stdlib_csv.Error as exc:
            raise BadFileError(f"{name}: the header line cannot be read as CSV ({exc}).") from exc
        lines = reader.line_num
    if not columns or not any(column.strip() for column in columns):
        raise BadFileError(f"{name}: the file is empty; a CSV file needs a header line.")
    if any("\x00" in column for column in columns):
        raise BadFileError(f"{name}: the header holds NUL bytes; this is not a text CSV file.")
    _refuse_wrong_delimiter(columns, delimiter, name)
    _refuse_duplicate_columns([column.strip() for column in columns], name)
    return CsvHeader([column.strip() for column in columns], lines)


def _refuse_wrong_delimiter(columns: list[str], delimiter: str, name: str) -> None:
    if len(columns) != 1:
        return
    other = next((candidate for candidate in DELIMITERS if candidate in columns[0]), None)
    if other is not None and other != delimiter:
        raise BadFileError(
            f"{name}: the header is a single column, {columns[0][:80]!r}. The file looks "
            f"{other!r}-delimited but the job says {delimiter!r}: set `csv.delimiter: {other!r}`."
        )


def _refuse_duplicate_columns(columns: list[str], name: str) -> None:
    duplicates = sorted(column for column, count in Counter(columns).items() if count > 1)
    if duplicates:
        raise BadFileError(
            f"{name}: the header repeats column(s) {duplicates}; each column name must be unique. "
            "Rename or remove the repeated columns in the file."
        )


def iter_batches(path: Path, fmt: CsvFormat, header: CsvHeader, *, name: str) -> Iterator[pl.DataFrame]:
    """Yield the file's records as text frames, each with its record number and starting line."""
    scan = pl.scan_csv(
        path,
        separator=fmt.delimiter,
        infer_schema=False,
        row_index_name=RECORD,
        row_index_offset=1,
        new_columns=header.columns,
        raise_if_empty=False,
    )
    line_offset = header.lines + 1
    try:
        for batch in scan.collect_batches(chunk_size=fmt.batch_rows):
            numbered, line_offset = _number_lines(batch, line_offset)
            # A blank line (a trailing one, say) is no record: drop it, keeping everyone's line number.
            yield numbered.filter(~pl.all_horizontal(pl.col(c).is_null() for c in header.columns))
    except pl.exceptions.PolarsError as exc:
        raise BadFileError(f"{name}: the file cannot be parsed as CSV: {_first_line(exc)}") from exc


def _number_lines(batch: pl.DataFrame, first_line: int) -> tuple[pl.DataFrame, int]:
    # A quoted cell may span lines: a record starts after every newline of the records before it.
    text_columns = [column for column in batch.columns if column != RECORD]
    multiline = [column for column in text_columns if batch[column].str.contains("\n", literal=True).any()]
    if multiline:
        spans = pl.sum_horizontal(
            pl.col(column).str.count_matches("\n", literal=True).fill_null(0) for column in multiline
        ) + pl.lit(1)
        numbered = batch.with_columns(
            (pl.lit(first_line) + spans.cum_sum() - spans).cast(pl.Int64).alias(LINE)
        )
        next_line = first_line + int(numbered.select(spans.sum()).item())
    else:
        numbered = batch.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + first_line).alias(LINE))
        next_line = first_line + batch.height
    return numbered.with_columns(pl.col(RECORD).cast(pl.Int64)), next_line


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
