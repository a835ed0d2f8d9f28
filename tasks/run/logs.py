"""Expected failures are logged without a Python traceback; unexpected ones keep theirs.

Prefect's task engine logs every failed task run with its traceback. An `ImportJobError` (a refused
login, a rejected file, a threshold crossed: `tasks.errors`) already says what happened and what to
change; its traceback only buries that line in the worker's log. A bug (any other exception) keeps it.
"""

from __future__ import annotations

import logging

from tasks.errors import ImportJobError

ENGINE_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


class ExpectedFailureFilter(logging.Filter):
    """Drop the traceback of a record whose exception is one of ours; keep the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        if exc_info and isinstance(exc_info[1], ImportJobError):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_expected_failures() -> None:
    """Install the filter on Prefect's run loggers, once per process."""
    for name in ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(known, ExpectedFailureFilter) for known in logger.filters):
            logger.addFilter(ExpectedFailureFilter())
