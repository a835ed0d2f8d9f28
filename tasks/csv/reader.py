"""Read a downloaded CSV file as batches of text columns, streaming, with record and line numbers.

Every column is read as text: the entity catalogue decides the types later. Non-UTF-8 files are
transcoded while streaming (polars reads UTF-8 only). A file read with the wrong delimiter would
"succeed" as one wide column; that is detected from the header and reported with the fix.

The file is read in byte blocks cut at record boundaries and each block is parsed by polars on its
own, so memory stays bounded by the block whatever the file's size (polars' streaming engine reads
far ahead of the batch it hands out). A record with more or fewer fields than the header is marked,
not fatal: the mapping rejects it and the rest of the file loads.

The header is read first, from the file as downloaded (before any transcoding), in bounded steps
that stop at the job's width limits (`CsvFormat.max_columns`, `max_custom_field_columns`,
`max_header_bytes`): a file with a million columns costs the limit, not its size.
"""

from __future__ import annotations

import codecs
import csv as stdlib_csv
import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import polars as pl
from pydantic import ConfigDict, Field

from tasks.errors import BadFileError
from tasks.hub.contract import EXTRA, FIELDS, LINE, RECORD, reserved_columns
from tasks.hub.entities import CUSTOM_FIELD_PREFIX
from tasks.ui_schema import FormModel

DELIMITERS = (",", ";")
Encoding = Literal["utf-8", "windows-1252", "iso-8859-1", "iso-8859-15"]
_TRANSCODE_CHUNK = 1 << 20
BLOCK_BYTES = 16 << 20  # bytes of the file parsed at a time
MAX_RECORD_BYTES = 64 << 20  # a longer record is taken for an unclosed quote
# Width limits (defaults of CsvFormat's fields). The widest entity, orders, has 26 fields: with ten
# text columns in each of 24 languages and 500 CF_ columns a file has about 760, under the 1,000
# allowed. Each column costs a polars column per batch: a million-column export is stopped instead.
MAX_COLUMNS = 1_000
MAX_CUSTOM_FIELD_COLUMNS = 500
MAX_HEADER_BYTES = 256 << 10  # 1,000 names of 260 bytes each
_HEADER_READ = 64 << 10  # bytes of a header read at a time: a too-wide header costs one read past a limit


@dataclass(frozen=True)
class HeaderLimits:
    """How wide a header may be: its columns, its custom-field (`CF_`) columns and its bytes."""

    columns: int = MAX_COLUMNS
    custom_field_columns: int = MAX_CUSTOM_FIELD_COLUMNS
    header_bytes: int = MAX_HEADER_BYTES


_DEFAULT_LIMITS = HeaderLimits()


class CsvFormat(FormModel):
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
    max_columns: int = Field(
        default=MAX_COLUMNS,
        ge=1,
        le=50_000,
        title="Maximum columns",
        description="A file whose header has more columns fails, unread past its header: a runaway export "
        "cannot exhaust the worker. Raise it for a wider file.",
    )
    max_custom_field_columns: int = Field(
        default=MAX_CUSTOM_FIELD_COLUMNS,
        ge=0,
        le=50_000,
        title="Maximum CF_ columns",
        description="A file whose header has more custom-field (`CF_...`) columns fails, unread past its header.",
    )
    max_header_bytes: int = Field(
        default=MAX_HEADER_BYTES,
        ge=1 << 10,
        le=16 << 20,
        title="Maximum header size (bytes)",
        description="A file whose header line is longer fails, unread past this many bytes (an unclosed "
        "quote in the header also reads as a long header).",
    )

    @property
    def header_limits(self) -> HeaderLimits:
        """Return the format's bounds on the width of a header."""
        return HeaderLimits(self.max_columns, self.max_custom_field_columns, self.max_header_bytes)


@dataclass(frozen=True)
class CsvHeader:
    """The header of a CSV file: its column names and how many physical lines it spans."""

    columns: list[str]
    lines: int


def open_csv(path: Path, fmt: CsvFormat, *, name: str) -> tuple[Path, CsvHeader]:
    """Return a UTF-8 version of `path` and its header, checked against `fmt`'s limits.

    The header is read from the file as it is, before any transcoding: a file too wide fails having
    cost the limit, not a pass over the whole file.
    """
    if fmt.encoding == "utf-8":
        _check_utf8_start(path, name)
    header = read_header(path, fmt.delimiter, name=name, encoding=fmt.encoding, limits=fmt.header_limits)
    return (path if fmt.encoding == "utf-8" else _transcode(path, fmt.encoding)), header


def to_utf8(path: Path, encoding: Encoding, *, name: str | None = None) -> Path:
    """Return a UTF-8 version of `path`: the file itself, or a transcoded copy beside it.

    `name` is how messages call the file (its remote path); the local file's name by default.
    """
    if encoding == "utf-8":
        _check_utf8_start(path, name or path.name)
        return path
    return _transcode(path, encoding)


def _transcode(path: Path, encoding: Encoding) -> Path:
    target = path.with_name(path.name + ".utf8")
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as source, target.open("w", encoding="utf-8", newline="") as sink:
        while chunk := source.read(_TRANSCODE_CHUNK):
            sink.write(decoder.decode(chunk))
        sink.write(decoder.decode(b"", final=True))
    return target


def _check_utf8_start(path: Path, name: str) -> None:
    # Most wrong encodings show within the first megabyte; say which setting to change early.
    with path.open("rb") as source:
        head = source.read(_TRANSCODE_CHUNK)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise _not_utf8(head, exc.start, name) from exc


def _not_utf8(head: bytes, start: int, name: str) -> BadFileError:
    if b"\x00" in head:  # no text encoding the job offers writes NUL bytes
        return BadFileError(
            f"{name}: byte {start} is not valid UTF-8 and the file holds NUL bytes: this is not "
            "a text CSV file (a binary file, or UTF-16 text). Export it as UTF-8 or Windows-1252 CSV."
        )
    return BadFileError(
        f"{name}: byte {start} is not valid UTF-8 ({head[start : start + 4]!r}). "
        "The file is probably Windows-1252 or ISO-8859-1: set `csv.encoding: windows-1252` "
        "(or `iso-8859-1`)."
    )


def read_header(
    path: Path,
    delimiter: str,
    *,
    name: str,
    encoding: Encoding = "utf-8",
    limits: HeaderLimits = _DEFAULT_LIMITS,
) -> CsvHeader:
    """Return the header of `path`, read in `encoding`; refuse it empty, garbled, mis-delimited or too wide.

    Columns named as the batch contract's own (`tasks.hub.contract.reserved_columns`) are refused
    too. The header record is read in steps of `_HEADER_READ` bytes and refused as soon as it passes one
    of `limits`, so reading a header costs at most the limit plus one step.
    """
    with path.open("rb") as source:
        raw = _header_record(source, delimiter, limits, name)
    columns = _parse_header(_decode_header(raw, encoding, name), delimiter, name)
    if not columns or not any(column.strip() for column in columns):
        raise BadFileError(f"{name}: the file is empty; a CSV file needs a header line.")
    if any("\x00" in column for column in columns):
        raise BadFileError(f"{name}: the header holds NUL bytes; this is not a text CSV file.")
    names = [column.strip() for column in columns]
    problem = _width_problem(names, limits, name, read_whole=True)
    if problem is not None:
        raise problem
    _refuse_wrong_delimiter(columns, delimiter, name)
    _refuse_duplicate_columns(names, name)
    _refuse_reserved_columns(names, name)
    # As many physical lines as the newlines inside the record, plus the one ending it.
    return CsvHeader(names, raw.count(b"\n") + 1)


def _header_record(source: BinaryIO, delimiter: str, limits: HeaderLimits, name: str) -> bytes:
    # The first record's bytes, without its line end, read step by step while counting its columns
    # (the delimiters outside quotes): the reading stops as soon as a limit is passed.
    head = bytearray()
    columns, inside = 1, False
    while True:
        step = source.read(_HEADER_READ)
        end, delimiters, inside = _scan_record(step, delimiter.encode(), inside)
        columns += delimiters
        head += step if end < 0 else step[:end]
        whole = end >= 0 or not step
        if columns > limits.columns or len(head) > limits.header_bytes:
            raise _too_wide(bytes(head), columns, delimiter, limits, name, read_whole=whole)
        if whole:
            return bytes(head)


def _scan_record(step: bytes, delimiter: bytes, inside: bool) -> tuple[int, int, bool]:
    # Where the record ends in `step` (its first line end outside quotes, or -1), the delimiters
    # outside quotes before that, and whether `step` ends inside quotes. A quote inside a quoted
    # cell is doubled (RFC 4180), so toggling at every quote tells inside from outside.
    delimiters = offset = 0
    for index, part in enumerate(step.split(b'"')):
        if index:
            inside = not inside
        if not inside:
            end = _line_end(part)
            if end >= 0:
                return offset + end, delimiters + part.count(delimiter, 0, end), inside
            delimiters += part.count(delimiter)
        offset += len(part) + 1
    return -1, delimiters, inside


def _line_end(part: bytes) -> int:
    # The first `\n` or `\r` (a lone `\r` ends a line too, as for the csv module), or -1.
    ends = [found for found in (part.find(b"\n"), part.find(b"\r")) if found >= 0]
    return min(ends, default=-1)


def _decode_header(raw: bytes, encoding: Encoding, name: str) -> str:
    if encoding == "utf-8" and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding == "utf-8":
            raise _not_utf8(raw, exc.start, name) from exc
        raise BadFileError(
            f"{name}: byte {exc.start} of the header is not valid {encoding} "
            f"({raw[exc.start : exc.start + 4]!r}). Check the file's encoding and set `csv.encoding`."
        ) from exc


def _parse_header(text: str, delimiter: str, name: str) -> list[str] | None:
    try:
        return next(stdlib_csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), None)
    except stdlib_csv.Error as exc:
        raise BadFileError(f"{name}: the header line cannot be read as CSV ({exc}).") from exc


def _too_wide(
    head: bytes, columns: int, delimiter: str, limits: HeaderLimits, name: str, *, read_whole: bool
) -> BadFileError:
    # Name the limit that was passed. What was read is bounded (a limit plus one step), so parsing it
    # to count its CF_ columns is cheap; too many of those is the more useful answer.
    try:
        names = _parse_header(head.decode("latin-1"), delimiter, name) or []
    except BadFileError:
        names = []  # a stray quote: the scan's count of columns still holds
    problem = _width_problem([column.strip() for column in names], limits, name, read_whole=read_whole)
    if problem is not None:
        return problem
    if columns > limits.columns:
        return _too_many(name, "", columns, limits.columns, "max_columns", read_whole=read_whole)
    return BadFileError(
        f"{name}: the header is longer than {limits.header_bytes:,} bytes, the limit "
        "`csv.max_header_bytes`. Shorten the column names or raise `csv.max_header_bytes` in the job; "
        "a quote opened in the header and never closed also makes the header run on."
    )


def _width_problem(
    names: list[str], limits: HeaderLimits, name: str, *, read_whole: bool
) -> BadFileError | None:
    custom = sum(column.startswith(CUSTOM_FIELD_PREFIX) for column in names)
    if custom > limits.custom_field_columns:
        return _too_many(
            name,
            f"custom-field (`{CUSTOM_FIELD_PREFIX}...`) ",
            custom,
            limits.custom_field_columns,
            "max_custom_field_columns",
            read_whole=read_whole,
        )
    if len(names) > limits.columns:
        return _too_many(name, "", len(names), limits.columns, "max_columns", read_whole=read_whole)
    return None


def _too_many(
    name: str, kind: str, found: int, limit: int, setting: str, *, read_whole: bool
) -> BadFileError:
    count = f"{found:,} {kind}columns"
    if not read_whole:  # the rest of the header was never read: its true count is unknown
        count = f"more than {limit:,} {kind}columns ({found:,} counted where the reading stopped)"
    return BadFileError(
        f"{name}: the header has {count}; at most {limit:,} are allowed (the limit "
        f"`csv.{setting}`). Leave the columns the import does not need out of the file, or raise "
        f"`csv.{setting}` in the job."
    )


def _refuse_reserved_columns(columns: list[str], name: str) -> None:
    reserved = reserved_columns(columns)
    if reserved:
        raise BadFileError(
            f"{name}: the header has column(s) {reserved}, a name the import reserves for its own "
            "bookkeeping. Rename those columns in the file (and in the job's `mapping`, if mapped)."
        )


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


def iter_batches(
    path: Path,
    fmt: CsvFormat,
    header: CsvHeader,
    *,
    name: str,
    block_bytes: int = BLOCK_BYTES,
    max_record_bytes: int = MAX_RECORD_BYTES,
    on_read: Callable[[int, int], None] | None = None,
) -> Iterator[pl.DataFrame]:
    """Yield the file's records as text frames, each with its record number and starting line.

    `on_read(bytes_read, records)` is told, after each frame, how far into the file the reading is.

    The file is read in blocks of about `block_bytes`, each cut after its last whole record and
    parsed on its own under the file's header line, so memory is bounded by the block, not by the
    file. A record longer than a block is read whole up to `max_record_bytes`; a longer one is
    taken for an unclosed quote. A batch holding records with more or fewer fields than the header
    also has `FIELDS` (their field count, null for the others) and `EXTRA` (a first extra field), so
    that the mapping rejects those records one by one.
    """
    record = line = 1
    with path.open("rb") as source:
        try:
            head, rest = _split_header(source, block_bytes, max_record_bytes)
            head_lines = head.count(b"\n")
            line = header.lines + 1
            for chunk in _record_chunks(source, head, rest, block_bytes, max_record_bytes):
                body_newlines = chunk.count(b"\n") - head_lines
                frame = _parse_full_records(chunk, len(head), fmt.delimiter, header)
                if frame is not None:
                    # As many newlines as records, each ending one: no quoted cell spans lines.
                    one_line_each = chunk.endswith(b"\n") and body_newlines == frame.height
                    del chunk
                    frame = frame.with_row_index(RECORD, offset=record)
                    record += frame.height
                    numbered, line = _number_lines(frame, line, may_span=not one_line_each)
                    blank_columns = header.columns
                else:
                    numbered = _parse_ragged_records(chunk, len(head), fmt.delimiter, header, name, line)
                    del chunk
                    numbered = numbered.with_columns(
                        (pl.col(RECORD) + record).cast(pl.Int64), (pl.col(LINE) + line).cast(pl.Int64)
                    )
                    record += numbered.height
                    line += int(numbered.select(pl.col(_SPAN).sum()).item() or 0)
                    numbered = numbered.drop(_SPAN)
                    blank_columns = [*header.columns, EXTRA]
                # A blank line (a trailing one, say) is no record: drop it, keeping everyone's line number.
                kept = numbered.filter(~pl.all_horizontal(pl.col(c).is_null() for c in blank_columns))
                del frame, numbered
                for batch in kept.iter_slices(fmt.batch_rows):
                    yield batch
                    if on_read is not None:
                        on_read(source.tell(), batch.height)
        except _UnclosedQuoteError:
            # Every record before `line` has been read: the quote was opened in the one starting there.
            raise BadFileError(
                f"{name}: the record at line {line} runs over {_size(max_record_bytes)} without its "
                "quotes closing: a quoted cell is probably never closed. A quote inside a quoted cell "
                'must be doubled (`""`) and the cell must end with a quote: fix that record.'
            ) from None


_SPAN = "_span"


def _parse_full_records(
    chunk: bytes, head_size: int, delimiter: str, header: CsvHeader
) -> pl.DataFrame | None:
    """Parse `chunk` (header record, then whole records); None if a record has more or fewer fields.

    The fast path: polars refuses a record with more fields than the header, but silently pads one
    with fewer. A short record shows in the count of unquoted delimiters: each full record has
    width - 1 of them, and polars' cells hold the quoted ones.
    """
    try:
        frame = pl.read_csv(
            chunk,
            separator=delimiter,
            infer_schema=False,
            new_columns=header.columns,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None  # a record too long, or a malformed one: the slow path tells which
    separator = delimiter.encode()
    unquoted = chunk.count(separator, head_size)
    if chunk.find(b'"', head_size) >= 0:
        inside = frame.select(
            pl.sum_horizontal(
                pl.col(c).str.count_matches(delimiter, literal=True).sum() for c in header.columns
            )
        ).item()
        unquoted -= int(inside or 0)
    blank = frame.select(pl.all_horizontal(pl.col(c).is_null() for c in header.columns).sum()).item()
    # Every record has at most width - 1 unquoted delimiters, so the sum is reached only if each has
    # exactly that many (and a blank line none).
    return frame if unquoted == (len(header.columns) - 1) * (frame.height - int(blank)) else None


def _parse_ragged_records(
    chunk: bytes, head_size: int, delimiter: str, header: CsvHeader, name: str, first_line: int
) -> pl.DataFrame:
    """Parse a chunk holding ragged records: each record's cells, field count and physical lines.

    Returns the header's columns, `EXTRA` (the first field beyond them), `FIELDS` (null for a
    record of the header's width), and 0-based `RECORD` and `LINE` offsets plus each record's `_SPAN`.
    """
    width = len(header.columns)
    body = chunk[head_size:]
    counts, spans = _field_counts(body, delimiter.encode())
    # One more column than the header, named in a header of our own, takes the first extra field.
    names = [*header.columns, EXTRA]
    synthetic = delimiter.join(f"c{i}" for i in range(width + 1)).encode() + b"\n"
    try:
        frame = pl.read_csv(
            synthetic + body,
            separator=delimiter,
            infer_schema=False,
            new_columns=names,
            raise_if_empty=False,
            truncate_ragged_lines=True,
        )
    except pl.exceptions.PolarsError as exc:
        raise BadFileError(
            f"{name}: the file cannot be parsed as CSV: {_first_line(exc)} (in the records from line "
            f"{first_line} on)"
        ) from exc
    if frame.height != len(counts):
        raise BadFileError(
            f"{name}: the file cannot be parsed as CSV: its quotes do not pair up in the records from "
            f'line {first_line} on. A quote inside a quoted cell must be doubled (`""`).'
        )
    field_counts = pl.Series(FIELDS, counts, dtype=pl.Int64)
    span = pl.Series(_SPAN, spans, dtype=pl.Int64)
    return frame.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias(RECORD),
        (span.cum_sum() - span).alias(LINE),
        span,
        pl.when(field_counts != width).then(field_counts).otherwise(None).alias(FIELDS),
    ).select(RECORD, *names, LINE, FIELDS, _SPAN)


def _field_counts(body: bytes, delimiter: bytes) -> tuple[list[int], list[int]]:
    # Each record's number of fields and of physical lines: a newline ends a record, and a
    # delimiter separates fields, only outside quotes (an even number of quotes before it, RFC 4180).
    counts: list[int] = []
    spans: list[int] = []
    pieces = body.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()  # the newline ending the last record
    fields, lines, inside = 1, 0, False
    for piece in pieces:
        lines += 1
        if not inside and b'"' not in piece:
            fields += piece.count(delimiter)
        else:
            for index, part in enumerate(piece.split(b'"')):
                if index:
                    inside = not inside
                if not inside:
                    fields += part.count(delimiter)
        if not inside:  # else a quote left open continues the record on the next line
            counts.append(fields)
            spans.append(lines)
            fields, lines = 1, 0
    if lines:  # an unclosed quote at the end of the file: polars decides (and will disagree in count)
        counts.append(fields)
        spans.append(lines)
    return counts, spans


def _size(size: int) -> str:
    return f"{size / (1 << 20):g} MiB" if size >= 1 << 20 else f"{size} bytes"


class _UnclosedQuoteError(Exception):
    """No record ends within the byte limit."""


def _split_header(source: BinaryIO, block_bytes: int, max_record_bytes: int) -> tuple[bytes, bytes]:
    # Return the header record (without a byte-order mark) and what follows it in the first reads.
    buffer = source.read(max(block_bytes, len(codecs.BOM_UTF8)))
    if buffer.startswith(codecs.BOM_UTF8):
        buffer = buffer[len(codecs.BOM_UTF8) :]
    while True:
        end = _first_record_end(buffer)
        if end >= 0:
            return buffer[: end + 1], buffer[end + 1 :]
        if len(buffer) > max_record_bytes:
            raise _UnclosedQuoteError
        more = source.read(max(block_bytes, len(buffer)))
        if not more:
            return buffer, b""  # the file is its header
        buffer += more


def _record_chunks(
    source: BinaryIO, head: bytes, rest: bytes, block_bytes: int, max_record_bytes: int
) -> Iterator[bytes]:
    # Yield `head` followed by whole records, block after block: at least once, so that a
    # header-only file is parsed too. A chunk starts at a record boundary, so a newline in it ends a
    # record iff an even number of quotes precede it (RFC 4180: a quote inside a cell is doubled).
    # What follows the last record end is carried over (`pending`): it holds no record end itself.
    pending: list[bytes] = []
    pending_size = pending_quotes = chunks = 0
    block = rest or source.read(block_bytes)
    while block:
        end = _last_record_end(block, pending_quotes)
        if end < 0:
            # No record ends yet: one record is longer than a block. Read on, in growing reads,
            # unless an unclosed quote is swallowing the file.
            pending.append(block)
            pending_size += len(block)
            pending_quotes += block.count(b'"')
            if pending_size > max_record_bytes:
                raise _UnclosedQuoteError
            block = source.read(max(block_bytes, min(pending_size, max_record_bytes + 1 - pending_size)))
            continue
        with memoryview(block) as view:
            chunk = b"".join((head, *pending, view[: end + 1]))
        tail = block[end + 1 :]
        del block
        pending.clear()
        chunks += 1
        yield chunk
        del chunk
        pending, pending_size, pending_quotes = [tail], len(tail), tail.count(b'"')
        block = source.read(block_bytes)
    if pending_size or not chunks:
        yield b"".join((head, *pending))


def _first_record_end(buffer: bytes) -> int:
    # The position of the newline ending the first record of `buffer`, or -1.
    quotes = 0
    start = 0
    while (newline := buffer.find(b"\n", start)) >= 0:
        quotes += buffer.count(b'"', start, newline)
        if quotes % 2 == 0:
            return newline
        start = newline + 1
    return -1


def _last_record_end(block: bytes, quotes_before: int) -> int:
    # The position of the last newline of `block` that ends a record, given the number of quotes
    # since the last record boundary before the block; -1 if none does.
    newline = block.rfind(b"\n")
    if newline < 0:
        return -1
    quotes = quotes_before + block.count(b'"', 0, newline)
    while quotes % 2:
        previous = block.rfind(b"\n", 0, newline)
        if previous < 0:
            return -1
        quotes -= block.count(b'"', previous, newline)
        newline = previous
    return newline


def _number_lines(batch: pl.DataFrame, first_line: int, *, may_span: bool = True) -> tuple[pl.DataFrame, int]:
    # A quoted cell may span lines: a record starts after every newline of the records before it.
    text_columns = [column for column in batch.columns if column != RECORD]
    multiline = []
    if may_span:
        has_newline = batch.select(pl.col(text_columns).str.contains("\n", literal=True).any()).row(0)
        multiline = [column for column, found in zip(text_columns, has_newline, strict=True) if found]
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
