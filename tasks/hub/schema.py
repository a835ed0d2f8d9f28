"""Hub database tables: one per catalogue table (key = external id), plus the ledger and run history.

Tables are created from the entity catalogue when a job first loads them; a field added to the
catalogue later becomes a new nullable column. SQL types are chosen per dialect so that the
canonical text produced by validation converts the same way on SQLite and PostgreSQL.

The hub's own tables (runs, ledger, rejects) carry a schema version in `datahub_schema`: a hub created by an
older release is brought up to date by the numbered migrations below, once, under a lock, and each
applied migration is recorded with what it found.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from tasks.hub.entities import CUSTOM_FIELDS_COLUMN, FieldType, TableSpec

CREATED_AT, UPDATED_AT = "_created_at", "_updated_at"

_TYPES: dict[str, dict[FieldType, str]] = {
    "sqlite": {
        "text": "TEXT",
        "integer": "INTEGER",
        "decimal": "NUMERIC",
        "boolean": "BOOLEAN",
        "date": "DATE",
        "datetime": "TIMESTAMP",
        "list": "TEXT",
    },
    "postgresql": {
        "text": "TEXT",
        "integer": "BIGINT",
        "decimal": "NUMERIC",
        "boolean": "BOOLEAN",
        "date": "DATE",
        "datetime": "TIMESTAMPTZ",
        "list": "JSONB",
    },
}
_JSON = {"sqlite": "TEXT", "postgresql": "JSONB"}
_STAMP = {"sqlite": "TEXT", "postgresql": "TIMESTAMPTZ"}

metadata = sa.MetaData()

runs = sa.Table(
    "datahub_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("job", sa.String(200), nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("flow_run_id", sa.String(64)),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("files", sa.Integer, nullable=False, default=0),
    sa.Column("rows_read", sa.BigInteger, nullable=False, default=0),
    sa.Column("inserted", sa.BigInteger, nullable=False, default=0),
    sa.Column("updated", sa.BigInteger, nullable=False, default=0),
    sa.Column("unchanged", sa.BigInteger, nullable=False, default=0),
    sa.Column("rejected", sa.BigInteger, nullable=False, default=0),
    sa.Column("message", sa.Text),
)

ledger = sa.Table(
    "datahub_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(200), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("modified_at", sa.DateTime(timezone=True)),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("moved_to", sa.Text),
    # A forced re-import (the job's `force`) may load a content the job already loaded.
    sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
    # `python -m deployments forget JOB FILE`: kept for audit, no longer counts as imported.
    sa.Column("forgotten_at", sa.DateTime(timezone=True)),
    sa.Index("ix_datahub_ledger_job_sha", "job", "sha256"),
    sa.Index("ix_datahub_ledger_job_path", "job", "path"),
)

rejects = sa.Table(
    "datahub_rejects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(200), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("file", sa.Text, nullable=False),
    sa.Column("record", sa.BigInteger),
    sa.Column("line", sa.BigInteger),
    sa.Column("column_name", sa.Text, nullable=False),
    sa.Column("value", sa.Text),
    sa.Column("code", sa.String(20), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_datahub_rejects_run", "run_id", "file", "record"),
)
"""The first rejects of each file of each run (capped); `reject_files` holds each file's true count."""

reject_files = sa.Table(
    "datahub_reject_files",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("file", sa.Text, primary_key=True),
    sa.Column("job", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("rejected", sa.BigInteger, nullable=False),
    sa.Column("stored", sa.Integer, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("location", sa.Text),
)

schema_versions = sa.Table(
    "datahub_schema",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

ONE_IMPORT_PER_CONTENT = "ux_datahub_ledger_one_import"
"""One non-forced SUCCESS / PARTIAL import of one content by one job (a partial unique index)."""

logger = logging.getLogger(__name__)


def quote(name: str) -> str:
    """Quote an identifier (camelCase field names must keep their case on PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def column_type(dialect: str, field_type: FieldType) -> str:
    """Return the SQL type of a catalogue field type on `dialect`."""
    return _TYPES[dialect][field_type]


def json_type(dialect: str) -> str:
    """Return the SQL type of JSON documents on `dialect`."""
    return _JSON[dialect]


_CURRENT_HUBS: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
"""Engines whose hub was found up to date: its tables existed before, so no rollback can undo them."""


def ensure_system_tables(conn: sa.Connection) -> None:
    """Create the hub's own tables if they are missing, and migrate them to the current version."""
    # Checked once per engine (a run's engine serves every file: three checks a file cost more than a
    # small file's load). Only a hub found complete is remembered: tables this call creates are in
    # the caller's transaction, which may still roll back.
    if conn.engine in _CURRENT_HUBS:
        return
    if _up_to_date(conn):
        _CURRENT_HUBS.add(conn.engine)
        return
    if conn.dialect.name == "postgresql":
        # Two runs meeting a new or old hub at once: one creates or migrates, the other waits for it
        # and finds the work done (CREATE TABLE of the same table at once fails on PostgreSQL).
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%(key)s)", {"key": _MIGRATION_LOCK})
    metadata.create_all(conn, checkfirst=True)
    _migrate(conn)


def _up_to_date(conn: sa.Connection) -> bool:
    inspector = sa.inspect(conn)
    return all(inspector.has_table(table.name) for table in metadata.sorted_tables) and (
        _version(conn) >= LATEST_VERSION
    )


def _version(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(schema_versions.c.version))).scalar_one() or 1)


def _migrate(conn: sa.Connection) -> None:
    for version, migration in MIGRATIONS:
        if _version(conn) < version:
            note = migration(conn)
            conn.execute(
                schema_versions.insert().values(version=version, applied_at=datetime.now(UTC), note=note)
            )
            logger.info("Hub database migrated to version %d: %s", version, note)


LOADED_NOT_FORCED = "outcome IN ('SUCCESS', 'PARTIAL') AND NOT forced"
"""The ledger rows the unique index `ONE_IMPORT_PER_CONTENT` holds to one per job and content (version 2)."""
LOADED_NOT_FORCED_OR_FORGOTTEN = f"{LOADED_NOT_FORCED} AND forgotten_at IS NULL"
"""Since version 3: a forgotten row no longer counts, so the next run may import that content again."""


def _one_import_per_content(conn: sa.Connection) -> str:
    present = {column["name"] for column in sa.inspect(conn).get_columns(ledger.name)}
    if "forced" not in present:
        conn.exec_driver_sql(f"ALTER TABLE {ledger.name} ADD COLUMN forced BOOLEAN NOT NULL DEFAULT FALSE")
    loaded = LOADED_NOT_FORCED
    duplicates = conn.exec_driver_sql(
        f"SELECT job, sha256, min(id), count(*) FROM {ledger.name} WHERE {loaded} "
        "GROUP BY job, sha256 HAVING count(*) > 1 ORDER BY 1, 2"
    ).all()
    for job, sha256, first_id, _count in duplicates:
        # Older releases could import one content twice (two runs at once): keep the first as the
        # import, count the later ones as re-imports, and say so in the migration's note.
        conn.execute(
            ledger.update()
            .where(ledger.c.job == job, ledger.c.sha256 == sha256, ledger.c.id != first_id)
            .where(ledger.c.outcome.in_(("SUCCESS", "PARTIAL")))
            .values(forced=True)
        )
    conn.exec_driver_sql(
        f"CREATE UNIQUE INDEX IF NOT EXISTS {ONE_IMPORT_PER_CONTENT} ON {ledger.name} (job, sha256) WHERE {loaded}"
    )
    found = "; ".join(
        f"job {job} content {sha256[:12]}... {count} times" for job, sha256, _, count in duplicates
    )
    if duplicates:
        logger.warning(
            "The hub ledger held contents imported more than once (marked as re-imports): %s", found
        )
    return "one import per content and job" + (
        f"; found {len(duplicates)} content(s) imported more than once, the later imports marked forced: {found}"
        if duplicates
        else "; no duplicate imports found"
    )


def _forgettable_files(conn: sa.Connection) -> str:
    present = {column["name"] for column in sa.inspect(conn).get_columns(ledger.name)}
    if "forgotten_at" not in present:
        stamp = sa.DateTime(timezone=True).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {ledger.name} ADD COLUMN forgotten_at {stamp}")
    conn.exec_driver_sql(f"DROP INDEX IF EXISTS {ONE_IMPORT_PER_CONTENT}")
    conn.exec_driver_sql(
        f"CREATE UNIQUE INDEX {ONE_IMPORT_PER_CONTENT} ON {ledger.name} (job, sha256) "
        f"WHERE {LOADED_NOT_FORCED_OR_FORGOTTEN}"
    )
    return "ledger rows can be forgotten (forgotten_at); rejects kept in datahub_rejects and datahub_reject_files"


_MIGRATION_LOCK = 0x6461746168756201  # "datahub\x01"
MIGRATIONS: list[tuple[int, Callable[[sa.Connection], str]]] = [
    (2, _one_import_per_content),
    (3, _forgettable_files),
]
"""(version, migration): version 1 is the schema of the first release (no `datahub_schema` rows)."""
LATEST_VERSION = MIGRATIONS[-1][0]


def ensure_table(conn: sa.Connection, table: TableSpec, *, custom_fields: bool) -> None:
    """Create `table` if missing, and add any catalogue column it lacks."""
    dialect = conn.dialect.name
    columns = [f"{quote(spec.name)} {column_type(dialect, spec.type)}" for spec in table.fields]
    if custom_fields:
        columns.append(f"{quote(CUSTOM_FIELDS_COLUMN)} {json_type(dialect)}")
    columns += [f"{quote(CREATED_AT)} {_STAMP[dialect]}", f"{quote(UPDATED_AT)} {_STAMP[dialect]}"]
    key = ", ".join(quote(name) for name in table.key)
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {quote(table.name)} ({', '.join(columns)}, PRIMARY KEY ({key}))"
    )
    _add_missing_columns(conn, table, custom_fields=custom_fields)


def _add_missing_columns(conn: sa.Connection, table: TableSpec, *, custom_fields: bool) -> None:
    dialect = conn.dialect.name
    present = {column["name"] for column in sa.inspect(conn).get_columns(table.name)}
    wanted = {spec.name: column_type(dialect, spec.type) for spec in table.fields}
    if custom_fields:
        wanted[CUSTOM_FIELDS_COLUMN] = json_type(dialect)
    for name, sql_type in wanted.items():
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(name)} {sql_type}")
