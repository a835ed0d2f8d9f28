"""Import JSON records (or a CSV file an API hands out) from a REST API into the hub database.

`ApiImportJob` is the flow's only parameter. Its calls run in order, one Prefect task each (a paging
call is one task, not one per page); each call may read the previous response (`$.path`), variables
captured by earlier calls (`{{name}}`) and `lastJobExecutionMinusDuration(PT1H)` (see
``tasks/calls.py``). The records are the content of the last call, or the CSV file it downloaded;
they are validated and loaded in one transaction by the CSV job's load path, and the run is recorded
in the run history like a CSV run. Run one locally with `python -m flows.import_json_from_api job.yaml`.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from prefect import flow, runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger
from pydantic import BaseModel, ConfigDict, Field, model_validator

from blocks.api import ApiConnection
from blocks.database import hub_database, state_dir
from flows.import_csv_from_ftp import JOB_NAME
from tasks.calls import (
    CAPTURED,
    ApiCall,
    CallContext,
    CsvFile,
    DownloadPattern,
    JsonFile,
    PagingPattern,
    RetryPattern,
    as_text,
    check_chain,
    records_of,
    render_path,
    resolve_body,
    resolve_value,
)
from tasks.csv import CsvFormat
from tasks.entities import EntityName, entity
from tasks.errors import ImportJobError, SourceRejectedError, SourceUnavailableError
from tasks.file_import import (
    HubTarget,
    LoadSettings,
    RejectThresholdPercent,
    SourceFile,
    import_batches,
    load_file,
)
from tasks.http import DEFAULT_MAX_BYTES, RetryPolicy, decode_json, open_client, safe_url, send
from tasks.jsonpath import JsonPath, JsonValue, compile_jsonpath, find_first
from tasks.ledger import find_loaded_file, finish_run, last_successful_start, start_run
from tasks.mapping import CellFormats, field_problems
from tasks.pagination import walk_pages
from tasks.records import RecordMapper
from tasks.report import (
    FileReport,
    ImportReport,
    Reject,
    final_state,
    publish_artifacts,
    render_text,
    run_job,
    run_summary,
    run_totals,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class HttpSettings(BaseModel):
    """Limits of the job's requests; the defaults suit most APIs."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="HTTP limits")

    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Seconds to wait for each connect, read or write. Empty: the connection block's timeout.",
    )
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=1024,
        description="Largest response (or downloaded file) accepted, in bytes.",
    )
    call_deadline_seconds: float = Field(
        default=1800.0, gt=0, description="Total time one call (all its pages, polls and retries) may take."
    )
    transport_attempts: int = Field(
        default=5, ge=1, le=20, description="Attempts of one request on transient failures (down, 429, 5xx)."
    )
    transport_initial_wait_seconds: float = Field(
        default=1.0, ge=0, description="First wait before retrying a failed request; it grows exponentially."
    )
    retry_after_cap_seconds: float = Field(
        default=120.0, ge=0, description="Longest `Retry-After` wait honoured; longer asks wait this long."
    )

    def policy(self) -> RetryPolicy:
        """Return the transport retry policy these settings describe."""
        return RetryPolicy(
            max_attempts=self.transport_attempts,
            initial_wait=self.transport_initial_wait_seconds,
            max_wait=max(60.0, self.transport_initial_wait_seconds),
            retry_after_cap=self.retry_after_cap_seconds,
            deadline_seconds=self.call_deadline_seconds,
        )


class ApiImportJob(BaseModel):
    """One API import job: which API, which calls in which order, what the records hold, where they go."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="API import job")

    name: str = Field(
        pattern=JOB_NAME,
        description="Unique job name (letters, digits, `-`, `_`, `.`); also the deployment's name.",
    )
    connection: str = Field(min_length=1, description="Name of the API Connection block to call.")
    entity: EntityName = Field(description="What the records hold: one entity of the hub catalogue.")
    calls: list[ApiCall] = Field(
        min_length=1, description="The calls, run in order; the records are the content of the last one."
    )
    mapping: dict[JsonPath, str] | None = Field(
        default=None,
        description="JSONPath in each record -> entity field, e.g. `$.productId: productExternalId`; "
        "`[*]` paths join their values with `||`. Required for JSON records; empty when the last call "
        "downloads a CSV file (its `format.mapping` applies).",
    )
    formats: CellFormats = Field(default_factory=CellFormats, description="How text values are written.")
    target: HubTarget = None
    reject_threshold_percent: RejectThresholdPercent = 10.0
    force: bool = Field(default=False, description="Import a downloaded file the ledger has already seen.")
    initial_since: datetime = Field(
        default=EPOCH,
        description="What `lastJobExecutionMinusDuration(...)` gives on the job's first run (no earlier "
        "SUCCESS or PARTIAL run in the run history), e.g. `2026-01-01T00:00:00Z`. Default: 1970-01-01.",
    )
    http: HttpSettings = Field(
        default_factory=HttpSettings, description="Timeouts, size limits and deadlines."
    )

    @model_validator(mode="after")
    def _check_job(self) -> ApiImportJob:
        check_chain(self.calls)
        downloads_csv = _csv_download(self.calls[-1]) is not None
        if downloads_csv and self.mapping is not None:
            raise ValueError(
                "`mapping`: the last call downloads a CSV file; map its columns in that call's "
                "`pattern.format.mapping` and leave the job's `mapping` empty."
            )
        if not downloads_csv:
            if not self.mapping:
                raise ValueError("`mapping`: map at least the entity's key, e.g. `$.id: productExternalId`.")
            problems = field_problems(entity(self.entity), self.mapping)
            if problems:
                raise ValueError("`mapping`: " + "; ".join(problems) + ".")
        return self


def _csv_download(call: ApiCall) -> CsvFile | None:
    pattern = call.pattern
    if isinstance(pattern, DownloadPattern) and isinstance(pattern.format, CsvFile):
        return pattern.format
    return None


@dataclass(frozen=True)
class DownloadedFile:
    """A file a download call saved locally."""

    url: str
    local_path: Path
    size: int
    sha256: str


@dataclass
class CallOutcome:
    """What a call left for the next ones: its (first or final) response, captures, records, counts."""

    body: JsonValue
    captured: dict[str, JsonValue] = field(default_factory=dict)
    records: list[JsonValue] = field(default_factory=list)
    download: DownloadedFile | None = None
    pages: int = 0
    polls: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Request:
    client: httpx.Client
    call: ApiCall
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: JsonValue
    http: HttpSettings
    deadline: float

    def send(self, params: dict[str, Any] | None = None, method: str | None = None) -> httpx.Response:
        return send(
            self.client,
            method or self.call.method,
            self.path,
            params=params if params is not None else self.query,
            json=self.body,
            headers=self.headers or None,
            max_bytes=self.http.max_bytes,
            deadline=self.deadline,
            policy=self.http.policy(),
        )


@task(name="api-call", task_run_name="{call.name}", cache_policy=NO_CACHE)
def run_call(
    connection_name: str, call: ApiCall, context: CallContext, http: HttpSettings, work_dir: Path
) -> CallOutcome:
    """Run one call (its pages, polls or download) and return what later calls and the load need."""
    connection = ApiConnection.load(connection_name)
    assert isinstance(connection, ApiConnection)
    if http.timeout_seconds is not None:
        connection = connection.model_copy(update={"timeout_seconds": http.timeout_seconds})
    with open_client(connection) as client:
        try:
            outcome = _execute(client, call, context, http, work_dir)
        except ValueError as exc:  # a template that cannot be resolved with this response
            raise SourceRejectedError(f"{exc} Fix the call's values.") from exc
    outcome.captured = _capture(call, outcome.body)
    return outcome


def _execute(
    client: httpx.Client, call: ApiCall, context: CallContext, http: HttpSettings, work_dir: Path
) -> CallOutcome:
    deadline = http.policy().deadline()
    pattern = call.pattern
    if isinstance(pattern, DownloadPattern):
        return _download(client, call, pattern, context, http, deadline, work_dir)
    where = f"call {call.name!r}"
    values = {k: resolve_value(v, context, where=f"{where} path {k}") for k, v in call.path_variables.items()}
    request = _Request(
        client,
        call,
        render_path(call.path, values),
        {k: as_text(resolve_value(v, context, where=f"{where} query {k}")) for k, v in call.query.items()},
        {k: as_text(resolve_value(v, context, where=f"{where} header {k}")) for k, v in call.headers.items()},
        resolve_body(call.body, context, where=f"{where} body") if call.body is not None else None,
        http,
        deadline,
    )
    if isinstance(pattern, PagingPattern):
        return _pages(request, pattern)
    if isinstance(pattern, RetryPattern):
        return _poll(request, pattern)
    body = decode_json(request.send())
    return CallOutcome(body=body, records=records_of(body, call.content_path()))


def _pages(request: _Request, paging: PagingPattern) -> CallOutcome:
    walk = walk_pages(lambda params: decode_json(request.send(params)), paging, request.query)
    records: list[JsonValue] = []
    first: JsonValue = None
    for page in walk:
        first = page.body if first is None else first
        records.extend(page.records)
    return CallOutcome(body=first, records=records, pages=walk.pages, warnings=list(walk.warnings))


def _poll(request: _Request, retry: RetryPattern) -> CallOutcome:
    status, value = 0, None
    for attempt in range(1, retry.max_attempts + 1):
        response = request.send()
        status = response.status_code
        body = decode_json(response) if status == retry.expected_status else None
        value = find_first(retry.condition_path, body) if body is not None else None
        if status == retry.expected_status and as_text(value) == retry.value:
            return CallOutcome(body=body, records=records_of(body, retry.content_path), polls=attempt)
        if attempt < retry.max_attempts:
            if time.monotonic() + retry.interval_seconds >= request.deadline:
                break
            time.sleep(retry.interval_seconds)
    raise SourceUnavailableError(
        f"{request.call.method} {safe_url(request.client.base_url.join(request.path))}: still not ready "
        f"after {attempt} attempt(s): last status {status}, `{retry.condition_path}` was {as_text(value)!r}, "
        f"expected status {retry.expected_status} with {retry.value!r}. Raise the call's "
        "`pattern.max_attempts` or `pattern.interval_seconds` (or `http.call_deadline_seconds`), or run later."
    )


def _download(
    client: httpx.Client,
    call: ApiCall,
    pattern: DownloadPattern,
    context: CallContext,
    http: HttpSettings,
    deadline: float,
    work_dir: Path,
) -> CallOutcome:
    source = pattern.url_from
    if CAPTURED.search(source):
        url = resolve_value(source, context, where=f"call {call.name!r} url_from")
    else:
        url = find_first(compile_jsonpath(source).expression, context.previous)
    if not isinstance(url, str) or not url.strip():
        raise SourceRejectedError(
            f"call {call.name!r}: `{source}` gave no file URL ({as_text(url)[:80]!r}). Check the call's "
            "`pattern.url_from`, or poll until the file is ready with a retry call first."
        )
    response = send(
        client, "GET", url.strip(), max_bytes=http.max_bytes, deadline=deadline, policy=http.policy()
    )
    shown = str(safe_url(response.request.url))
    if isinstance(pattern.format, JsonFile):
        body = decode_json(response)
        return CallOutcome(body=body, records=records_of(body, pattern.format.content_path))
    work_dir.mkdir(parents=True, exist_ok=True)
    local = work_dir / f"{call.name}-{uuid.uuid4().hex[:8]}.csv"
    local.write_bytes(response.content)
    digest = hashlib.sha256(response.content).hexdigest()
    return CallOutcome(body=None, download=DownloadedFile(shown, local, len(response.content), digest))


def _capture(call: ApiCall, body: JsonValue) -> dict[str, JsonValue]:
    captured: dict[str, JsonValue] = {}
    for name, path in call.capture.items():
        value = find_first(path, body) if body is not None else None
        if value is None:
            raise SourceRejectedError(
                f"call {call.name!r}: capture `{name}` ({path}) found nothing in the response. Check the "
                "path (names are case-sensitive) against what the API returns."
            )
        captured[name] = value
    return captured


@task(name="load-records", cache_policy=NO_CACHE)
def load_records(
    job: ApiImportJob, name: str, records: list[JsonValue], run_id: str, rejects_dir: Path
) -> tuple[FileReport, list[Reject], list[str]]:
    """Map, validate and load the records in one transaction; return the report, rejects and warnings."""
    assert job.mapping is not None
    mapper = RecordMapper(job.mapping)
    plan = mapper.plan(entity(job.entity), name=name)
    engine = hub_database(job.target).engine()
    try:
        report, rejects = import_batches(
            engine,
            name,
            mapper.batches(records, page=name),
            plan,
            _settings(job, run_id, None),
            rejects_dir=rejects_dir,
            logger=get_run_logger(),
        )
    finally:
        engine.dispose()
    return report, rejects, mapper.warnings


def _settings(job: ApiImportJob, run_id: str, csv: CsvFile | None) -> LoadSettings:
    # JSON records need no CSV format: the placeholder is never read (import_batches gets the plan).
    return LoadSettings(
        job=job.name,
        run_id=run_id,
        entity=job.entity,
        mapping=csv.mapping if csv else None,
        csv=csv.csv if csv else CsvFormat(delimiter=","),
        formats=job.formats,
        reject_threshold_percent=job.reject_threshold_percent,
    )


@flow(name="import-json-from-api", flow_run_name="{job.name}", validate_parameters=True)
def import_json_from_api(job: ApiImportJob) -> State:
    """Run the job's calls, load the last call's records in one transaction, report what happened."""
    run_id = str(runtime.flow_run.id or uuid.uuid4())
    database = hub_database(job.target)
    engine = database.engine()
    report = ImportReport(
        job=job.name,
        entity=job.entity,
        run_id=run_id,
        database=database.display_url(),
        started_at=start_run(engine, run_id=run_id, job=job.name, kind="json-api", flow_run_id=run_id),
    )
    try:
        last_start = last_successful_start(engine, job.name, before_run=run_id)
        _run_calls_and_load(job, report, engine, last_start)
    except Exception as exc:
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
    publish_artifacts(report)
    get_run_logger().info("\n%s", render_text(report))
    return final_state(report)


def _run_calls_and_load(
    job: ApiImportJob, report: ImportReport, engine: sa.Engine, last_start: datetime | None
) -> None:
    context = CallContext(last_start=last_start, initial_since=job.initial_since)
    work = state_dir() / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    rejects_dir = state_dir() / "rejects" / report.run_id
    with tempfile.TemporaryDirectory(dir=work, prefix="api-run-") as local_dir:
        outcome = CallOutcome(body=None)
        for call in job.calls:
            outcome = run_call(job.connection, call, context, job.http, Path(local_dir))
            report.pages += outcome.pages
            report.retries += max(outcome.polls - 1, 0)
            report.warnings += outcome.warnings
            context = CallContext(
                previous=outcome.body,
                has_previous=True,
                variables={**context.variables, **outcome.captured},
                last_start=last_start,
                initial_since=job.initial_since,
            )
        last = job.calls[-1]
        csv = _csv_download(last)
        if outcome.download is not None and csv is not None:
            report.add(*_load_download(job, outcome.download, csv, report.run_id, engine, rejects_dir))
        elif not outcome.records:
            report.add(
                FileReport(path=last.name, status="SKIPPED", message="The last call returned no records."), []
            )
        else:
            file_report, rejects, warnings = load_records(
                job, last.name, outcome.records, report.run_id, rejects_dir
            )
            report.add(file_report, rejects)
            report.warnings += warnings


def _load_download(
    job: ApiImportJob,
    downloaded: DownloadedFile,
    csv: CsvFile,
    run_id: str,
    engine: sa.Engine,
    rejects_dir: Path,
) -> tuple[FileReport, list[Reject]]:
    seen = None if job.force else find_loaded_file(engine, job.name, sha256=downloaded.sha256)
    if seen is not None:
        return FileReport(
            path=downloaded.url,
            status="SKIPPED",
            size=downloaded.size,
            sha256=downloaded.sha256,
            message=f"Already imported by this job (same content as {seen.path}); run with `force` to import again.",
        ), []
    source = SourceFile(downloaded.url, downloaded.local_path, downloaded.size, None, downloaded.sha256)
    return load_file(job.target, source, _settings(job, run_id, csv), rejects_dir)


def load_job(path: Path) -> ApiImportJob:
    """Read a job from a YAML file holding either the job itself or `{job: ...}`."""
    import yaml

    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return ApiImportJob.model_validate(document.get("job", document))


def main(argv: list[str]) -> int:
    """Run the job file given on the command line."""
    if len(argv) != 1:
        print("usage: python -m flows.import_json_from_api JOB.yaml", file=sys.stderr)
        return 2
    state, report = run_job(import_json_from_api, load_job(Path(argv[0])))
    print(render_text(report) if report else f"{state.name}: {state.message}")
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
