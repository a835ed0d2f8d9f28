"""Import JSON records (or a CSV file an API hands out) from a REST API into the hub database.

`ApiImportJob` is the flow's only parameter. Its calls run in order, one Prefect task each (a paging
call is one task, not one per page); each call may read the previous response (`$.path`), variables
captured by earlier calls (`${name}`) and `lastJobExecutionMinusDuration(PT1H)` (see
``tasks/api/calls.py``); ``tasks/api/runner.py`` runs them. The records are the content of the last call, or the CSV file it downloaded;
they are validated and loaded in one transaction by the CSV job's load path, and the run is recorded
in the run history like a CSV run. Run one locally with `python -m flows.import_json_from_api job.yaml`;
test its connection first with `python -m flows.import_json_from_api --check job.yaml`.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from prefect import flow
from prefect.client.schemas.objects import State
from pydantic import ConfigDict, Field, model_validator

from blocks.api import ApiConnection
from blocks.database import state_dir
from flows._job import JOB_NAME, command_line, load_job_file
from tasks.api.calls import (
    ApiCall,
    CallContext,
    CsvFile,
    DownloadPattern,
    check_chain,
)
from tasks.api.check import CheckResult, check_api_connection
from tasks.api.jsonpath import JsonPath
from tasks.api.pipeline import load_records, run_calls
from tasks.api.records import ChildRecords, RecordMapper, record_mapper
from tasks.api.runner import DownloadedFile, HttpSettings
from tasks.api.runner import run_call as run_call  # re-exported: `deployments.preview` runs calls with it
from tasks.csv.load import load_file
from tasks.hub.entities import EntityName, entity
from tasks.hub.ledger import find_loaded_file, last_successful_start
from tasks.hub.load import (
    HubTarget,
    LoadSettings,
    RejectThresholdPercent,
    SourceFile,
)
from tasks.hub.lock import BusyPolicy
from tasks.hub.mapping import CellFormats, field_problems
from tasks.job_model import BlockRef, JobModel, import_blocks
from tasks.run.history import conclude, recorded_run
from tasks.run.report import (
    FileReport,
    ImportReport,
    Reject,
)
from tasks.shell import AfterImportStep, BeforeImportStep, after_import, before_import
from tasks.ui_schema import OptionalMapping, json_editor

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ApiImportJob(JobModel):
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
    mapping: OptionalMapping[JsonPath, str] = Field(
        default=None,
        json_schema_extra=json_editor,  # the v2 form shows `dict | None` with no editor
        description="JSONPath in each record -> entity field, e.g. `$.productId: productExternalId`; "
        "`[*]` paths join their values with `||`. Required for JSON records; empty (`{}` or none) when the "
        "last call downloads a CSV file (its `format.mapping` applies).",
    )
    children: ChildRecords | None = Field(
        default=None,
        title="Child records",
        description="Load a nested list of each record as child rows (orders and their `orderLines`): "
        "one row per item, with the record's own mapped fields repeated. Empty: no child rows.",
    )
    formats: CellFormats = Field(default_factory=CellFormats, description="How text values are written.")
    target: HubTarget = None
    reject_threshold_percent: RejectThresholdPercent = 10.0
    force: bool = Field(default=False, description="Import a downloaded file the ledger has already seen.")
    before_import: BeforeImportStep | None = Field(
        default=None, description="Shell step run on a downloaded CSV file before it is read (e.g. unpack)."
    )
    after_import: AfterImportStep | None = Field(
        default=None, description="Shell step run once after the load, on SUCCESS (e.g. re-index)."
    )
    busy: BusyPolicy = Field(
        default_factory=BusyPolicy,
        description="What a run does while another run of this job is still going.",
    )
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
        if self.before_import is not None and not downloads_csv:
            raise ValueError(
                "`before_import`: it runs on a downloaded CSV file, and the last call downloads none. "
                "Remove it, or make the last call a download of a CSV file."
            )
        if self.children is not None and len(entity(self.entity).tables) < 2:
            raise ValueError(
                f"`children`: {self.entity} has no child table; child records work with entities such as "
                "orders (`orderLines` -> order_lines)."
            )
        if not downloads_csv:
            if not self.mapping:
                raise ValueError("`mapping`: map at least the entity's key, e.g. `$.id: productExternalId`.")
            problems = field_problems(entity(self.entity), {**self.mapping, **self._child_columns()})
            if problems:
                raise ValueError("`mapping`: " + "; ".join(problems) + ".")
        return self

    def blocks(self) -> list[BlockRef]:
        """Return the saved blocks the job names: its API connection, target and shell steps."""
        connection = BlockRef("connection", ApiConnection, self.connection)
        return [connection, *import_blocks(self.target, self.before_import, self.after_import)]

    def _child_columns(self) -> dict[str, str]:
        if self.children is None:
            return {}
        prefix = self.children.path + "[*]"
        return {prefix + path.removeprefix("$"): target for path, target in self.children.mapping.items()}

    def record_mapper(self) -> RecordMapper:
        """Return the compiled mapping of the job's records (and child records)."""
        assert self.mapping is not None
        return record_mapper(self.mapping, self.children)


def _csv_download(call: ApiCall) -> CsvFile | None:
    pattern = call.pattern
    if isinstance(pattern, DownloadPattern) and isinstance(pattern.format, CsvFile):
        return pattern.format
    return None


def _settings(job: ApiImportJob, run_id: str, csv: CsvFile | None) -> LoadSettings:
    return LoadSettings(
        job=job.name,
        run_id=run_id,
        entity=job.entity,
        mapping=csv.mapping if csv else None,
        formats=job.formats,
        reject_threshold_percent=job.reject_threshold_percent,
        force=job.force,
    )


@flow(name="import-json-from-api", flow_run_name="{job.name}", validate_parameters=True)
def import_json_from_api(job: ApiImportJob) -> State:
    """Run the job's calls, load the last call's records in one transaction, report what happened."""
    report = recorded_run(
        job=job.name,
        entity=job.entity,
        target=job.target,
        kind="json-api",
        busy=job.busy,
        work=partial(_import_calls, job),
    )
    return conclude(report)


def _import_calls(job: ApiImportJob, report: ImportReport, engine: sa.Engine) -> None:
    last_start = last_successful_start(engine, job.name, before_run=report.run_id)
    _run_calls_and_load(job, report, engine, last_start)
    after_import(job.after_import, report)


def _run_calls_and_load(
    job: ApiImportJob, report: ImportReport, engine: sa.Engine, last_start: datetime | None
) -> None:
    context = CallContext(last_start=last_start, initial_since=job.initial_since)
    work = state_dir() / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    rejects_dir = state_dir() / "rejects" / report.run_id
    with tempfile.TemporaryDirectory(dir=work, prefix="api-run-") as local_dir:
        outcome, loaded = run_calls(
            job.connection,
            job.calls,
            context,
            job.http,
            Path(local_dir),
            job.name,
            report,
            lambda name, feed: load_records.submit(
                job.target,
                job.mapping or {},
                job.children,
                name,
                feed,
                _settings(job, report.run_id, None),
                rejects_dir,
            ),
        )
        last = job.calls[-1]
        csv = _csv_download(last)
        if outcome.download is not None and csv is not None:
            report.add(*_load_download(job, outcome.download, csv, report.run_id, engine, rejects_dir))
        elif outcome.spool is None or not outcome.record_count:
            report.add(
                FileReport(path=last.name, status="SKIPPED", message="The last call returned no records."), []
            )
        else:
            file_report, rejects, warnings = loaded or load_records(
                job.target,
                job.mapping or {},
                job.children,
                last.name,
                outcome.spool,
                _settings(job, report.run_id, None),
                rejects_dir,
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
    facts = {"DATAHUB_JOB": job.name, "DATAHUB_ENTITY": job.entity, "DATAHUB_REMOTE_PATH": downloaded.url}
    with before_import(job.before_import, downloaded.local_path, facts) as local_path:
        source = SourceFile(downloaded.url, local_path, downloaded.size, None, downloaded.sha256)
        return load_file(engine, source, csv.csv, _settings(job, run_id, csv), rejects_dir)


def load_job(path: Path) -> ApiImportJob:
    """Read a job from a YAML file holding either the job itself or `{job: ...}`."""
    return load_job_file(ApiImportJob, path)


def check_job_connection(job: ApiImportJob) -> CheckResult:
    """Test the job's API connection: block, base URL and credentials (with its first call if a GET)."""
    return check_api_connection(
        job.connection,
        job.calls[0],
        timeout_seconds=job.http.timeout_seconds,
        max_bytes=job.http.max_bytes,
        initial_since=job.initial_since,
    )


def check_job(job: ApiImportJob) -> int:
    result = check_job_connection(job)
    for line in [*(f"problem: {p}" for p in result.problems), *result.notes]:
        print(line)
    if not result.problems:
        print(f"{job.connection}: connection OK")
    return 1 if result.problems else 0


def main(argv: list[str]) -> int:
    """Run (or, with --check, test the connection of) the job file given on the command line."""
    return command_line(
        argv,
        module="flows.import_json_from_api",
        model=ApiImportJob,
        flow=import_json_from_api,
        check=check_job,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
