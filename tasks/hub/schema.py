"""Hub database tables: one per catalogue table (key = external id), plus the ledger and run history.

Tables are created from the entity catalogue when a job first loads them; a field added to the
catalogue later becomes a new nullable column. SQL types are chosen per dialect so that the
canonical text produced by validation converts the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

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
    sa.Index("ix_datahub_ledger_job_sha", "job", "sha256"),
    sa.Index("ix_datahub_ledger_job_path", "job", "path"),
)


def quote(name: str) -> str:
    """Quote an identifier (camelCase field names must keep their case on PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def column_type(dialect: str, field_type: FieldType) -> str:
    """Return the SQL type of a catalogue field type on `dialect`."""
    return _TYPES[dialect][field_type]


def json_type(dialect: str) -> str:
    """Return the SQL type of JSON documents on `dialect`."""
    return _JSON[dialect]


def ensure_system_tables(conn: sa.Connection) -> None:
    """Create the ledger and run-history tables if they are missing."""
    metadata.create_all(conn, checkfirst=True)


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
