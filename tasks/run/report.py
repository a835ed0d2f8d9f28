"""What a run did: the ImportReport a flow returns, its rejects, and the Prefect artifacts showing it."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from pydantic import BaseModel, Field

from tasks.errors import ImportFailedError

FileStatus = Literal["SUCCESS", "PARTIAL", "SKIPPED", "FAILED"]
RunStatus = Literal["SUCCESS", "PARTIAL", "SKIPPED", "FAILED"]
REJECT_SAMPLE = 200
SAMPLE_VALUE_CHARS = 200  # a reject's value in reports and artifacts; the rejects file keeps it whole

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State


class Reject(BaseModel):
    """One broken rule of one record."""

    record: int | None = Field(description="Record number in the file; 1 is the first data row.")
    line: int | None = Field(description="Physical line where the record starts (the header is line 1).")
    column: str = Field(description="Source column (or field) that broke the rule.")
    value: str | None = Field(description="Raw value of the cell, as read.")
    code: str = Field(description="The domain's error code, e.g. F-E-012.")
    message: str = Field(description="What is wrong and what is expected.")


class TableResult(BaseModel):
    """Rows a file changed in one table."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


class FileReport(BaseModel):
    """What happened to one source file."""

    path: str
    status: FileStatus
    message: str = ""
    size: int | None = None
    sha256: str | None = None
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    duplicates: int = 0
    tables: dict[str, TableResult] = Field(default_factory=dict)
    ignored_columns: list[str] = Field(default_factory=list)
    moved_to: str | None = None
    rejects_file: str | None = None
    seconds: float = 0.0


class ImportReport(BaseModel):
    """What a run of an import job did: the flow's return value and the run's artifacts."""

    job: str
    entity: str
    run_id: str
    status: RunStatus = "SKIPPED"
    started_at: datetime
    finished_at: datetime | None = None
    database: str = ""
    files: list[FileReport] = Field(default_factory=list)
    rejects: list[Reject] = Field(default_factory=list, description="The first rejects of the run.")
    warnings: list[str] = Field(default_factory=list)
    error: str = Field(default="", description="Why the run failed before or between files, if it did.")
    pages: int = 0
    retries: int = 0

    def total(self, name: Literal["rows_read", "inserted", "updated", "unchanged", "rejected"]) -> int:
        """Return the sum of one count over the files."""
        return sum(getattr(report, name) for report in self.files)

    def add(self, report: FileReport, rejects: list[Reject]) -> None:
        """Add a file's outcome and the first of its rejects."""
        self.files.append(report)
        room = REJECT_SAMPLE - len(self.rejects)
        self.rejects.extend(rejects[: max(room, 0)])

    def settle(self, finished_at: datetime) -> RunStatus:
        """Derive the run status from the files' statuses and return it."""
        statuses = {report.status for report in self.files}
        if "FAILED" in statuses or self.error:
            self.status = "FAILED"
        elif "PARTIAL" in statuses:
            self.status = "PARTIAL"
        elif "SUCCESS" in statuses:
            self.status = "SUCCESS"
        else:
            self.status = "SKIPPED"
        self.finished_at = finished_at
        return self.status

    @property
    def seconds(self) -> float:
        """Return the run's duration."""
        end = self.finished_at or self.started_at
        return (end - self.started_at).total_seconds()


class RejectSink:
    """Write every reject of a file to a CSV file, keeping only the first ones in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.sample: list[Reject] = []

    def add(self, rejects: pl.DataFrame) -> None:
        """Append a frame of rejects (columns of `tasks.hub.mapping.REJECT_SCHEMA`)."""
        if rejects.height == 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        first = self.count == 0
        with self.path.open("a", encoding="utf-8", newline="") as sink:
            writer = csv.writer(sink)
            if first:
                writer.writerow(rejects.columns)
            writer.writerows(rejects.iter_rows())
        self.count += rejects.height
        room = REJECT_SAMPLE - len(self.sample)
        if room > 0:
            self.sample.extend(
                Reject(**(row | {"value": _shortened(row["value"])}))
                for row in rejects.head(room).iter_rows(named=True)
            )
            # The database's checks come after the batches' (a new key missing a field for creation):
            # shown in record order, as a reader of the file looks for them.
            self.sample.sort(key=lambda reject: (reject.record is None, reject.record or 0, reject.line or 0))


def _shown(value: str | None) -> str:
    # A blank cell is read as null: say "blank", not Python's `None`.
    return "(blank)" if value is None or not value.strip() else repr(value)


def _shortened(value: str | None) -> str | None:
    # A 1 MB cell would make a 1 MB report, artifact and log line.
    if value is None or len(value) <= SAMPLE_VALUE_CHARS:
        return value
    return f"{value[:SAMPLE_VALUE_CHARS]}... ({len(value):,} characters, whole in the rejects file)"


def report_of(result: object) -> ImportReport | None:
    """Return the report a flow run's result holds, whether the run completed or failed."""
    if isinstance(result, ImportFailedError):
        return result.report
    return result if isinstance(result, ImportReport) else None


def run_job(flow: Callable[..., Any], job: Any) -> tuple[State, ImportReport | None]:
    """Run an import flow on `job` in this process; return its final state and its report."""
    state: State = flow(job, return_state=True)
    return state, report_of(state.result(raise_on_failure=False))


def render_markdown(report: ImportReport) -> str:
    """Return the run summary as markdown, for the Prefect UI and the terminal."""
    lines = [
        f"# {report.job}: {report.status}",
        "",
        f"Entity **{report.entity}**, run `{report.run_id}`, {report.seconds:.1f} s, database `{report.database}`.",
        "",
        f"| rows read | inserted | updated | unchanged | rejected |\n|---:|---:|---:|---:|---:|\n"
        f"| {report.total('rows_read')} | {report.total('inserted')} | {report.total('updated')} "
        f"| {report.total('unchanged')} | {report.total('rejected')} |",
        "",
    ]
    if report.files:
        lines += [
            "| file | status | read | ins | upd | same | rej | dup | moved to | note |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        lines += [
            f"| `{f.path}` | {f.status} | {f.rows_read} | {f.inserted} | {f.updated} | {f.unchanged} "
            f"| {f.rejected} | {f.duplicates} | {f.moved_to or ''} | {_cell(f.message)} |"
            for f in report.files
        ]
    if report.error:
        lines.append(f"- error: {_cell(report.error)}")
    for warning in report.warnings:
        lines.append(f"- warning: {_cell(warning)}")
    return "\n".join(lines) + "\n"


def outcome_line(report: ImportReport) -> str:
    """Return a run's outcome in one line, for a terminal whose log above already shows the whole report."""
    line = (
        f"{report.job}: {report.status}: rows read {report.total('rows_read'):,}, inserted "
        f"{report.total('inserted'):,}, updated {report.total('updated'):,}, unchanged "
        f"{report.total('unchanged'):,}, rejected {report.total('rejected'):,}"
    )
    return f"{line}; {report.error}" if report.error else line


def render_text(report: ImportReport) -> str:
    """Return the run summary for a terminal."""
    out = [
        f"{report.job}: {report.status} in {report.seconds:.1f} s  (entity {report.entity}, run {report.run_id})",
        f"  database: {report.database}",
        f"  rows read {report.total('rows_read')}, inserted {report.total('inserted')}, updated "
        f"{report.total('updated')}, unchanged {report.total('unchanged')}, rejected {report.total('rejected')}",
    ]
    for f in report.files:
        out.append(
            f"  - {f.path}: {f.status} (read {f.rows_read}, inserted {f.inserted}, updated {f.updated}, "
            f"unchanged {f.unchanged}, rejected {f.rejected}, duplicates {f.duplicates})"
            + (f" -> {f.moved_to}" if f.moved_to else "")
        )
        if f.message:
            out.append(f"      {f.message}")
        if f.rejects_file:
            out.append(f"      rejects: {f.rejects_file}")
    for reject in report.rejects[:10]:
        out.append(
            f"    reject record {reject.record} (line {reject.line}) {reject.column}={_shown(reject.value)}: "
            f"{reject.code} {reject.message}"
        )
    out += [f"  error: {report.error}"] * bool(report.error)
    out += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def publish_artifacts(report: ImportReport) -> None:
    """Publish the summary and the first rejects as artifacts of the current Prefect run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = _artifact_key(report.job)
    create_markdown_artifact(
        key=f"{key}-summary", markdown=render_markdown(report), description="Import summary"
    )
    if report.rejects:
        create_table_artifact(
            key=f"{key}-rejects",
            table=[reject.model_dump() for reject in report.rejects],
            description=f"First {len(report.rejects)} rejects (all of them are in each file's rejects file).",
        )


def _artifact_key(job: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in job.lower()).strip("-")
    return "-".join(part for part in cleaned.split("-") if part) or "import"


def run_summary(report: ImportReport) -> str:
    """Return the run's errors and warnings on one line (the run history's message)."""
    failed = [
        f.message if f.message.startswith(f"{f.path}: ") else f"{f.path}: {f.message}"
        for f in report.files
        if f.status == "FAILED"
    ]
    return " | ".join([report.error] * bool(report.error) + failed + report.warnings)


def final_state(report: ImportReport) -> State:
    """Return the Prefect state for the run: Completed (named by status) or Failed."""
    counts = (
        f"{len(report.files)} file(s), {report.total('rows_read')} rows read, {report.total('inserted')} inserted, "
        f"{report.total('updated')} updated, {report.total('unchanged')} unchanged, {report.total('rejected')} rejected"
    )
    from prefect.states import Completed, Failed

    if report.status == "FAILED":
        message = f"Import failed: {run_summary(report)[:500]} ({counts})"
        return Failed(message=message, data=ImportFailedError(message, report))
    names = {"SUCCESS": "Completed", "PARTIAL": "Completed with rejects", "SKIPPED": "Skipped"}
    if not report.files and report.warnings:  # e.g. another run held the job: say why nothing was done
        counts = report.warnings[0][:500]
    return Completed(name=names[report.status], message=counts, data=report)
