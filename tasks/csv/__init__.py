"""CSV reading: a downloaded file -> UTF-8 -> its header -> batches of text columns with record and line numbers.

``reader`` streams the file in byte blocks cut at record boundaries (memory bounded by the block),
transcodes non-UTF-8 encodings while streaming and marks ragged records instead of failing. The
names below are the package's public face; everything else is private to it.
"""

from __future__ import annotations

from tasks.csv.reader import (
    EXTRA,
    FIELDS,
    LINE,
    RECORD,
    CsvFormat,
    CsvHeader,
    Encoding,
    iter_batches,
    read_header,
    to_utf8,
)

__all__ = [
    "EXTRA",
    "FIELDS",
    "LINE",
    "RECORD",
    "CsvFormat",
    "CsvHeader",
    "Encoding",
    "iter_batches",
    "read_header",
    "to_utf8",
]
