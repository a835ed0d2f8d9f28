"""One import run of any job kind: opened in the run history, closed whatever happens, then reported.

Both import flows (CSV over FTP, JSON from APIs) wrap their work in `recorded_run` and end with
`conclude`, so a run is never left RUNNING in `datahub_runs`, a job's own errors become the report's
error (the run is FAILED, the flow still publishes its report), and anything else is re-raised.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from prefect import runtime
from prefect.logging import get_run_logger

from blocks.database import hub_database
from tasks.errors import ImportJobError
from tasks.hub.ledger import RunTotals, finish_run, start_run
from tasks.run.report import ImportReport, final_state, publish_artifacts, render_text, run_summary

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State


@contextmanager
def recorded_run(
    *, job: str, entity: str, target: str | None, kind: str
) -> Iterator[tuple[ImportReport, sa.Engine]]:
    """Start the run in the run history; yield its report and the hub database; finish it on the way out."""
    run_id = str(runtime.flow_run.id or uuid.uuid4())
    database = hub_database(target)
    engine = database.engine()
    report = ImportReport(
        job=job,
        entity=entity,
        run_id=run_id,
        database=database.display_url(),
        started_at=start_run(engine, run_id=run_id, job=job, kind=kind, flow_run_id=run_id),
    )
    try:
        yield report, engine
    except Exception as exc:
        # Listing failed, a call failed, or a bug: the run is FAILED in the history too, never left RUNNING.
        report.error = str(exc) if isinstance(exc, ImportJobError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, ImportJobError):
            raise
    finally:
        report.settle(datetime.now(UTC))
        finish_run(
            engine,
            run_id=run_id,
            status=report.status,
            totals=run_totals(report),
            message=run_summary(report),
        )
        engine.dispose()


def conclude(report: ImportReport) -> State:
    """Publish the run's artifacts, log its report and return the flow's final state."""
    publish_artifacts(report)
    get_run_logger().info("\n%s", render_text(report))
    return final_state(report)


def run_totals(report: ImportReport) -> RunTotals:
    """Return the counts of the run history row."""
    return RunTotals(
        files=len(report.files),
        rows_read=report.total("rows_read"),
        inserted=report.total("inserted"),
        updated=report.total("updated"),
        unchanged=report.total("unchanged"),
        rejected=report.total("rejected"),
    )
