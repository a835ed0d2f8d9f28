"""A run of a job: opened, closed and recorded in the hub's run history, its report, rendering and artifacts.

- ``report``: what a run did, file by file (``ImportReport``, ``FileReport``, rejects), its text and
  markdown renderings, its Prefect artifacts and its final state.
- ``storage``: rejects files also written where the worker says (`DATAHUB_REJECTS_URL`, fsspec).
- ``progress``: the run's progress artifact (bytes of files, pages), updated at most once a second.
- ``history``: ``recorded_run`` opens a run in the history and closes it with the report's totals;
  ``conclude`` publishes the report and returns the run's final state.

The names below are the package's public face; everything else is private to it.
"""

from __future__ import annotations

from tasks.run.history import conclude, recorded_run
from tasks.run.progress import Progress, current_progress, run_progress
from tasks.run.report import (
    REJECT_SAMPLE,
    FileReport,
    ImportReport,
    Reject,
    RejectSink,
    RepeatedKey,
    TableResult,
    counts_text,
    ignored_text,
    outcome_line,
    render_markdown,
    render_text,
    report_of,
    run_job,
)
from tasks.run.storage import REJECTS_URL_VAR, rejects_storage, store_rejects_file

__all__ = [
    "REJECTS_URL_VAR",
    "REJECT_SAMPLE",
    "FileReport",
    "ImportReport",
    "Progress",
    "Reject",
    "RejectSink",
    "RepeatedKey",
    "TableResult",
    "conclude",
    "counts_text",
    "current_progress",
    "ignored_text",
    "outcome_line",
    "recorded_run",
    "rejects_storage",
    "render_markdown",
    "render_text",
    "report_of",
    "run_job",
    "run_progress",
    "store_rejects_file",
]
