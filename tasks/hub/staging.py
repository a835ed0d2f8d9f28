"""Load one file's validated rows into the hub database, atomically: all of it or nothing.

Rows are staged batch by batch into temporary tables (one per entity table, keyed like it), then
checked against the database (F-E-001: a new key needs every required-for-creation field), then the
reject threshold is checked, and only then merged into the real tables and committed by the caller.
Rows sharing a key collapse in staging: the row table keeps the last row; a parent table (products
repeated once per variant) keeps, per field, the last non-blank value. The merge updates only the
mapped columns, and only where a value differs, so a re-run rewrites nothing and counts "unchanged".
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any

import polars as pl
import sqlalchemy as sa

from tasks.hub.contract import LINE, MISSING, RECORD, REJECT_SCHEMA
from tasks.hub.entities import CUSTOM_FIELDS_COLUMN, TableSpec
from tasks.hub.mapping import CUSTOM_FIELDS_GIVEN, MappingPlan
from tasks.hub.schema import CREATED_AT, UPDATED_AT, column_type, ensure_table, json_type, quote

_ROWS_PER_INSERT = 100  # SQLite staging: rows per INSERT statement (x columns stays far below 32,766)


@dataclass
class TableCounts:
    """What a merge did to one table."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class StagingResult:
    """What staging learned about the file before anything was merged."""

    staged_rows: int = 0
    duplicates: int = 0
    tables: dict[str, TableCounts] = field(default_factory=dict)


REPEATED_KEYS_SHOWN = 5


class Staging:
    """Temporary tables of one file load, on one connection inside one transaction.

    What differs between databases (writing a batch, the merge's JSON and change tests, clean-up) is in
    one writer per database: `SqliteStaging`, `PostgresStaging`; `open_staging` picks it.

    Writing a batch into staging runs on a background thread while the caller parses and validates
    the next batch (the database driver and polars both release the GIL for their work). At most one
    batch is in flight, and the connection is only ever used by one thread at a time: every other
    method first waits for that write (and re-raises its error).
    """

    def __init__(self, conn: sa.Connection, plan: MappingPlan) -> None:
        self.conn = conn
        self.plan = plan
        self.dialect = conn.dialect.name
        self.sent_rows = 0
        # The first keys a batch repeats, with their records: the report names them (the last one wins).
        self.repeated_keys: list[tuple[tuple[Any, ...], list[int]]] = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="staging")
        self._pending: Future[None] | None = None
        # Row hashes of the keys staged so far, per table (PostgreSQL: see `PostgresStaging._write`).
        self._staged_keys: dict[str, pl.Series] = {}
        for table in plan.tables:
            ensure_table(conn, table, custom_fields=plan.entity.custom_fields and table is plan.entity.root)
            self._create_staging(table)

    # -- names and columns ------------------------------------------------------------------------

    def staging_name(self, table: TableSpec) -> str:
        """Return the name of `table`'s staging table."""
        return f"stg_{table.name}"

    def columns(self, table: TableSpec) -> list[str]:
        """Return the staged value columns of `table`: its mapped fields, and custom fields on the root."""
        names = self.plan.fields_of(table)
        if self._has_custom_fields(table):
            names.append(CUSTOM_FIELDS_COLUMN)
        return names

    def _has_custom_fields(self, table: TableSpec) -> bool:
        return bool(self.plan.custom_columns) and table is self.plan.entity.root

    def _create_staging(self, table: TableSpec) -> None:
        name = quote(self.staging_name(table))
        typed = [
            f"{quote(n)} {column_type(self.dialect, table.field(n).type)}" for n in self.plan.fields_of(table)
        ]
        if self._has_custom_fields(table):
            typed.append(f"{quote(CUSTOM_FIELDS_COLUMN)} {json_type(self.dialect)}")
        typed += [f"{quote(RECORD)} BIGINT", f"{quote(LINE)} BIGINT"]
        key = ", ".join(quote(k) for k in table.key)
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        self.conn.exec_driver_sql(
            f"CREATE TEMP TABLE {name} ({', '.join(typed)}, PRIMARY KEY ({key})){self._temp_suffix}"
        )
        self._created(table, name)

    _temp_suffix = ""

    def _created(self, table: TableSpec, name: str) -> None:
        """Called once `table`'s staging table `name` exists."""

    # -- staging ----------------------------------------------------------------------------------

    def stage(self, rows: pl.DataFrame) -> None:
        """Add a batch of valid rows to every table's staging, collapsing rows that share a key."""
        self.sent_rows += rows.height
        collapsed = [(table, self._collapse(table, rows)) for table in self.plan.tables]
        if collapsed[-1][1].height < rows.height:  # the row table collapsed some: a key repeats
            self._note_repeated_keys(rows)
        self.flush()
        self._pending = self._writer.submit(self._stage_tables, collapsed)

    def _note_repeated_keys(self, rows: pl.DataFrame) -> None:
        room = REPEATED_KEYS_SHOWN - len(self.repeated_keys)
        key = list(self.plan.row_table.key)
        if room <= 0:
            return
        repeated = (
            rows.filter(pl.struct(key).is_duplicated())
            .group_by(key, maintain_order=True)
            .agg(pl.col(RECORD))
            .head(room)
        )
        self.repeated_keys += [
            (tuple(row[k] for k in key), list(row[RECORD])) for row in repeated.iter_rows(named=True)
        ]

    def flush(self) -> None:
        """Wait until the batch being written is in staging; raise its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _stage_tables(self, collapsed: list[tuple[TableSpec, pl.DataFrame]]) -> None:
        for table, rows in collapsed:
            self._stage_table(table, rows)

    def _collapse(self, table: TableSpec, rows: pl.DataFrame) -> pl.DataFrame:
        columns = [*self.columns(table), RECORD, LINE]
        key = list(table.key)
        if table is self.plan.row_table:
            return rows.select(columns).unique(subset=key, keep="last", maintain_order=True)
        rest = [c for c in columns if c not in key]
        return rows.group_by(key, maintain_order=True).agg(_latest(c) for c in rest).select(columns)

    def _stage_table(self, table: TableSpec, rows: pl.DataFrame) -> None:
        if rows.height == 0:
            return
        raw = self.conn.connection.driver_connection
        assert raw is not None
        self._write(raw, table, self.staging_name(table), [*self.columns(table), RECORD, LINE], rows)

    def _write(self, raw: Any, table: TableSpec, target: str, columns: list[str], rows: pl.DataFrame) -> None:
        """Write `rows` (unique keys) into `table`'s staging `target`, merging keys staged before."""
        raise NotImplementedError

    def _upsert_staging(self, table: TableSpec, source: str) -> str:
        columns = [*self.columns(table), RECORD, LINE]
        names = ", ".join(quote(c) for c in columns)
        stg = quote(self.staging_name(table))
        keep_last_value = table is not self.plan.row_table
        sets = ", ".join(
            f"{quote(c)} = coalesce(excluded.{quote(c)}, {stg}.{quote(c)})"
            if keep_last_value and c not in (RECORD, LINE)
            else f"{quote(c)} = excluded.{quote(c)}"
            for c in columns
            if c not in table.key
        )
        key = ", ".join(quote(k) for k in table.key)
        where = " WHERE true" if source.startswith("SELECT") else ""
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        return f"INSERT INTO {stg} ({names}) {source}{where} ON CONFLICT ({key}) {action}"

    # -- checks against the database --------------------------------------------------------------

    def reject_incomplete_new_keys(self) -> pl.DataFrame:
        """Remove new keys lacking a required-for-creation field (F-E-001); return their rejects."""
        self.flush()
        self._before_checks()
        rejects = [self._reject_new_keys(table) for table in self.plan.tables]
        rejects += [self._reject_orphans(child) for child in self.plan.tables[1:]]
        return pl.concat(rejects).sort("record") if rejects else pl.DataFrame(schema=REJECT_SCHEMA)

    def _reject_new_keys(self, table: TableSpec) -> pl.DataFrame:
        mapped = set(self.plan.fields_of(table))
        required = [s.name for s in table.fields if s.required and s.name not in table.key]
        unmapped = [name for name in required if name not in mapped]
        blank = [name for name in required if name in mapped]
        if not unmapped and not blank:
            return pl.DataFrame(schema=REJECT_SCHEMA)
        condition = "true" if unmapped else " OR ".join(f"s.{quote(n)} IS NULL" for n in blank)
        predicate = f"NOT EXISTS ({self._exists_in_target(table)}) AND ({condition})"
        nulls = [f"s.{quote(n)} IS NULL" for n in blank] or ["NULL"]
        found = self._take(table, [f"s.{quote(k)}" for k in table.key] + nulls, predicate)
        width = len(table.key)
        return _rejects(
            (
                row[-2],
                row[-1],
                self._column_of(_missing(unmapped, blank, row[width:-2])[0]),
                None,
                f"New {table.name} key {'/'.join(map(str, row[:width]))} cannot be created: required field(s) "
                f"{', '.join(_missing(unmapped, blank, row[width:-2]))} missing or blank.",
            )
            for row in found
        )

    def _reject_orphans(self, child: TableSpec) -> pl.DataFrame:
        parent = self.plan.tables[0]
        parent_stg = quote(self.staging_name(parent))
        on = " AND ".join(f"p.{quote(k)} = s.{quote(k)}" for k in child.parent_key)
        on_target = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in child.parent_key)
        predicate = (
            f"NOT EXISTS (SELECT 1 FROM {parent_stg} AS p WHERE {on}) "
            f"AND NOT EXISTS (SELECT 1 FROM {quote(parent.name)} AS t WHERE {on_target})"
        )
        found = self._take(child, [f"s.{quote(k)}" for k in child.parent_key], predicate)
        width = len(child.parent_key)
        return _rejects(
            (
                row[-2],
                row[-1],
                self._column_of(child.parent_key[0]),
                "/".join(map(str, row[:width])),
                f"Its {parent.name} {'/'.join(map(str, row[:width]))} was rejected, so this row cannot load.",
            )
            for row in found
        )

    def _take(self, table: TableSpec, selected: list[str], predicate: str) -> list[Any]:
        """Remove the staged rows of `table` matching `predicate`; return `selected`, record, line of each."""
        stg = quote(self.staging_name(table))
        found = self.conn.exec_driver_sql(
            f"SELECT {', '.join(selected)}, s.{quote(RECORD)}, s.{quote(LINE)} FROM {stg} AS s WHERE {predicate}"
        ).all()
        if found:
            self.conn.exec_driver_sql(f"DELETE FROM {stg} AS s WHERE {predicate}")
        return list(found)

    def _exists_in_target(self, table: TableSpec) -> str:
        on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in table.key)
        return f"SELECT 1 FROM {quote(table.name)} AS t WHERE {on}"

    def _column_of(self, field_name: str) -> str:
        return next((m.column for m in self.plan.fields if m.spec.name == field_name), field_name)

    def staged_count(self, table: TableSpec) -> int:
        """Return how many rows `table`'s staging holds."""
        self.flush()
        return int(
            self.conn.exec_driver_sql(f"SELECT count(*) FROM {quote(self.staging_name(table))}").scalar_one()
        )

    # -- merge ------------------------------------------------------------------------------------

    def merge(self) -> dict[str, TableCounts]:
        """Merge every staged table into its real table, root first; return what changed."""
        self.flush()
        now = datetime.now(UTC)
        stamp = self._stamp(now)
        return {table.name: self._merge_table(table, stamp) for table in self.plan.tables}

    def _merge_table(self, table: TableSpec, stamp: Any) -> TableCounts:
        staged = self.staged_count(table)
        update = self._update_sql(table)
        updated = self.conn.execute(sa.text(update), {"now": stamp}).rowcount if update else 0
        inserted = self.conn.execute(sa.text(self._insert_sql(table)), {"now": stamp}).rowcount
        return TableCounts(inserted=inserted, updated=updated, unchanged=staged - inserted - updated)

    def _new_value(self, table: TableSpec, column: str) -> str:
        target, source = f"{quote(table.name)}.{quote(column)}", f"s.{quote(column)}"
        if column == CUSTOM_FIELDS_COLUMN:
            # A parent whose rows never gave a custom field stages NULL: keep what is stored.
            return self._merged_custom_fields(target, source)
        # A required field of a parent table is never cleared by a repeated row left blank.
        if table is not self.plan.row_table and table.field(column).required:
            return f"coalesce({source}, {target})"
        return source

    def _update_sql(self, table: TableSpec) -> str | None:
        columns = [c for c in self.columns(table) if c not in table.key]
        if not columns:
            return None  # a file of keys only: nothing to update, new keys are still inserted
        target = quote(table.name)
        sets = ", ".join(f"{quote(c)} = {self._new_value(table, c)}" for c in columns)
        on = " AND ".join(f"{target}.{quote(k)} = s.{quote(k)}" for k in table.key)
        changed = self._changed(table, target, columns)
        return (
            f"UPDATE {target} SET {sets}, {quote(UPDATED_AT)} = :now "
            f"FROM {quote(self.staging_name(table))} AS s WHERE {on} AND ({changed})"
        )

    def _insert_sql(self, table: TableSpec) -> str:
        columns = self.columns(table)
        names = ", ".join(quote(c) for c in [*columns, CREATED_AT, UPDATED_AT])
        values = ", ".join(self._inserted_value(c) for c in columns)
        return (
            f"INSERT INTO {quote(table.name)} ({names}) SELECT {values}, :now, :now "
            f"FROM {quote(self.staging_name(table))} AS s WHERE NOT EXISTS ({self._exists_in_target(table)})"
        )

    def _inserted_value(self, column: str) -> str:
        if column != CUSTOM_FIELDS_COLUMN:
            return f"s.{quote(column)}"
        return self._inserted_custom_fields(f"s.{quote(column)}")

    def drop(self) -> None:
        """Drop the staging tables (SQLite keeps temporary tables for the connection's life)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()  # wait; a failure was (or is being) reported by the caller's error
        self._writer.shutdown(wait=True)
        self._drop_tables()

    # -- what differs between databases (overridden by each writer) --------------------------------

    def _before_checks(self) -> None:
        """Called before the checks against the database, once every batch is staged."""

    def _stamp(self, now: datetime) -> Any:
        """Return the merge's `created_at` / `updated_at` value as the driver takes it."""
        return now.isoformat()

    def _merged_custom_fields(self, target: str, source: str) -> str:
        """Return the SQL of the stored custom fields (`target`) patched with the staged ones (`source`)."""
        raise NotImplementedError

    def _changed(self, table: TableSpec, target: str, columns: list[str]) -> str:
        """Return the SQL condition: a staged row changes some of `columns` of the stored one."""
        return " OR ".join(f"{target}.{quote(c)} IS NOT {self._new_value(table, c)}" for c in columns)

    def _inserted_custom_fields(self, source: str) -> str:
        """Return the SQL of a new row's custom fields (nulls dropped)."""
        raise NotImplementedError

    def _drop_tables(self) -> None:
        """Drop the staging tables if the transaction's end does not."""


class SqliteStaging(Staging):
    """SQLite: many rows per INSERT into staging; JSON with json_patch; temporary tables dropped by hand."""

    def _write(self, raw: Any, table: TableSpec, target: str, columns: list[str], rows: pl.DataFrame) -> None:
        # Many rows per INSERT: the per-statement work of the driver is paid once per
        # `_ROWS_PER_INSERT` rows (about a sixth less time than one row per statement).
        one = "(" + ", ".join("?" for _ in columns) + ")"
        whole, rest = divmod(rows.height, _ROWS_PER_INSERT)
        remaining = rows.iter_rows()

        def chunks(count: int, size: int) -> Iterator[list[Any]]:
            for _ in range(count):
                yield list(chain.from_iterable(islice(remaining, size)))

        cursor = raw.cursor()
        try:
            if whole:
                many = self._upsert_staging(table, "VALUES " + ", ".join([one] * _ROWS_PER_INSERT))
                cursor.executemany(many, chunks(whole, _ROWS_PER_INSERT))
            if rest:
                cursor.execute(
                    self._upsert_staging(table, "VALUES " + ", ".join([one] * rest)),
                    next(chunks(1, rest)),
                )
        finally:
            cursor.close()

    def _merged_custom_fields(self, target: str, source: str) -> str:
        return f"coalesce(json_patch(coalesce({target}, '{{}}'), {source}), {target})"

    def _inserted_custom_fields(self, source: str) -> str:
        return f"json_patch('{{}}', {source})"

    def _drop_tables(self) -> None:
        # SQLite keeps temporary tables for the connection's life.
        for table in self.plan.tables:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(self.staging_name(table))}")


class PostgresStaging(Staging):
    """PostgreSQL: COPY into staging (merging only keys perhaps staged before); jsonb; ON COMMIT DROP."""

    _temp_suffix = " ON COMMIT DROP"

    def _created(self, table: TableSpec, name: str) -> None:
        incoming = quote(self.staging_name(table) + "_in")
        self.conn.exec_driver_sql(
            f"CREATE TEMP TABLE {incoming} (LIKE {name} INCLUDING DEFAULTS) ON COMMIT DROP"
        )

    def _write(self, raw: Any, table: TableSpec, target: str, columns: list[str], rows: pl.DataFrame) -> None:
        # COPY straight into staging is several times faster than merging into it, but fails on
        # a key already staged: only the rows whose key may have been staged before (a parent
        # repeated across batches, a key repeated in the file) go through the merging path.
        new, again = self._split_staged(table, rows)
        if new.height:
            _copy_into(raw, target, columns, new)
        if again.height:
            incoming = target + "_in"
            _copy_into(raw, incoming, columns, again)
            self.conn.exec_driver_sql(self._upsert_staging(table, f"SELECT * FROM {quote(incoming)}"))
            self.conn.exec_driver_sql(f"TRUNCATE {quote(incoming)}")

    def _split_staged(self, table: TableSpec, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Split `rows` (unique keys) into keys never staged before and keys perhaps staged already.

        A 64-bit hash per key (8 bytes a row) stands for the keys: a collision only sends a row
        down the slower merging path, never the wrong way. The lookup hashes the batch's keys and
        scans the staged ones (a hash table of the file's keys would cost tens of MiB).
        """
        hashes = rows.select(table.key).hash_rows()
        seen = self._staged_keys.get(table.name)
        self._staged_keys[table.name] = hashes if seen is None else pl.concat([seen, hashes], rechunk=False)
        if seen is None:
            return rows, rows.clear()
        again = hashes.is_in(seen.filter(seen.is_in(hashes.implode())).implode())
        if not again.any():
            return rows, rows.clear()
        return rows.filter(~again), rows.filter(again)

    def _before_checks(self) -> None:
        # Autovacuum never sees temporary tables: without statistics the joins below plan badly.
        for table in self.plan.tables:
            self.conn.exec_driver_sql(f"ANALYZE {quote(self.staging_name(table))}")

    def _stamp(self, now: datetime) -> Any:
        return now

    def _merged_custom_fields(self, target: str, source: str) -> str:
        return f"coalesce(jsonb_strip_nulls(coalesce({target}, '{{}}'::jsonb) || {source}), {target})"

    def _changed(self, table: TableSpec, target: str, columns: list[str]) -> str:
        old = ", ".join(f"{target}.{quote(c)}" for c in columns)
        new = ", ".join(self._new_value(table, c) for c in columns)
        return f"ROW({old}) IS DISTINCT FROM ROW({new})"

    def _inserted_custom_fields(self, source: str) -> str:
        return f"jsonb_strip_nulls({source})"


def open_staging(conn: sa.Connection, plan: MappingPlan) -> Staging:
    """Create the staging tables of one load with the writer of the connection's database."""
    writer = PostgresStaging if conn.dialect.name == "postgresql" else SqliteStaging
    return writer(conn, plan)


def _latest(column: str) -> pl.Expr:
    """Return the value a parent keeps from its repeated rows: the last one given."""
    if column in (RECORD, LINE):
        return pl.col(column).last()
    if column == CUSTOM_FIELDS_COLUMN:
        return pl.col(column).filter(pl.col(CUSTOM_FIELDS_GIVEN)).last()
    return pl.col(column).drop_nulls().last()


def _missing(unmapped: list[str], blank: list[str], nulls: tuple[Any, ...]) -> list[str]:
    return unmapped + [name for name, is_null in zip(blank, nulls, strict=False) if is_null]


def _rejects(rows: Any) -> pl.DataFrame:
    records = [
        {"record": r, "line": ln, "column": c, "value": v, "code": MISSING, "message": m}
        for r, ln, c, v, m in rows
    ]
    return pl.DataFrame(records, schema=REJECT_SCHEMA)


def _copy_into(raw: Any, table: str, columns: list[str], rows: pl.DataFrame) -> None:
    names = ", ".join(quote(c) for c in columns)
    payload = rows.select(columns).write_csv(
        include_header=False, null_value=r"\N", quote_style="non_numeric"
    )
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN (FORMAT csv, NULL '\\N')") as copy,
    ):
        copy.write(payload)
