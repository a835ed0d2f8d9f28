"""REST APIs: the job's calls, their templates and paging, HTTP with one retry layer, and the records they yield.

- ``calls``: the call models (patterns: default, paging, download, retry) and their templates
  (``${...}`` values, the path, the body, ``since``), resolved against a ``CallContext``.
- ``http``: the client (auth and masking, TLS), the one retry layer, capped body reads and downloads,
  status messages; ``jsonpath``: compiled JSONPath lookups; ``paging``: walking the pages of a call.
- ``runner``: ``run_call``, the Prefect task that runs one call; ``check``: the connection check;
  ``hosts``: the hosts a download URL taken from a response may reach (the worker's allow-list).
- ``spool``, ``feed``: a call's records on disk, or handed page by page to a load running alongside.
- ``records``: records (and their children) -> batches in the hub's contract.
- ``pipeline``: the call pipeline: the calls in order, the last one's records loaded (while its pages
  arrive, for a paging call) by the ``load_records`` task.

The names below are the package's public face; everything else is private to it.
"""

from __future__ import annotations

from tasks.api.calls import (
    ApiCall,
    CallContext,
    CsvFile,
    CursorPattern,
    DefaultPattern,
    DownloadPattern,
    LinkPattern,
    OffsetPattern,
    PagingPattern,
    RetryPattern,
    as_text,
    check_chain,
)
from tasks.api.check import CheckResult, check_api_connection
from tasks.api.feed import RecordFeed
from tasks.api.http import open_client
from tasks.api.jsonpath import JsonPath, JsonValue, find_first
from tasks.api.pipeline import load_records, run_calls
from tasks.api.records import ChildRecords, RecordMapper, record_mapper
from tasks.api.runner import CallOutcome, DownloadedFile, HttpSettings, run_call
from tasks.api.spool import Spool

__all__ = [
    "ApiCall",
    "CallContext",
    "CallOutcome",
    "CheckResult",
    "ChildRecords",
    "CsvFile",
    "CursorPattern",
    "DefaultPattern",
    "DownloadPattern",
    "DownloadedFile",
    "HttpSettings",
    "JsonPath",
    "JsonValue",
    "LinkPattern",
    "OffsetPattern",
    "PagingPattern",
    "RecordFeed",
    "RecordMapper",
    "RetryPattern",
    "Spool",
    "as_text",
    "check_api_connection",
    "check_chain",
    "find_first",
    "load_records",
    "open_client",
    "record_mapper",
    "run_call",
    "run_calls",
]
