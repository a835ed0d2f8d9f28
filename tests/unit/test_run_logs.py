"""Expected failures in the worker's log: one line, no traceback; a bug keeps its traceback."""

from __future__ import annotations

import io
import logging

from tasks.errors import SourceRejectedError
from tasks.run.logs import ExpectedFailureFilter, quiet_expected_failures


def _logged(error: Exception) -> str:
    logger = logging.getLogger("test.expected-failures")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.addFilter(ExpectedFailureFilter())
    try:
        try:
            raise error
        except Exception as exc:  # as Prefect's task engine logs a failed task run
            logger.error(f"Task run failed with exception: {exc!r}", exc_info=True)
    finally:
        logger.removeHandler(handler)
        logger.filters.clear()
    return stream.getvalue()


def test_an_expected_failure_is_one_line_and_a_bug_keeps_its_traceback() -> None:
    refused = _logged(SourceRejectedError("erp-ftp: login refused (530). Check the block's password."))
    assert refused == (
        'Task run failed with exception: SourceRejectedError("erp-ftp: login refused (530). Check the '
        "block's password.\")\n"
    )
    bug = _logged(KeyError("productNames"))
    assert bug.startswith("Task run failed with exception: KeyError('productNames')\nTraceback (most recent")


def test_the_filter_goes_on_prefects_run_loggers_once() -> None:
    quiet_expected_failures()
    quiet_expected_failures()
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, ExpectedFailureFilter) for f in filters) == 1
