"""Load one source's batches into the hub database in one transaction, and ledger it.

This is the "load" step of both jobs (a CSV file through `tasks.csv.load`, an API run's records through
`import_batches`): plan the mapping, then validate and stage batch by batch, check new keys against
the database, check the reject threshold, merge, write the ledger entry and commit. Any failure rolls
the whole load back.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import sqlalchemy as sa
from pydantic import Field

from tasks.errors import HubConflictError, ImportJobError, SourceUnavailableError, ThresholdExceededError
from tasks.hub.ledger import find_loaded, record_file
from tasks.hub.mapping import CellFormats, MappingPlan, validate_batch
from tasks.hub.rejects import REJECTS_KEPT_PER_FILE, record_rejects
from tasks.hub.schema import ensure_system_tables
from tasks.hub.staging import Staging, open_staging
from tasks.run.report import FileReport, Reject, RejectSink, RepeatedKey, TableResult
from tasks.run.storage import REJECTS_URL_VAR, rejects_storage, store_rejects_file

RunLogger = logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass(frozen=True)
class SourceFile:
    """A downloaded file and what the server said about it."""

    remote_path: str
    local_path: Path
    size: int
    modified: datetime | None
    sha256: str


@dataclass(frozen=True)
class LoadSettings:
    """How a job reads and loads its files."""

    job: str
    run_id: str
    entity: str
    mapping: Mapping[str, str] | None
    formats: CellFormats
    reject_threshold_percent: float
    force: bool = False


HubTarget = Annotated[
    str | None,
    Field(description="Name of the Hub Database block to load into. Empty: the embedded SQLite database."),
]
RejectThresholdPercent = Annotated[
    float,
    Field(
        ge=0,
        le=100,
        description="A file (or an API run's records) with more than this share of rejected rows fails "
        "and loads nothing.",
    ),
]


Prepare = Callable[[FileReport], tuple[MappingPlan, Iterable[pl.DataFrame]]]


def load_prepared(
    engine: sa.Engine,
    name: str,
    prepare: Prepare,
    settings: LoadSettings,
    *,
    rejects_dir: Path,
    logger: RunLogger,
    ledger_source: SourceFile | None = None,
) -> tuple[FileReport, list[Reject]]:
    """Load the batches `prepare` plans and yields, whole or not at all; return the report and first rejects.

    `prepare` runs inside the load, so a source that cannot be read fails this load's report (it may
    fill the report's `ignored_columns`). `name` labels the report and the rejects file; with
    `ledger_source` the load is ledgered as that file.
    """
    load = _Load(engine, settings, rejects_dir, logger, ledger_source)
    return load.attempts(_new_report(name, ledger_source), prepare, retry=True)


def import_batches(
    engine: sa.Engine,
    name: str,
    batches: Iterable[pl.DataFrame],
    plan: MappingPlan,
    settings: LoadSettings,
    *,
    rejects_dir: Path,
    logger: RunLogger,
    ledger_source: SourceFile | None = None,
) -> tuple[FileReport, list[Reject]]:
    """Load text batches (`_record`, `_line` and the plan's columns) whole or not at all, like a file.

    `name` labels the report and the rejects file; with `ledger_source` the load is ledgered as that file.
    """
    load = _Load(engine, settings, rejects_dir, logger, ledger_source)
    # The batches can be read once: a conflict stops the run, nothing loaded.
    return load.attempts(_new_report(name, ledger_source), lambda _report: (plan, batches), retry=False)


def _new_report(name: str, source: SourceFile | None) -> FileReport:
    return FileReport(
        path=name,
        status="FAILED",
        size=source.size if source else None,
        sha256=source.sha256 if source else None,
    )


CONFLICT_RETRY_SECONDS = (1.0, 3.0, 9.0)
"""Waits before each new attempt of a load that met another writer or lost the hub database (then the
run stops, the file in place)."""
_CONFLICT_SQLSTATES = {
    "23505",  # unique_violation: the same new keys inserted by another transaction, or a DDL race
    "42P07",  # duplicate_table: the same table created at once
    "42710",  # duplicate_object
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
}


class _AlreadyLoadedError(Exception):
    """Inside the load's transaction: the job loaded this content already (a run beside this one)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True)
class _Load:
    """What every attempt of one load shares: the hub, the job's settings, where rejects go, the ledger source."""

    engine: sa.Engine
    settings: LoadSettings
    rejects_dir: Path
    logger: RunLogger
    source: SourceFile | None

    def attempts(
        self, report: FileReport, prepare: Prepare, *, retry: bool
    ) -> tuple[FileReport, list[Reject]]:
        delays = CONFLICT_RETRY_SECONDS if retry else ()
        for delay in (*delays, None):
            try:
                return self.attempt(report.model_copy(deep=True), prepare)
            except SourceUnavailableError as exc:  # the hub went away, or another writer got in the way
                if delay is None:
                    raise
                self.logger.warning("%s Trying the load again in %.0f s.", exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def attempt(self, report: FileReport, prepare: Prepare) -> tuple[FileReport, list[Reject]]:
        started = time.monotonic()
        name = report.path
        sink = RejectSink(self.rejects_dir / rejects_file_name(name), source=name, keep=REJECTS_KEPT_PER_FILE)
        sink.path.unlink(missing_ok=True)  # a retried load writes its rejects anew
        try:
            plan, batches = prepare(report)
            self._write(report, sink, plan, batches)
            report.status = "PARTIAL" if report.rejected else "SUCCESS"
        except _AlreadyLoadedError as seen:
            _clear_counts(report)
            report.status = "SKIPPED"
            report.message = (
                f"Already imported by this job (same content as {seen.path}, loaded by a run beside this "
                "one); run with `force` to import again."
            )
        except ThresholdExceededError as exc:
            report.message = str(exc)
        except SourceUnavailableError:
            raise  # not the file's fault: retried, then the run stops with the file in place
        except ImportJobError as exc:
            report.message = str(exc)
            _clear_counts(report)
        except sa.exc.DBAPIError as exc:
            _database_refusal(name, exc, report)
        report.rejects_file = str(sink.path) if sink.count else None
        if sink.count:
            self._keep_rejects(report, sink)
        report.seconds = round(time.monotonic() - started, 3)
        return report, sink.sample

    def _keep_rejects(self, report: FileReport, sink: RejectSink) -> None:
        # After the load's own transaction, in one of its own: a file the threshold rolled back keeps them.
        try:
            report.rejects_url = store_rejects_file(
                sink.path, job=self.settings.job, run_id=self.settings.run_id
            )
        except (
            OSError,
            ValueError,
            ImportError,
        ) as exc:  # the hub keeps the first ones, the worker's disk all
            self.logger.warning(
                "Could not write the rejects of %s to %s=%s (%s: %s); they are in %s.",
                report.path,
                REJECTS_URL_VAR,
                rejects_storage(),
                type(exc).__name__,
                exc,
                sink.path,
            )
        try:
            record_rejects(
                self.engine,
                job=self.settings.job,
                run_id=self.settings.run_id,
                file=report.path,
                status=report.status,
                rejected=sink.count,
                kept=sink.kept,
                location=report.rejects_url or report.rejects_file,
            )
        except sa.exc.DBAPIError as exc:  # the load's outcome stands; the rejects file still holds them
            self.logger.warning(
                "Could not store the rejects of %s in the hub database (%s); they are in %s.",
                report.path,
                type(exc.orig or exc).__name__,
                sink.path,
            )

    def _write(
        self, report: FileReport, sink: RejectSink, plan: MappingPlan, batches: Iterable[pl.DataFrame]
    ) -> None:
        # The bulk copy talks to the driver directly, so its errors reach us unwrapped: wrap them as
        # SQLAlchemy would, so that a refused value or a lost connection is reported, not a traceback.
        dialect = self.engine.dialect
        try:
            self._transaction(report, sink, plan, batches)
        except dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc

    def _transaction(
        self, report: FileReport, sink: RejectSink, plan: MappingPlan, batches: Iterable[pl.DataFrame]
    ) -> None:
        settings, source = self.settings, self.source
        with self.engine.begin() as conn:
            ensure_system_tables(conn)
            if source is not None and not settings.force:
                # Re-checked inside the load's transaction: the check before the download may be stale.
                seen = find_loaded(conn, settings.job, sha256=source.sha256)
                if seen is not None:
                    raise _AlreadyLoadedError(seen.path)
            staging = open_staging(conn, plan)
            try:
                self._stage(report, sink, batches, staging)
                report.duplicates = staging.sent_rows - staging.staged_count(plan.row_table)
                report.duplicate_keys = [
                    RepeatedKey(key="/".join(map(str, key)), records=records)
                    for key, records in staging.repeated_keys
                ]
                db_rejects = staging.reject_incomplete_new_keys()
                sink.add(db_rejects)
                report.rejected += db_rejects["record"].n_unique()
                _check_threshold(report, settings.reject_threshold_percent)
                counts = staging.merge()
            finally:
                staging.drop()
            report.tables = {name: TableResult(**vars(c)) for name, c in counts.items()}
            row_counts = counts[plan.row_table.name]
            report.inserted, report.updated, report.unchanged = (
                row_counts.inserted,
                row_counts.updated,
                row_counts.unchanged,
            )
            if source is not None:
                record_file(
                    conn,
                    job=settings.job,
                    path=source.remote_path,
                    size=source.size,
                    modified_at=source.modified,
                    sha256=source.sha256,
                    run_id=settings.run_id,
                    outcome="PARTIAL" if report.rejected else "SUCCESS",
                    forced=settings.force,
                )

    def _stage(
        self, report: FileReport, sink: RejectSink, batches: Iterable[pl.DataFrame], staging: Staging
    ) -> None:
        started = time.monotonic()
        for batch in batches:
            validated = validate_batch(batch, staging.plan, self.settings.formats)
            report.rows_read += batch.height
            report.rejected += validated.rejected_records
            sink.add(validated.rejects)
            staging.stage(validated.rows)
            elapsed = max(time.monotonic() - started, 1e-6)
            self.logger.info(
                "%s: %d rows read, %d rejected, %.0f rows/s",
                report.path,
                report.rows_read,
                report.rejected,
                report.rows_read / elapsed,
            )


def _database_refusal(name: str, exc: sa.exc.DBAPIError, report: FileReport) -> None:
    """Turn a database error of a load into the run's error (another writer, the hub lost) or the file's."""
    if _is_conflict(exc):
        raise HubConflictError(
            f"{name}: another writer loaded the same rows or created the same tables at the same time "
            f"({_database_reason(exc)}); the load was rolled back and the file left in place."
        ) from exc
    if not isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError):
        raise SourceUnavailableError(
            f"{name}: the hub database failed during the load, which was rolled back: "
            f"{_database_reason(exc)}. Re-run the job once the database is reachable."
        ) from exc
    report.message = (
        f"{name}: the hub database refused the file's data, so nothing of it was loaded: "
        f"{_database_reason(exc)}. Fix the value in the file."
    )
    _clear_counts(report)


def _clear_counts(report: FileReport) -> None:
    report.rows_read = report.inserted = report.updated = report.unchanged = 0


def _is_conflict(exc: sa.exc.DBAPIError) -> bool:
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if state is not None:
        return state in _CONFLICT_SQLSTATES
    # SQLite serialises writers: the same keys can only meet when a writer skipped the job's lock.
    return "UNIQUE constraint failed" in str(exc.orig)


def rejects_file_name(name: str) -> str:
    """Return a short, safe local file name for the rejects of source `name` (a remote path may be long)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip("/").replace("/", "__"))[-60:].lstrip("._-")
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{readable or 'source'}-{digest}.rejects.csv"


def _database_reason(exc: sa.exc.DBAPIError) -> str:
    # The driver's first line says what and where; SQLAlchemy's own text repeats the SQL.
    return f"{type(exc.orig).__name__}: {str(exc.orig).splitlines()[0][:300]}"


def _check_threshold(report: FileReport, threshold_percent: float) -> None:
    if report.rows_read == 0:
        return
    share = 100.0 * report.rejected / report.rows_read
    if share > threshold_percent:
        raise ThresholdExceededError(
            f"{report.rejected} of {report.rows_read} rows rejected ({share:.1f} %), over the job's "
            f"`reject_threshold_percent` of {threshold_percent:g} %: nothing from this file was loaded. "
            "Fix the rejected rows (see the rejects), or raise the threshold."
        )
