"""CSV reading: a downloaded file -> its header -> UTF-8 -> batches of text columns with record and line numbers.

``reader`` reads the header first, in bounded steps that stop at the job's width limits, then streams the file in byte blocks cut at record boundaries (memory bounded by the block),
transcodes non-UTF-8 encodings while streaming and marks ragged records instead of failing; its
batches are in the hub's contract (``tasks.hub.contract``). ``load`` hands a file's batches to the
hub's load (``load_file`` is its Prefect task, for one file; a bulk run calls ``import_csv_file`` per file). The
names below are the package's public face; everything else is private to it.
"""

from __future__ import annotations

from tasks.csv.load import import_csv_file, load_file
from tasks.csv.reader import (
    CsvFormat,
    CsvHeader,
    Encoding,
    HeaderLimits,
    iter_batches,
    open_csv,
    read_header,
    to_utf8,
)

__all__ = [
    "CsvFormat",
    "CsvHeader",
    "Encoding",
    "HeaderLimits",
    "import_csv_file",
    "iter_batches",
    "load_file",
    "open_csv",
    "read_header",
    "to_utf8",
]
