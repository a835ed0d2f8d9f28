"""The hub's history from the terminal: `python -m deployments runs JOB | ledger JOB | rejects RUN | forget JOB FILE`.

Everything is read from (and `forget` written to) the hub database the job loads into: the `--target`
Hub Database block, else the `target` of the deployment of `prefect.yaml` whose job has that name,
else the embedded SQLite database. A block is read from the Prefect server PREFECT_API_URL names.
Tables are printed with rich, as wide as the terminal (`COLUMNS`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich import box
from rich.console import Console
from rich.table import Table

from deployments.manifest import PREFECT_YAML, load_deployments
from tasks.hub import (
    forget_file,
    has_run,
    known_jobs,
    ledger_rows,
    prepare_hub,
    recent_runs,
    rejected_files,
    stored_rejects,
)

DEFAULT_LIMIT = 20


def job_target(job: str | None, path: Path = PREFECT_YAML) -> str | None:
    """Return the Hub Database block the deployments of `job` (or of every job) name, or None (embedded).

    Several targets for one question: the first, in the file's order (say `--target` to choose).
    """
    targets = [
        (d.parameters.get("job") or {}).get("target")
        for d in load_deployments(path)
        if job is None or (d.parameters.get("job") or {}).get("name") == job
    ]
    return next((target for target in targets if target), None)


@contextmanager
def hub(target: str | None) -> Iterator[tuple[sa.Connection, str]]:
    """A connection to the hub database of `target` (its tables created if missing) and its masked URL."""
    from blocks.database import hub_database

    database = hub_database(target)
    engine = database.engine()
    try:
        prepare_hub(engine)
        with engine.begin() as conn:
            yield conn, database.display_url()
    finally:
        engine.dispose()


def show_runs(job: str, *, target: str | None, limit: int = DEFAULT_LIMIT) -> int:
    """Print the job's last runs with status and counts; 1 when the hub has none of it."""
    with hub(target) as (conn, where):
        found = recent_runs(conn, job, limit=limit)
        if not found:
            return _unknown_job(conn, job, where)
        table = _table(f"Last {len(found)} runs of {job} (hub {where}), newest first")
        for name in ("started (UTC)", "status", "files", "read", "inserted", "updated", "unchanged"):
            table.add_column(name, justify="right" if name not in ("started (UTC)", "status") else "left")
        table.add_column("rejected", justify="right")
        table.add_column("run")
        table.add_column("message", overflow="fold")
        for row in found:
            table.add_row(
                _when(row["started_at"]),
                row["status"],
                *(f"{row[name]:,}" for name in ("files", "rows_read", "inserted", "updated", "unchanged")),
                f"{row['rejected']:,}",
                row["run_id"],
                row["message"] or "",
            )
    _print(table)
    return 0


def show_ledger(job: str, *, target: str | None, limit: int = DEFAULT_LIMIT) -> int:
    """Print the job's last ledger rows: each file, when, by which run, where it was moved."""
    with hub(target) as (conn, where):
        found = ledger_rows(conn, job, limit=limit)
        if not found:
            return _unknown_job(conn, job, where)
    table = _table(f"Last {len(found)} files of {job} in the ledger (hub {where}), newest first")
    for name in ("recorded (UTC)", "file", "outcome", "run", "moved to", "note"):
        table.add_column(name, overflow="fold")
    for row in found:
        note = "forced re-import" if row.forced else ""
        if row.forgotten_at is not None:
            note = f"forgotten {_when(row.forgotten_at)}"
        table.add_row(_when(row.recorded_at), row.path, row.outcome, row.run_id, row.moved_to or "", note)
    _print(table)
    return 0


def show_rejects(run_id: str, *, target: str | None, limit: int = 100) -> int:
    """Print a run's stored rejects (file, record, line, column, value, code, message); 1 when it has none."""
    with hub(target) as (conn, where):
        files = rejected_files(conn, run_id)
        if not files:
            known = has_run(conn, run_id)
            why = "had no rejects" if known else "is not in its run history; `runs JOB` lists a job's runs"
            print(f"The run {run_id} {why} (hub {where}).", file=sys.stderr)
            return 0 if known else 1
        found = stored_rejects(conn, run_id, limit=limit)
    for file in files:
        kept = f", the first {file.stored:,} kept here" if file.stored < file.rejected else ""
        where_all = f"; all of them: {file.location}" if file.location and file.stored < file.rejected else ""
        print(f"{file.file}: {file.status}, {file.rejected:,} reject(s){kept}{where_all}")
    title = f"Rejects of run {run_id} (hub {where})"
    table = _table(title if len(found) < limit else f"{title}: the first {limit} (--limit N for more)")
    for name in ("file", "record", "line", "column", "value", "code", "message"):
        table.add_column(name, overflow="fold", justify="right" if name in ("record", "line") else "left")
    for row in found:
        table.add_row(
            row["file"],
            _number(row["record"]),
            _number(row["line"]),
            row["column"],
            "(blank)" if row["value"] is None or not str(row["value"]).strip() else repr(row["value"]),
            row["code"],
            row["message"],
        )
    _print(table)
    return 0


def forget(job: str, file: str, *, target: str | None) -> int:
    """Mark the job's import of `file` forgotten, so that its next run imports that file again."""
    from blocks.database import hub_database

    database = hub_database(target)
    engine = database.engine()
    try:
        forgotten = forget_file(engine, job, file)
    except LookupError as exc:
        print(f"Nothing forgotten: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    last = forgotten[-1]
    print(
        f"Forgot {len(forgotten)} import(s) of {last.path} by {job} (hub {database.display_url()}); the rows "
        "are kept, marked forgotten."
    )
    if last.moved_to:
        print(
            f"The file was moved to {last.moved_to}: put it back where the job reads it to import it again."
        )
    else:
        print("The job's next run imports it again.")
    return 0


def _unknown_job(conn: sa.Connection, job: str, where: str) -> int:
    jobs = known_jobs(conn)
    print(
        f"The hub {where} has no run of a job named {job!r}; jobs it has: {', '.join(jobs) or 'none yet'}.",
        file=sys.stderr,
    )
    return 1


def _table(title: str) -> Table:
    # The title on a line of its own: a table narrower than it would wrap it.
    print(title)
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")


def _print(table: Table) -> None:
    Console(highlight=False, soft_wrap=False).print(table)


def _when(moment: Any) -> str:
    if isinstance(moment, str):  # SQLite gives text back from a raw query
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def _number(value: int | None) -> str:
    return "" if value is None else str(value)
