"""One import run of any job kind: opened in the run history, closed whatever happens, then reported.

Both import flows (CSV over FTP, JSON from APIs) run their work through `recorded_run`, which holds
the job's lock in the hub database for the whole run, and end with `conclude`, so a run is never left
RUNNING in `datahub_runs`, a job's own errors become the report's error (the run is FAILED, the flow
still publishes its report), and anything else is re-raised.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import sqlalchemy as sa
from prefect import runtime
from prefect.logging import get_run_logger

from blocks.database import hub_database
from tasks.errors import ImportJobError, JobBusyError
from tasks.hub.ledger import (
    RunTotals,
    fails_as_last_run,
    finish_run,
    prepare_hub,
    running_run,
    start_run,
)
from tasks.hub.lock import BusyPolicy, OnBusy, job_lock
from tasks.run.logs import quiet_expected_failures
from tasks.run.progress import prefect_progress, run_progress
from tasks.run.report import (
    STATUS_TAG_PREFIX,
    ImportReport,
    counts_text,
    final_state,
    outcome_reason,
    publish_artifacts,
    render_text,
    run_summary,
    run_title,
    state_message,
    status_tag,
)

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State


Work = Callable[[ImportReport, sa.Engine], None]


def recorded_run(
    *, job: str, entity: str, target: str | None, kind: str, busy: BusyPolicy, work: Work
) -> ImportReport:
    """Run `work` holding the job's lock, recorded in the run history; return the run's report.

    The lock is the job's own, in the hub database (`tasks.hub.lock`): a second run of the job, from
    any server or machine, waits or is skipped as `busy` says. A run is never left RUNNING in the
    history; a job's own errors become the report's error (the run is FAILED), anything else is re-raised.
    """
    quiet_expected_failures()
    run_id = str(runtime.flow_run.id or uuid.uuid4())
    database = hub_database(target)
    engine = database.engine()
    try:
        prepare_hub(engine)
        report = ImportReport(
            job=job,
            entity=entity,
            run_id=run_id,
            kind=kind,
            database=database.display_url(),
            started_at=datetime.now(UTC),
        )
        try:
            with job_lock(
                engine,
                job,
                on_busy=busy.on_busy or _deployment_on_busy(),
                max_wait_seconds=busy.max_wait_minutes * 60,
                holder=partial(running_run, engine, job),
                logger=get_run_logger(),
            ):
                report.started_at = start_run(engine, run_id=run_id, job=job, kind=kind, flow_run_id=run_id)
                publish = prefect_progress(job) if runtime.flow_run.id else None
                with run_progress(publish) as progress:
                    _run_work(work, report, engine)
                progress.finish(state_message(report))
        except JobBusyError as exc:
            get_run_logger().warning("%s", exc)
            _record_busy(engine, report, str(exc), kind)
        return report
    finally:
        engine.dispose()


def _run_work(work: Work, report: ImportReport, engine: sa.Engine) -> None:
    try:
        work(report, engine)
    except Exception as exc:
        # Listing failed, a call failed, or a bug: the run is FAILED in the history too, never left RUNNING.
        report.error = str(exc) if isinstance(exc, ImportJobError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, ImportJobError):
            raise
    finally:
        _finish(engine, report)


def _record_busy(engine: sa.Engine, report: ImportReport, reason: str, kind: str) -> None:
    report.warnings.append(reason)
    start_run(
        engine, run_id=report.run_id, job=report.job, kind=kind, flow_run_id=report.run_id, holds_job=False
    )
    _finish(engine, report)


def _finish(engine: sa.Engine, report: ImportReport) -> None:
    report.settle(datetime.now(UTC))
    message = run_summary(report)
    if report.status == "FAILED":  # the same failure again (a bad file every 15 minutes) alerts once
        report.repeat = fails_as_last_run(engine, report.job, before_run=report.run_id, message=message)
    finish_run(engine, run_id=report.run_id, status=report.status, totals=run_totals(report), message=message)


def _deployment_on_busy() -> OnBusy:
    """`skip` when the run's deployment cancels new runs while one is going (CANCEL_NEW), else `wait`."""
    deployment_id = runtime.deployment.id
    if not deployment_id:
        return "wait"
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            options = client.read_deployment(deployment_id).concurrency_options
    except Exception as exc:  # the server is the run's own; if it cannot answer, waiting is the safe side
        get_run_logger().warning(
            "Could not read the deployment's collision strategy (%s); waiting if busy.", exc
        )
        return "wait"
    strategy = getattr(options.collision_strategy, "value", None) if options else None
    return "skip" if strategy == "CANCEL_NEW" else "wait"


def conclude(report: ImportReport) -> State:
    """Publish the run's artifacts, name, tag and event, log its report and return the flow's final state."""
    publish_artifacts(report)
    mark_flow_run(report)
    emit_run_event(report)
    get_run_logger().info("\n%s", render_text(report))
    return final_state(report)


def mark_flow_run(report: ImportReport) -> None:
    """Name the flow run after its outcome and tag it with its status, where every runs list shows them.

    A runs list row shows the run's name, state badge and (some of) its tags, never the state message:
    the name carries the outcome ("PARTIAL · 1 of 12 rejected · products-from-erp-ftp"); the tag (`datahub:partial`)
    is for filters and automations.
    """
    flow_run_id = runtime.flow_run.id
    if not flow_run_id:
        return
    from prefect.client.orchestration import get_client

    tags = [status_tag(report), *(t for t in runtime.flow_run.tags if not t.startswith(STATUS_TAG_PREFIX))]
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run_id, name=run_title(report), tags=tags)
    except Exception as exc:  # the run's outcome stands without its name and tag; say so, do not fail the run
        get_run_logger().warning("Could not name and tag the flow run after its outcome (%s).", exc)


def emit_run_event(report: ImportReport) -> None:
    """Emit `datahub.run.<status>` about the job, for automations: job, entity, status, counts and reason.

    Prefect relates it to the flow run, its flow, deployment and tags (the run's context).
    """
    from prefect.events import emit_event

    emit_event(
        event=f"datahub.run.{report.status.lower()}",
        resource={
            "prefect.resource.id": f"datahub.job.{report.job}",
            "prefect.resource.name": report.job,
            "datahub.entity": report.entity,
            "datahub.status": report.status,
            "datahub.repeat": str(report.repeat).lower(),
        },
        payload={
            "job": report.job,
            "entity": report.entity,
            "status": report.status,
            "run_id": report.run_id,
            "counts": counts_text(report),
            "rows_read": report.total("rows_read"),
            "inserted": report.total("inserted"),
            "updated": report.total("updated"),
            "unchanged": report.total("unchanged"),
            "rejected": report.total("rejected"),
            "files": len(report.files),
            "pages": report.pages,
            "reason": outcome_reason(report)[:2000],
        },
    )


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
