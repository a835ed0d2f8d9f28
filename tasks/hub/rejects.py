"""Rejects kept in the hub database: every file's first rejects and its true count, per run.

The rejects file of a run lives on the worker's disk (gone with a container); the operator reads these
rows instead (`python -m deployments rejects RUN`). They are written in a transaction of their own,
after the file's load: a file rolled back by the threshold keeps its rejects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tasks.hub.schema import ensure_system_tables, reject_files, rejects

REJECTS_KEPT_PER_FILE = 1_000
"""Rejects stored per file and run; the count beyond is stored as a number (a 1M-row bad file stays small)."""
VALUE_CHARS_KEPT = 2_000


@dataclass(frozen=True)
class RejectedFile:
    """One file of a run that had rejects: its status, true count, and how many are stored."""

    run_id: str
    file: str
    job: str
    status: str
    rejected: int
    stored: int
    location: str | None


def record_rejects(
    engine: sa.Engine,
    *,
    job: str,
    run_id: str,
    file: str,
    status: str,
    rejected: int,
    kept: Sequence[dict[str, Any]],
    location: str | None = None,
) -> None:
    """Store a file's first rejects (rows of `tasks.hub.mapping.REJECT_SCHEMA`) and its true count.

    A file loaded again in the same run (a retried load) replaces its earlier rows.
    """
    rows = [
        {
            "job": job,
            "run_id": run_id,
            "file": file,
            "record": row["record"],
            "line": row["line"],
            "column_name": row["column"],
            "value": None if row["value"] is None else str(row["value"])[:VALUE_CHARS_KEPT],
            "code": row["code"],
            "message": row["message"],
        }
        for row in kept[:REJECTS_KEPT_PER_FILE]
    ]
    with engine.begin() as conn:
        ensure_system_tables(conn)
        conn.execute(rejects.delete().where(rejects.c.run_id == run_id, rejects.c.file == file))
        conn.execute(
            reject_files.delete().where(reject_files.c.run_id == run_id, reject_files.c.file == file)
        )
        if rows:
            conn.execute(rejects.insert(), rows)
        conn.execute(
            reject_files.insert().values(
                run_id=run_id,
                file=file,
                job=job,
                status=status,
                rejected=rejected,
                stored=len(rows),
                recorded_at=datetime.now(UTC),
                location=location,
            )
        )


def rejected_files(conn: sa.Connection, run_id: str) -> list[RejectedFile]:
    """Return the files of a run that had rejects, in the order they were loaded."""
    columns = (reject_files.c[name] for name in RejectedFile.__dataclass_fields__)
    query = sa.select(*columns).where(reject_files.c.run_id == run_id).order_by(reject_files.c.recorded_at)
    return [RejectedFile(**row) for row in conn.execute(query).mappings()]


def stored_rejects(conn: sa.Connection, run_id: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Return a run's stored rejects in file and record order (`file`, `record`, `line`, `column`, ...)."""
    order = sa.select(reject_files.c.file, reject_files.c.recorded_at).where(reject_files.c.run_id == run_id)
    files = order.subquery()
    query = (
        sa.select(
            rejects.c.file,
            rejects.c.record,
            rejects.c.line,
            rejects.c.column_name.label("column"),
            rejects.c.value,
            rejects.c.code,
            rejects.c.message,
        )
        .join(files, files.c.file == rejects.c.file)
        .where(rejects.c.run_id == run_id)
        .order_by(
            files.c.recorded_at, rejects.c.record.is_(None), rejects.c.record, rejects.c.line, rejects.c.id
        )
    )
    if limit is not None:
        query = query.limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]
