"""The batch contract: what every source (CSV files, API records) hands the hub, and what a reject is.

A batch is a polars frame of text columns named as the source names them, plus two numbers: the
record's number in its source (``RECORD``, 1 = the first data record) and its first line there
(``LINE``). A source that can read ragged records adds ``FIELDS`` (the record's number of fields) and
``EXTRA`` (its first field beyond the header's columns) to the batches that hold one. Those names,
and the ones the reader and the mapping give their working columns, are reserved: a source column
may not be called so (``reserved_columns``).

A reject is one row of ``REJECT_SCHEMA``: the record and line, the column and value, a code below and
a message that says how to fix it. This module is the one place reject codes are defined.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import polars as pl

__all__ = [
    "EXTRA",
    "FIELDS",
    "LINE",
    "MISSING",
    "NOT_ALLOWED",
    "NOT_BOOLEAN",
    "NUL_BYTE",
    "RECORD",
    "REJECT_SCHEMA",
    "TOO_FEW_FIELDS",
    "TOO_LONG",
    "TOO_MANY_FIELDS",
    "WRONG_FORMAT",
    "reserved_columns",
]

RECORD = "_record"
LINE = "_line"
FIELDS = "_fields"  # a ragged record's number of fields (only in batches that hold ragged records)
EXTRA = "_extra_field"  # a record's first field beyond the header's columns, if it has one
# Every column a batch frame gets beside the source's own: the four above, the reader's `_span` and
# the mapping's `_code<n>`, `_parsed<n>`, `_failed` and `_custom_fields_given`. A source column of
# one of these names would be overwritten by it, or break the batch.
_RESERVED = re.compile(r"_(record|line|fields|extra_field|span|code\d+|parsed\d+|failed|custom_fields_given)")

REJECT_SCHEMA = {
    "record": pl.Int64,
    "line": pl.Int64,
    "column": pl.String,
    "value": pl.String,
    "code": pl.String,
    "message": pl.String,
}

MISSING, NOT_ALLOWED, NOT_BOOLEAN, TOO_LONG, WRONG_FORMAT = (
    "F-E-001",
    "F-E-008",
    "F-E-009",
    "F-E-010",
    "F-E-012",
)
# Not domain codes: the file's shape (fields per record) and bytes no database column can store.
TOO_MANY_FIELDS, TOO_FEW_FIELDS, NUL_BYTE = "CSV-E-001", "CSV-E-002", "CSV-E-003"


def reserved_columns(columns: Iterable[str]) -> list[str]:
    """Return the names among `columns` that the batch contract reserves for its own columns."""
    return [column for column in columns if _RESERVED.fullmatch(column)]
