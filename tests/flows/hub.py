"""Helpers of the end-to-end tests: run a flow for its report, read the hub database back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from prefect.client.schemas.objects import State

from tasks.run.report import ImportReport, run_job


def run_for_report(flow: Callable[..., Any], job: Any) -> tuple[State, ImportReport]:
    """Run `flow` on `job`; fail the test when the run left no report."""
    state, report = run_job(flow, job)
    assert report is not None, f"no report: {state.name} {state.message}"
    return state, report


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """Return the rows `query` reads from the hub database at `url`."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = [tuple(row) for row in conn.exec_driver_sql(query).all()]
    engine.dispose()
    return found


def status_of(state: State) -> str:
    """The run's status (SUCCESS, PARTIAL, SKIPPED, FAILED), as its final state's message begins.

    Prefect's own state names (Completed, Failed) say less: a run with rejects is Completed.
    """
    return (state.message or "").partition(":")[0]
