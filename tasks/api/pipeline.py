"""The call pipeline of an API job: its calls in order, each resolved against what the earlier ones left,
and the last call's records loaded into the hub.

When the last call is a paging call, its load runs at the same time and gets each page as it arrives
(``tasks/api/feed.py``), so fetching and loading overlap instead of adding up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger

from blocks.database import hub_database
from tasks.api.calls import PAGED_PATTERNS, ApiCall, CallContext
from tasks.api.feed import RecordFeed
from tasks.api.records import ChildRecords, record_mapper
from tasks.api.runner import CallOutcome, HttpSettings, run_call
from tasks.api.spool import Spool
from tasks.errors import FeedAbandonedError, ImportJobError
from tasks.hub.entities import entity
from tasks.hub.load import LoadSettings, import_batches
from tasks.run.report import FileReport, ImportReport, Reject

Loaded = tuple[FileReport, list[Reject], list[str]]
# Starts the load of the last (paging) call's records, fed page by page: (call name, feed) -> its future.
StartLoad = Callable[[str, RecordFeed], PrefectFuture[Loaded]]


@task(name="load-records", cache_policy=NO_CACHE)
def load_records(
    target: str | None,
    mapping: Mapping[str, str],
    children: ChildRecords | None,
    name: str,
    records: Spool | RecordFeed,
    settings: LoadSettings,
    rejects_dir: Path,
) -> Loaded:
    """Map, validate and load the records (spooled, or fed by a running call) in one transaction.

    Returns the report, the rejects and the mapping's warnings.
    """
    mapper = record_mapper(mapping, children)
    plan = mapper.plan(entity(settings.entity), name=name)
    engine = hub_database(target).engine()
    try:
        report, rejects = import_batches(
            engine,
            name,
            mapper.batches(records.records_iter(), page=name),
            plan,
            settings,
            rejects_dir=rejects_dir,
            logger=get_run_logger(),
        )
    finally:
        engine.dispose()
        if isinstance(records, RecordFeed):
            records.close()
    return report, rejects, mapper.warnings


def run_calls(
    connection: str,
    calls: list[ApiCall],
    context: CallContext,
    http: HttpSettings,
    local_dir: Path,
    job_name: str,
    report: ImportReport,
    start_load: StartLoad,
) -> tuple[CallOutcome, Loaded | None]:
    """Run the calls in order, counting their pages, polls and warnings into `report`.

    Returns the last call's outcome and, when it is a paging call, its records already loaded (by the
    load `start_load` starts).
    """
    outcome = CallOutcome(body=None)
    loaded: Loaded | None = None
    for call in calls:
        if call is calls[-1] and isinstance(call.pattern, PAGED_PATTERNS):
            outcome, loaded = _page_while_loading(
                connection, call, context, http, local_dir, job_name, start_load
            )
        else:
            outcome = run_call(connection, call, context, http, local_dir, job_name)
        report.pages += outcome.pages
        report.retries += max(outcome.polls - 1, 0)
        report.warnings += outcome.warnings
        context = context.after(outcome.body, outcome.captured)
    return outcome, loaded


def _page_while_loading(
    connection: str,
    call: ApiCall,
    context: CallContext,
    http: HttpSettings,
    local_dir: Path,
    job_name: str,
    start_load: StartLoad,
) -> tuple[CallOutcome, Loaded]:
    feed = RecordFeed()
    loading = start_load(call.name, feed)
    try:
        outcome = run_call(connection, call, context, http, local_dir, job_name, feed=feed)
    except FeedAbandonedError as exc:
        stopped, _, _ = loading.result()  # the load stopped first: raises its error if it raised one
        raise ImportJobError(
            f"{call.name}: the load stopped before the last page: {stopped.message}"
        ) from exc
    except BaseException as exc:
        feed.fail(exc)  # already done by the call itself, unless it failed before it started
        loading.wait()  # the load rolled back; the call's error is the one to report
        raise
    return outcome, loading.result()
