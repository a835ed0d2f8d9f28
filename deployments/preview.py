"""Dry run of one deployment's job: read the first file (or page) for real, map and validate, write nothing.

`python -m deployments preview <deployment>` shows what an import would do with the data that is on
the source right now, before the job is scheduled:

- a CSV job logs in to its FTP Connection, downloads the single file (or the first file of the inbound
  folder, oldest first) to a temporary folder, reads its header and first records with the CSV job's
  reader (`tasks.csv.reader`), plans the mapping and validates the records (`tasks.hub.mapping`);
- an API job runs its calls with the flow's own call machinery (`flows.import_json_from_api.run_call`),
  but a paging call asks for its first page only, and the preview stops before the first call whose
  method can change data on the API (POST, PUT, PATCH, DELETE) unless `allow_writes` is given. JSON
  records go through the flow's `RecordMapper` (child records included); a downloaded CSV file through the CSV reader.

Nothing is written: no load, no file moved, no ledger entry, no run-history row; the hub database is
never opened. So two checks that need the database are not made: required-for-creation fields of keys
that do not exist yet (F-E-001), and `lastJobExecutionMinusDuration(...)`, which resolves as on a
first run (the job's `initial_since`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from blocks.api import ApiConnection
from blocks.ftp import FtpConnection
from flows.import_csv_from_ftp import CsvImportJob, SingleFile
from flows.import_json_from_api import ApiImportJob, run_call
from tasks.api.calls import CallContext, CsvFile, DefaultPattern, DownloadPattern, PagingPattern, as_text
from tasks.api.jsonpath import JsonValue, find_first
from tasks.csv.reader import CsvFormat, iter_batches, open_csv
from tasks.errors import ImportJobError
from tasks.files.session import open_session
from tasks.hub.contract import LINE, RECORD
from tasks.hub.entities import entity
from tasks.hub.mapping import CellFormats, MappingPlan, near_misses, plan_mapping, validate_batch

DEFAULT_ROWS = 10
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_CHECKED = (
    "Not checked by a preview (they need the hub database, which it never opens): required-for-creation "
    "fields of keys that do not exist yet (F-E-001) and the reject threshold over the whole file."
)


@dataclass
class Preview:
    """What a dry run read and how its first records map and validate."""

    deployment: str
    entity: str
    source: str = ""
    """What was read: the remote file's path and server, or the API calls made."""
    requests: list[str] = field(default_factory=list)
    """One line per API request made, e.g. `GET products (page 1)`."""
    stopped: str | None = None
    """Why the preview stopped before reading records (a call that could change data), if it did."""
    plan: MappingPlan | None = None
    records: pl.DataFrame | None = None
    """The first records: `_record`, `_line`, `_result` (ok / rejected) and one column per mapped field."""
    rejects: pl.DataFrame | None = None
    mapped_from: dict[str, str] = field(default_factory=dict)
    """Entity field -> what it is read from, when that is not a CSV column (an API job's JSONPaths)."""
    notes: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        """Return how many of the shown records are rejected."""
        return 0 if self.records is None else int((self.records["_result"] == "rejected").sum())


def preview_job(
    deployment: str, job: Any, *, rows: int = DEFAULT_ROWS, allow_writes: bool = False
) -> Preview:
    """Preview `job` (a CsvImportJob or an ApiImportJob) of `deployment`; raise ImportJobError on failure."""
    # A flow loaded from its entrypoint file has its own copy of the model class: match it by name.
    for model in (CsvImportJob, ApiImportJob):
        if type(job).__name__ == model.__name__ and not isinstance(job, model):
            job = model.model_validate(job.model_dump())
    if isinstance(job, CsvImportJob):
        return preview_csv_job(deployment, job, rows=rows)
    if isinstance(job, ApiImportJob):
        return preview_api_job(deployment, job, rows=rows, allow_writes=allow_writes)
    raise TypeError(f"{deployment}: no preview for {type(job).__name__} jobs (CSV and API import jobs only)")


# --- CSV over FTP -----------------------------------------------------------------------------------------


def preview_csv_job(deployment: str, job: CsvImportJob, *, rows: int = DEFAULT_ROWS) -> Preview:
    """Download the job's (first) file to a temporary folder and preview its first `rows` records."""
    preview = Preview(deployment, job.entity)
    block = FtpConnection.load(job.connection)
    assert isinstance(block, FtpConnection)
    with tempfile.TemporaryDirectory(prefix="datahub-preview-") as local_dir, open_session(block) as session:
        source = job.source
        if isinstance(source, SingleFile):
            found = session.stat(source.file_path)
            if found is None:
                preview.stopped = (
                    f"{source.file_path} is not on {block.describe()} (already imported and moved?)."
                )
                return preview
            others = ""
        else:
            listed = session.list_files(source.inbound_dir, source.pattern)
            if not listed:
                preview.stopped = (
                    f"No file matching {source.pattern!r} in {source.inbound_dir!r} on {block.describe()}."
                )
                return preview
            found = listed[0]
            others = f"; the oldest of {len(listed)} matching file(s) in {source.inbound_dir}"
        local = Path(local_dir) / "preview.csv"
        session.download(found.path, local)
        preview.source = f"{found.path} ({found.size:,} bytes) on {block.describe()}{others}"
        _preview_csv_file(preview, local, found.path, job.csv, job.mapping, job.formats, rows)
    preview.notes.append(NOT_CHECKED)
    return preview


def _preview_csv_file(
    preview: Preview,
    path: Path,
    name: str,
    fmt: CsvFormat,
    mapping: dict[str, str] | None,
    formats: CellFormats,
    rows: int,
) -> None:
    utf8, header = open_csv(path, fmt, name=name)
    plan = plan_mapping(entity(preview.entity), mapping, header.columns, name=name)
    first = next(iter_batches(utf8, fmt, header, name=name), None)
    empty = pl.DataFrame(
        schema={RECORD: pl.Int64, LINE: pl.Int64, **dict.fromkeys(header.columns, pl.String)}
    )
    batch = first.head(rows) if first is not None else empty
    _validate(preview, plan, batch, formats)


# --- REST API ---------------------------------------------------------------------------------------------


def preview_api_job(
    deployment: str, job: ApiImportJob, *, rows: int = DEFAULT_ROWS, allow_writes: bool = False
) -> Preview:
    """Run the job's calls (first page only, GET only unless `allow_writes`) and preview the records."""
    preview = Preview(deployment, job.entity)
    block = ApiConnection.load(job.connection)
    assert isinstance(block, ApiConnection)
    context = CallContext(initial_since=job.initial_since)
    records: list[JsonValue] = []
    with tempfile.TemporaryDirectory(prefix="datahub-preview-") as work_dir:
        for index, call in enumerate(job.calls):
            if (
                call.method in WRITE_METHODS
                and not isinstance(call.pattern, DownloadPattern)
                and not allow_writes
            ):
                preview.stopped = (
                    f"Stopped before call {call.name!r} ({call.method} {call.path or '/'}): a {call.method} "
                    "could change data on the API, so a preview does not send it. Run the preview with "
                    "--allow-writes to send it (and every call after it)."
                )
                preview.source = f"{block.base_url} ({len(preview.requests)} request(s) made)"
                return preview
            sent, paging_note = _first_page_only(call)
            outcome = run_call.fn(job.connection, sent, context, job.http, Path(work_dir))
            preview.requests.append(_request_line(call, outcome.polls, paging_note))
            if isinstance(call.pattern, PagingPattern):
                preview.notes.append(_paging_note(call.pattern, outcome.body))
            context = context.after(outcome.body, outcome.captured)
            last = index == len(job.calls) - 1
            if last and outcome.download is not None and isinstance(call.pattern, DownloadPattern):
                csv = call.pattern.format
                assert isinstance(csv, CsvFile)
                preview.source = (
                    f"{outcome.download.url} ({outcome.download.size:,} bytes) from {block.base_url}"
                )
                _preview_csv_file(
                    preview, outcome.download.local_path, outcome.download.url, csv.csv, csv.mapping,
                    job.formats, rows,
                )  # fmt: skip
                preview.notes.append(NOT_CHECKED)
                return preview
            records = outcome.records
    preview.source = f"{block.base_url} ({len(preview.requests)} request(s) made)"
    assert job.mapping is not None  # the model requires it unless the last call downloads a CSV file
    mapper = job.record_mapper()  # the flow's own mapper: child records (`children`) included
    children = job.children
    child_paths = (
        {target: f"{children.path}[*]{path.removeprefix('$')}" for path, target in children.mapping.items()}
        if children is not None
        else {}
    )
    preview.mapped_from = {**{target: path for path, target in job.mapping.items()}, **child_paths}
    plan = mapper.plan(entity(job.entity), name=job.calls[-1].name)
    _validate(preview, plan, mapper.frame(records[:rows], page=job.calls[-1].name), job.formats)
    preview.notes += mapper.warnings
    preview.notes.append(
        "`lastJobExecutionMinusDuration(...)` resolved as on a first run (the job's `initial_since`): "
        "the run history is in the hub database, which a preview never opens."
    )
    preview.notes.append(NOT_CHECKED)
    return preview


def _first_page_only(call: Any) -> tuple[Any, str]:
    # A paging call becomes one request for its first page, through the flow's own call code: same
    # templates, headers, retries and capture; only the page loop is left out.
    pattern = call.pattern
    if not isinstance(pattern, PagingPattern):
        return call, ""
    page_params = {name: str(value) for name, value in pattern.params_for(pattern.first_page).items()}
    first_page = call.model_copy(
        update={
            "query": {**call.query, **page_params},
            "pattern": DefaultPattern(content_path=pattern.content_path),
        }
    )
    return first_page, f" (page {pattern.first_page} only)"


def _request_line(call: Any, polls: int, paging_note: str) -> str:
    if isinstance(call.pattern, DownloadPattern):
        return f"GET the file at {call.pattern.url_from} (call {call.name!r})"
    polled = f", {polls} poll(s)" if polls > 1 else ""
    return f"{call.method} {call.path or '/'}{paging_note} (call {call.name!r}{polled})"


def _paging_note(paging: PagingPattern, body: JsonValue) -> str:
    total = (
        find_first(paging.total_pages_path, body) if paging.total_pages_path and body is not None else None
    )
    known = (
        f"the API reports {as_text(total)} page(s) of {paging.page_size}"
        if total is not None
        else "more pages may follow"
    )
    return f"Paging call: only page {paging.first_page} was read; {known}. A run reads them all."


# --- validation and output ----------------------------------------------------------------------------------


def _validate(preview: Preview, plan: MappingPlan, batch: pl.DataFrame, formats: CellFormats) -> None:
    validated = validate_batch(batch, plan, formats)
    fields = [mapped.spec.name for mapped in plan.fields]
    rejected_records = set(validated.rejects["record"].to_list())
    # Rejected records are shown with their raw cells, loadable ones with the canonical values.
    raw = batch.select(
        pl.col(RECORD), pl.col(LINE), *(pl.col(m.column).alias(m.spec.name) for m in plan.fields)
    )
    good = validated.rows.select(
        pl.col(RECORD), pl.col(LINE), *(_as_text(validated.rows, name, formats) for name in fields)
    )
    shown = pl.concat([good, raw.filter(pl.col(RECORD).is_in(list(rejected_records)))]).sort(RECORD)
    preview.plan = plan
    preview.records = shown.with_columns(
        pl.when(pl.col(RECORD).is_in(list(rejected_records)))
        .then(pl.lit("rejected"))
        .otherwise(pl.lit("ok"))
        .alias("_result")
    ).select(pl.col(RECORD), pl.col(LINE), pl.col("_result"), *fields)
    preview.rejects = validated.rejects


def _as_text(rows: pl.DataFrame, name: str, formats: CellFormats) -> pl.Expr:
    # Multi-value fields are shown as a file would write them, `a||b`.
    if isinstance(rows.schema[name], pl.List):
        return pl.col(name).cast(pl.List(pl.String)).list.join(formats.list_separator).alias(name)
    return pl.col(name).cast(pl.String)


def render(preview: Preview) -> str:
    """Return the preview as text for the terminal."""
    lines = [f"Preview of {preview.deployment} ({preview.entity}): nothing is loaded, moved or recorded."]
    if preview.source:
        lines.append(f"Read: {preview.source}")
    lines += [f"  request: {request}" for request in preview.requests]
    if preview.stopped:
        lines.append(preview.stopped)
    plan = preview.plan
    if plan is not None and preview.records is not None:
        mapped = ", ".join(
            f"{preview.mapped_from.get(m.spec.name, m.column)} -> {m.spec.name}" for m in plan.fields
        )
        lines.append(f"Mapped: {mapped}")
        if plan.custom_columns:
            lines.append(f"Custom fields: {', '.join(plan.custom_columns)}")
        if plan.ignored_columns:
            hints = near_misses(plan)
            ignored = ", ".join(
                f"{c} (did you mean {hints[c]}?)" if c in hints else c for c in plan.ignored_columns
            )
            lines.append(f"Ignored columns (not mapped): {ignored}")
        shown = preview.records.height
        lines.append(f"\nFirst {shown} record(s): {shown - preview.rejected} ok, {preview.rejected} rejected")
        lines.append(_table(preview.records.rename({RECORD: "record", LINE: "line", "_result": "result"})))
        if preview.rejects is not None and preview.rejects.height:
            lines.append("\nRejects:")
            lines.append(_table(preview.rejects))
    lines += [("\n" if i == 0 else "") + f"Note: {note}" for i, note in enumerate(preview.notes)]
    return "\n".join(lines)


def _table(frame: pl.DataFrame, max_width: int = 40) -> str:
    def cell(value: object) -> str:
        text = "" if value is None else str(value).replace("\n", "\\n")
        return text if len(text) <= max_width else text[: max_width - 3] + "..."

    last = len(frame.columns) - 1  # the last column (a reject's message) is never cut
    cells = [[cell(v) if i < last else str(v) for i, v in enumerate(row)] for row in frame.iter_rows()]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(frame.columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(frame.columns, widths, strict=True)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join("  " + line for line in out)


def run_preview(
    name: str,
    job_file: Path | None = None,
    *,
    rows: int = DEFAULT_ROWS,
    allow_writes: bool = False,
    path: Path | None = None,
) -> int:
    """Preview one deployment's job (or the job of `job_file`) and print it; return the exit code."""
    import sys

    from pydantic import ValidationError

    from deployments.manifest import PREFECT_YAML
    from deployments.operate import find_deployment, job_of

    try:
        deployment = find_deployment(name, path or PREFECT_YAML)
        job = job_of(deployment, job_file)
    except (LookupError, ValueError, ValidationError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        preview = preview_job(deployment.name, job, rows=rows, allow_writes=allow_writes)
    except (ImportJobError, ValueError) as exc:  # ValueError: the job's block does not exist
        print(f"Preview of {deployment.name} failed: {exc}", file=sys.stderr)
        return 1
    print(render(preview))
    return 0
