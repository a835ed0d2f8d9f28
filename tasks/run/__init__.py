"""A run of a job: opened, closed and recorded in the hub's run history, its report, rendering and artifacts.

- ``report``: what a run did, file by file (``ImportReport``, ``FileReport``, rejects), its text and
  markdown renderings, its Prefect artifacts and its final state.
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
    TableResult,
    ignored_text,
    outcome_line,
    render_markdown,
    render_text,
    report_of,
    run_job,
)

__all__ = [
    "REJECT_SAMPLE",
    "FileReport",
    "ImportReport",
    "Progress",
    "Reject",
    "RejectSink",
    "TableResult",
    "conclude",
    "current_progress",
    "ignored_text",
    "outcome_line",
    "recorded_run",
    "render_markdown",
    "render_text",
    "report_of",
    "run_job",
    "run_progress",
]
