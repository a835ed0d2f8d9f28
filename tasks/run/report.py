"""What a run did: the ImportReport a flow returns, its rejects, and the Prefect artifacts showing it."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from pydantic import BaseModel, Field

from tasks.errors import ImportFailedError

FileStatus = Literal["SUCCESS", "PARTIAL", "SKIPPED", "FAILED"]
RunStatus = Literal["SUCCESS", "PARTIAL", "SKIPPED", "FAILED"]
REJECT_SAMPLE = 200
STATUS_TAG_PREFIX = "datahub:"
STATE_REASON_CHARS = 500
OUTCOME_WORDS_CHARS = 60  # in the run's name; the state message holds it whole
SAMPLE_VALUE_CHARS = 200  # a reject's value in reports and artifacts; the rejects file keeps it whole

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State


class Reject(BaseModel):
    """One broken rule of one record."""

    file: str = Field(default="", description="The source file (or an API run's call) the record came from.")
    record: int | None = Field(description="Record number in the file; 1 is the first data row.")
    line: int | None = Field(description="Physical line where the record starts (the header is line 1).")
    column: str = Field(description="Source column (or field) that broke the rule.")
    value: str | None = Field(description="Raw value of the cell, as read.")
    code: str = Field(description="The domain's error code, e.g. F-E-012.")
    message: str = Field(description="What is wrong and what is expected.")


class RepeatedKey(BaseModel):
    """A key a file holds more than once: its records, the last of which is kept."""

    key: str = Field(description="The key's value (parts joined by `/`).")
    records: list[int] = Field(description="The records that hold it, in file order; the last one is kept.")


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
    duplicate_keys: list[RepeatedKey] = Field(
        default_factory=list, description="The first keys the file repeats (their records; the last is kept)."
    )
    tables: dict[str, TableResult] = Field(default_factory=dict)
    ignored_columns: list[str] = Field(default_factory=list, description="Columns no field is mapped from.")
    near_misses: dict[str, str] = Field(
        default_factory=dict, description="Ignored columns that nearly are a standard header: that header."
    )
    moved_to: str | None = None
    rejects_file: str | None = Field(
        default=None, description="Every reject of the file, on the worker's disk."
    )
    rejects_url: str | None = Field(
        default=None, description="The same file in the worker's storage location (DATAHUB_REJECTS_URL)."
    )
    seconds: float = 0.0


class ImportReport(BaseModel):
    """What a run of an import job did: the flow's return value and the run's artifacts."""

    job: str
    entity: str
    run_id: str
    kind: str = Field(default="csv-ftp", description="The job's kind: csv-ftp (files) or json-api (pages).")
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
    repeat: bool = Field(
        default=False, description="The run failed exactly as the job's previous run did (alerted once)."
    )

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

    def __init__(self, path: Path, source: str = "", keep: int = 0) -> None:
        self.path = path
        self.source = source
        self.count = 0
        self.sample: list[Reject] = []
        self.keep = keep
        self.kept: list[dict[str, Any]] = []  # the first `keep` rejects as read, for the hub database

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
        if len(self.kept) < self.keep:
            self.kept.extend(rejects.head(self.keep - len(self.kept)).iter_rows(named=True))
        room = REJECT_SAMPLE - len(self.sample)
        if room > 0:
            self.sample.extend(
                Reject(**(row | {"file": self.source, "value": _shortened(row["value"])}))
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
    """Return the run summary as markdown, for the Prefect UI: the outcome and its reason first, then the files.

    Long texts (a file's note, the error) are list items below the tables, where the UI wraps them; a
    table cell would be clipped.
    """
    reason = outcome_reason(report)
    lines = [f"# {report.job}: {report.status}", ""]
    if reason:
        lines += [
            f"**{'Why it failed' if report.status == 'FAILED' else 'Why nothing was imported'}:** {_inline(reason)}",
            "",
        ]
    lines += [
        f"{counts_text(report)}. Entity **{report.entity}**, run `{report.run_id}`, {report.seconds:.1f} s, "
        f"database `{report.database}`.",
        "",
        f"| rows read | inserted | updated | unchanged | rejected |\n|---:|---:|---:|---:|---:|\n"
        f"| {report.total('rows_read')} | {report.total('inserted')} | {report.total('updated')} "
        f"| {report.total('unchanged')} | {report.total('rejected')} |",
        "",
    ]
    if report.files:
        lines += [
            "| # | file | status | read | ins | upd | same | rej | dup |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {number} | `{_cell(f.path)}` | {f.status} | {f.rows_read} | {f.inserted} | {f.updated} "
            f"| {f.unchanged} | {f.rejected} | {f.duplicates} |"
            for number, f in enumerate(report.files, 1)
        ]
        notes = [
            (n, f)
            for n, f in enumerate(report.files, 1)
            if f.message or f.moved_to or f.rejects_file or f.ignored_columns or f.duplicates
        ]
        if notes:
            lines += ["", "Notes:", ""]
        for number, f in notes:
            note = f": {_inline(f.message)}" if f.message else ""
            lines.append(f"- **{number}** `{_cell(f.path)}`{note}")
            if f.ignored_columns:
                lines.append(
                    f"  - ignored columns: {_inline(ignored_text(f.ignored_columns, f.near_misses))}"
                )
            if f.moved_to:
                lines.append(f"  - moved to `{_cell(f.moved_to)}`")
            if f.rejects_file:
                where = (
                    f"all of them: {_link(f.rejects_url)}"
                    if f.rejects_url
                    else (f"on the worker: `{_cell(f.rejects_file)}`")
                )
                lines.append(
                    f"  - {f.rejected:,} rejected: `python -m deployments rejects {report.run_id}`; {where}"
                )
    if report.error:
        lines.append(f"- error: {_inline(report.error)}")
    for warning in report.warnings:
        lines.append(f"- warning: {_inline(warning)}")
    return "\n".join(lines) + "\n"


def ignored_text(columns: Sequence[str], near_misses: Mapping[str, str]) -> str:
    """Return ignored columns in a line, each near miss of a standard header with "did you mean"."""
    return ", ".join(
        f"{column} (did you mean {near_misses[column]}?)" if column in near_misses else column
        for column in columns
    )


def duplicates_text(report: FileReport) -> str:
    """Return the first keys a file repeats, with their records and the one kept, and how many more."""
    parts = [
        f"{k.key} (records {', '.join(map(str, k.records))}; record {k.records[-1]} kept)"
        for k in report.duplicate_keys
    ]
    more = report.duplicates - sum(len(k.records) - 1 for k in report.duplicate_keys)
    if more > 0:
        parts.append(
            f"{more:,} more repeated row(s)"
            if parts
            else f"{more:,} repeated row(s), the last of each key kept"
        )
    return "; ".join(parts)


def outcome_line(report: ImportReport) -> str:
    """Return a run's outcome in one line, for a terminal whose log above already shows the whole report."""
    return f"{report.job}: {state_message(report)}"


def state_message(report: ImportReport) -> str:
    """Return the run's final state message: its status, the reason when it failed or skipped, its counts."""
    reason = outcome_reason(report)
    if not reason:
        return f"{report.status}: {counts_text(report)}"
    reason = reason.replace("\n", " ")
    if len(reason) > STATE_REASON_CHARS:
        reason = reason[:STATE_REASON_CHARS].rstrip() + "… (whole in the summary artifact)"
    return f"{report.status}: {reason} ({counts_text(report)})"


def counts_text(report: ImportReport) -> str:
    """Return what the run read and changed: files (a CSV job) or pages (an API job), then rows."""
    if report.kind == "json-api":
        source = f"{report.pages:,} page{'s' * (report.pages != 1)}"
    else:
        source = f"{len(report.files):,} file{'s' * (len(report.files) != 1)}"
    return (
        f"{source}, rows read {report.total('rows_read'):,}, inserted {report.total('inserted'):,}, "
        f"updated {report.total('updated'):,}, unchanged {report.total('unchanged'):,}, "
        f"rejected {report.total('rejected'):,}"
    )


def outcome_reason(report: ImportReport) -> str:
    """Return why a run failed or imported nothing; empty for a run that loaded."""
    if report.status == "FAILED":
        return failure_reason(report)
    return skip_reason(report) if report.status == "SKIPPED" else ""


def failure_reason(report: ImportReport) -> str:
    """Return why the run failed: its own error, else the first failed file's message (naming the file)."""
    if report.error:
        return report.error
    failed = [f for f in report.files if f.status == "FAILED"]
    if not failed:
        return ""
    more = f" (and {len(failed) - 1} more failed file(s))" if len(failed) > 1 else ""
    return _naming_file(failed[0]) + more


def skip_reason(report: ImportReport) -> str:
    """Return why the run imported nothing: another run held the job, the file was known, or nothing was new."""
    if report.warnings:
        return report.warnings[0]
    skipped = [f.message for f in report.files if f.status == "SKIPPED" and f.message]
    return skipped[0] if skipped else "nothing new to import"


def status_tag(report: ImportReport) -> str:
    """Return the run's status as a tag (`datahub:partial`): runs lists show it, filters and automations match it."""
    return f"{STATUS_TAG_PREFIX}{report.status.lower()}"


def run_title(report: ImportReport) -> str:
    """Return the flow run's name once it ended: its status, its outcome in a few words, the job.

    The job comes last: a narrow runs list cuts the end of a name, and its row names the deployment too.
    """
    return f"{report.status} · {outcome_words(report)} · {report.job}"


def outcome_words(report: ImportReport) -> str:
    """Return the run's outcome in a few words, for the row of a runs list (the state message is whole)."""
    read, rejected = report.total("rows_read"), report.total("rejected")
    if report.status in ("FAILED", "SKIPPED"):
        text = outcome_reason(report)
        for known in (f.path for f in report.files):  # the row has no room for a path
            text = text.removeprefix(f"{known}: ")
    elif report.status == "PARTIAL":
        text = f"{rejected:,} of {read:,} rejected"
    else:
        text = f"{read:,} read, {report.total('inserted'):,} new, {report.total('updated'):,} updated"
    return text if len(text) <= OUTCOME_WORDS_CHARS else text[: OUTCOME_WORDS_CHARS - 1].rstrip() + "…"


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
        if f.ignored_columns:
            out.append(f"      ignored columns: {ignored_text(f.ignored_columns, f.near_misses)}")
        if f.duplicates:
            out.append(f"      repeated keys: {duplicates_text(f)}")
        if f.rejects_file:
            out.append(f"      rejects: {f.rejects_url or f.rejects_file}")
    for reject in report.rejects[:10]:
        out.append(
            f"    reject record {reject.record} (line {reject.line}) {reject.column}={_shown(reject.value)}: "
            f"{reject.code} {reject.message}"
        )
    out += [f"  error: {report.error}"] * bool(report.error)
    out += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _link(url: str) -> str:
    # A browser opens http(s) links; any other storage (s3://, a folder) is shown to copy.
    return f"[{_cell(url)}]({url})" if url.startswith(("http://", "https://")) else f"`{_cell(url)}`"


def _inline(text: str) -> str:
    # Markdown in a file's note (a `*` or `_` in a cell value) must show as written.
    escaped = "".join(f"\\{ch}" if ch in "\\`*_[]<>|#" else ch for ch in text)
    return escaped.replace("\n", " ")


def publish_artifacts(report: ImportReport) -> None:
    """Publish the summary and the first rejects as artifacts of the current Prefect run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = artifact_key(report.job)
    create_markdown_artifact(
        key=f"{key}-summary", markdown=render_markdown(report), description=state_message(report)
    )
    if report.rejects:
        create_table_artifact(
            key=f"{key}-rejects",
            table=[reject.model_dump() for reject in report.rejects],
            description=f"First {len(report.rejects)} of {report.total('rejected'):,} rejects, in file and "
            "record order (all of them: `python -m deployments rejects RUN`, and each file's rejects file).",
        )


def artifact_key(job: str) -> str:
    """Return the job's name as an artifact key (lowercase letters, digits and dashes)."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in job.lower()).strip("-")
    return "-".join(part for part in cleaned.split("-") if part) or "import"


def run_summary(report: ImportReport) -> str:
    """Return the run's errors and warnings on one line (the run history's message)."""
    failed = [_naming_file(f) for f in report.files if f.status == "FAILED"]
    return " | ".join([report.error] * bool(report.error) + failed + report.warnings)


def _naming_file(report: FileReport) -> str:
    # Most file errors already start with the file's path; the others get it.
    return (
        report.message
        if report.message.startswith(f"{report.path}: ")
        else f"{report.path}: {report.message}"
    )


def final_state(report: ImportReport) -> State:
    """Return the Prefect state for the run: Completed, or Failed, by Prefect's own names.

    Prefect's runs lists filter states by name ("All except scheduled" lists the names it knows): a
    custom name ("Completed with rejects") hid the run. The status is in the message and the tags.
    """
    from prefect.states import Completed, Failed

    message = state_message(report)
    if report.status == "FAILED":
        return Failed(message=message, data=ImportFailedError(message, report))
    return Completed(message=message, data=report)
