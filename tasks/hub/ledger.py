"""The file ledger and the run history, both kept in the hub database.

The ledger remembers every file a job imported (path, size, modification time, SHA-256, outcome),
so an unchanged file is not imported twice. The run history holds one row per run; "the last
successful run" is read from it, with or without a Prefect server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from blocks import mask
from tasks.errors import SourceUnavailableError
from tasks.hub.schema import ensure_system_tables, ledger, runs

LOADED_OUTCOMES = ("SUCCESS", "PARTIAL")
MESSAGE_CHARS = 4000
"""A run history row's message is cut there."""
ABANDONED = (
    "The run never finished (its process was killed or lost the database); the files it committed are "
    "in the ledger, the others were left for the next run, which is"
)


@dataclass(frozen=True)
class LedgerEntry:
    """One imported file as the ledger remembers it."""

    id: int
    path: str
    size: int
    modified_at: datetime | None
    sha256: str
    outcome: str
    moved_to: str | None


@dataclass(frozen=True)
class LedgerRow:
    """One row of a job's ledger as an operator reads it (`python -m deployments ledger JOB`)."""

    id: int
    path: str
    outcome: str
    recorded_at: datetime
    run_id: str
    moved_to: str | None
    forced: bool
    forgotten_at: datetime | None


@dataclass(frozen=True)
class RunTotals:
    """The counts a run history row carries."""

    files: int = 0
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


def prepare_hub(engine: sa.Engine) -> None:
    """Create or migrate the hub's own tables: the run's first touch of the hub database.

    An unreachable database fails the run here, explained.
    """
    try:
        with engine.begin() as conn:
            ensure_system_tables(conn)
    except sa.exc.OperationalError as exc:
        # The driver's text may quote the URL or its password; masked before it is cut.
        secrets = [engine.url.password if isinstance(engine.url.password, str) else None]
        where = mask(engine.url.render_as_string(hide_password=True), secrets)
        reason = (
            mask(str(exc.orig), secrets).strip().splitlines()[0][:300] if exc.orig else type(exc).__name__
        )
        raise SourceUnavailableError(
            f"Cannot reach the hub database {where}: {reason}. Check that it is up and the URL of the "
            "job's Hub Database block; nothing was imported, run the job again once it answers."
        ) from None


def start_run(
    engine: sa.Engine, *, run_id: str, job: str, kind: str, flow_run_id: str | None, holds_job: bool = True
) -> datetime:
    """Record that a run started; return its start time.

    `holds_job`: the run holds the job's lock, so a row of the job still RUNNING belongs to a run that
    died; it is closed as such.
    """
    started = datetime.now(UTC)
    with engine.begin() as conn:
        ensure_system_tables(conn)
        if holds_job:
            # Its committed files are in the ledger; the files it left are the next run's.
            conn.execute(
                runs.update()
                .where(runs.c.job == job, runs.c.status == "RUNNING")
                .values(status="FAILED", finished_at=started, message=f"{ABANDONED} {run_id}.")
            )
        conn.execute(
            runs.insert().values(
                run_id=run_id,
                job=job,
                kind=kind,
                flow_run_id=flow_run_id,
                started_at=started,
                status="RUNNING",
            )
        )
    return started


def running_run(engine: sa.Engine, job: str) -> str:
    """Describe the job's run in progress ("run X (flow run Y) since T"), for a run that found the job locked."""
    query = (
        sa.select(runs.c.run_id, runs.c.started_at)
        .where(runs.c.job == job, runs.c.status == "RUNNING")
        .order_by(runs.c.started_at.desc())
        .limit(1)
    )
    try:
        with engine.begin() as conn:
            row = conn.execute(query).first()
    except sa.exc.DBAPIError:
        row = None
    if row is None:
        return "another run (starting or on another machine)"
    since = row.started_at.replace(tzinfo=UTC) if row.started_at.tzinfo is None else row.started_at
    return f"run {row.run_id} since {since:%Y-%m-%d %H:%M:%S} UTC"


def finish_run(engine: sa.Engine, *, run_id: str, status: str, totals: RunTotals, message: str) -> None:
    """Record how a run ended."""
    with engine.begin() as conn:
        conn.execute(
            runs.update()
            .where(runs.c.run_id == run_id)
            .values(
                finished_at=datetime.now(UTC), status=status, message=message[:MESSAGE_CHARS], **vars(totals)
            )
        )


def fails_as_last_run(engine: sa.Engine, job: str, *, before_run: str, message: str) -> bool:
    """Return whether the job's latest finished run other than `before_run` FAILED with this message."""
    query = (
        sa.select(runs.c.status, runs.c.message)
        .where(runs.c.job == job, runs.c.run_id != before_run, runs.c.finished_at.is_not(None))
        .order_by(runs.c.started_at.desc())
        .limit(1)
    )
    with engine.begin() as conn:
        row = conn.execute(query).first()
    return row is not None and (row.status, row.message or "") == ("FAILED", message[:MESSAGE_CHARS])


def last_successful_start(engine: sa.Engine, job: str, *, before_run: str | None = None) -> datetime | None:
    """Return when the job's last SUCCESS or PARTIAL run started, or None before its first one."""
    query = sa.select(sa.func.max(runs.c.started_at)).where(
        runs.c.job == job, runs.c.status.in_(LOADED_OUTCOMES)
    )
    if before_run is not None:
        query = query.where(runs.c.run_id != before_run)
    with engine.begin() as conn:
        ensure_system_tables(conn)
        found = conn.execute(query).scalar_one_or_none()
    return found.replace(tzinfo=UTC) if found is not None and found.tzinfo is None else found


def find_loaded(
    conn: sa.Connection, job: str, *, sha256: str | None = None, path: str | None = None
) -> LedgerEntry | None:
    """Return the latest successful ledger entry of `job` with that content hash (or path), unless forgotten."""
    query = sa.select(ledger).where(
        ledger.c.job == job, ledger.c.outcome.in_(LOADED_OUTCOMES), ledger.c.forgotten_at.is_(None)
    )
    if sha256 is not None:
        query = query.where(ledger.c.sha256 == sha256)
    if path is not None:
        query = query.where(ledger.c.path == path)
    row = conn.execute(query.order_by(ledger.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    return LedgerEntry(
        id=row["id"],
        path=row["path"],
        size=row["size"],
        modified_at=row["modified_at"],
        sha256=row["sha256"],
        outcome=row["outcome"],
        moved_to=row["moved_to"],
    )


def find_loaded_file(
    engine: sa.Engine, job: str, *, sha256: str | None = None, path: str | None = None
) -> LedgerEntry | None:
    """Like `find_loaded`, on a connection of its own."""
    with engine.begin() as conn:
        ensure_system_tables(conn)
        return find_loaded(conn, job, sha256=sha256, path=path)


def record_file(
    conn: sa.Connection,
    *,
    job: str,
    path: str,
    size: int,
    modified_at: datetime | None,
    sha256: str,
    run_id: str,
    outcome: str,
    forced: bool = False,
    moved_to: str | None = None,
) -> int:
    """Add a ledger entry (inside the file's own transaction) and return its id."""
    result = conn.execute(
        ledger.insert().values(
            job=job,
            path=path,
            size=size,
            modified_at=modified_at,
            sha256=sha256,
            run_id=run_id,
            outcome=outcome,
            recorded_at=datetime.now(UTC),
            forced=forced,
            moved_to=moved_to,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def record_move(engine: sa.Engine, entry_id: int, moved_to: str) -> None:
    """Remember where an imported file was moved to."""
    with engine.begin() as conn:
        conn.execute(ledger.update().where(ledger.c.id == entry_id).values(moved_to=moved_to))


def record_skipped_copy(
    engine: sa.Engine,
    *,
    job: str,
    path: str,
    size: int,
    modified_at: datetime | None,
    sha256: str,
    run_id: str,
    moved_to: str,
) -> int:
    """Ledger a re-sent copy of an imported content, not imported again but moved: a row of its own."""
    with engine.begin() as conn:
        return record_file(
            conn,
            job=job,
            path=path,
            size=size,
            modified_at=modified_at,
            sha256=sha256,
            run_id=run_id,
            outcome="SKIPPED",
            moved_to=moved_to,
        )


def ledger_rows(conn: sa.Connection, job: str, *, limit: int) -> list[LedgerRow]:
    """Return the job's latest ledger rows, newest first."""
    query = _ledger_rows().where(ledger.c.job == job).order_by(ledger.c.id.desc()).limit(limit)
    return [LedgerRow(**row) for row in conn.execute(query).mappings()]


def forget_file(engine: sa.Engine, job: str, file: str) -> list[LedgerRow]:
    """Mark the job's imports of `file` forgotten (kept, for audit), so the next run imports it again.

    `file` is a path as the ledger holds it, or a file name one path ends with. Returns the rows
    forgotten; raises `LookupError`, explained, when no import or more than one path matches.
    """
    with engine.begin() as conn:
        ensure_system_tables(conn)
        imported = sa.and_(
            ledger.c.job == job, ledger.c.outcome.in_(LOADED_OUTCOMES), ledger.c.forgotten_at.is_(None)
        )
        paths = set(conn.execute(sa.select(ledger.c.path).where(imported, ledger.c.path == file)).scalars())
        if not paths:
            named = sa.select(ledger.c.path).where(
                imported, ledger.c.path.like(f"%/{_like(file)}", escape="\\")
            )
            paths = set(conn.execute(named).scalars())
        if not paths:
            raise LookupError(
                f"the job {job} has no import of {file} to forget (see `python -m deployments ledger {job}`)."
            )
        if len(paths) > 1:
            raise LookupError(
                f"{file} names {len(paths)} imported files of {job}: {', '.join(sorted(paths))}; give the whole path."
            )
        (path,) = paths
        rows = conn.execute(sa.select(ledger.c.id).where(imported, ledger.c.path == path)).scalars().all()
        conn.execute(ledger.update().where(ledger.c.id.in_(rows)).values(forgotten_at=datetime.now(UTC)))
        query = _ledger_rows().where(ledger.c.id.in_(rows)).order_by(ledger.c.id)
        return [LedgerRow(**row) for row in conn.execute(query).mappings()]


def _ledger_rows() -> sa.Select[tuple[object, ...]]:
    return sa.select(*(ledger.c[name] for name in LedgerRow.__dataclass_fields__))


def recent_runs(conn: sa.Connection, job: str, *, limit: int) -> list[sa.RowMapping]:
    """Return the job's latest runs from the run history, newest first."""
    query = sa.select(runs).where(runs.c.job == job).order_by(runs.c.started_at.desc()).limit(limit)
    return list(conn.execute(query).mappings())


def known_jobs(conn: sa.Connection) -> list[str]:
    """Return the names of the jobs the run history holds, sorted."""
    return sorted(conn.execute(sa.select(runs.c.job).distinct()).scalars())


def has_run(conn: sa.Connection, run_id: str) -> bool:
    """Return whether the run history holds this run."""
    return conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first() is not None


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
