"""Load one source's batches into the hub database in one transaction, and ledger it.

This is the "load" step of both jobs (a CSV file through `tasks.csv.load`, an API run's records through
`import_batches`): plan the mapping, then validate and stage batch by batch, check new keys against
the database, check the reject threshold, merge, write the ledger entry and commit. Any failure rolls
the whole load back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import sqlalchemy as sa
from pydantic import Field

from tasks.errors import ImportJobError, SourceUnavailableError, ThresholdExceededError
from tasks.hub.ledger import record_file
from tasks.hub.mapping import CellFormats, MappingPlan, validate_batch
from tasks.hub.schema import ensure_system_tables
from tasks.hub.staging import Staging, open_staging
from tasks.run.report import FileReport, Reject, RejectSink, TableResult

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
    return _import(
        engine, _new_report(name, ledger_source), prepare, settings, rejects_dir, logger, ledger_source
    )


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
    return _import(
        engine,
        _new_report(name, ledger_source),
        lambda _report: (plan, batches),
        settings,
        rejects_dir,
        logger,
        ledger_source,
    )


def _new_report(name: str, source: SourceFile | None) -> FileReport:
    return FileReport(
        path=name,
        status="FAILED",
        size=source.size if source else None,
        sha256=source.sha256 if source else None,
    )


def _import(
    engine: sa.Engine,
    report: FileReport,
    prepare: Prepare,
    settings: LoadSettings,
    rejects_dir: Path,
    logger: RunLogger,
    ledger_source: SourceFile | None,
) -> tuple[FileReport, list[Reject]]:
    started = time.monotonic()
    name = report.path
    sink = RejectSink(rejects_dir / (name.strip("/").replace("/", "__") + ".rejects.csv"))
    try:
        plan, batches = prepare(report)
        _load_translated(engine, batches, plan, settings, ledger_source, sink, report, logger)
        report.status = "PARTIAL" if report.rejected else "SUCCESS"
    except ThresholdExceededError as exc:
        report.message = str(exc)
    except ImportJobError as exc:
        report.message = str(exc)
        report.rows_read = report.inserted = report.updated = report.unchanged = 0
    except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
        report.message = (
            f"{name}: the hub database refused the file's data, so nothing of it was loaded: "
            f"{_database_reason(exc)}. Fix the value in the file."
        )
        report.rows_read = report.inserted = report.updated = report.unchanged = 0
    except sa.exc.DBAPIError as exc:
        raise SourceUnavailableError(
            f"{name}: the hub database failed during the load, which was rolled back: "
            f"{_database_reason(exc)}. Re-run the job once the database is reachable."
        ) from exc
    report.rejects_file = str(sink.path) if sink.count else None
    report.seconds = round(time.monotonic() - started, 3)
    return report, sink.sample


def _load_translated(
    engine: sa.Engine,
    batches: Iterable[pl.DataFrame],
    plan: MappingPlan,
    settings: LoadSettings,
    source: SourceFile | None,
    sink: RejectSink,
    report: FileReport,
    logger: RunLogger,
) -> None:
    # The bulk copy talks to the driver directly, so its errors reach us unwrapped: wrap them as
    # SQLAlchemy would, so that a refused value or a lost connection is reported, not a traceback.
    dbapi = engine.dialect.loaded_dbapi
    try:
        _load(engine, batches, plan, settings, source, sink, report, logger)
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(None, None, exc, dbapi.Error, dialect=engine.dialect) from exc


def _load(
    engine: sa.Engine,
    batches: Iterable[pl.DataFrame],
    plan: MappingPlan,
    settings: LoadSettings,
    source: SourceFile | None,
    sink: RejectSink,
    report: FileReport,
    logger: RunLogger,
) -> None:
    with engine.begin() as conn:
        ensure_system_tables(conn)
        staging = open_staging(conn, plan)
        try:
            _stage_batches(batches, plan, settings, staging, sink, report, logger)
            report.duplicates = staging.sent_rows - staging.staged_count(plan.row_table)
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
            )


def _stage_batches(
    batches: Iterable[pl.DataFrame],
    plan: MappingPlan,
    settings: LoadSettings,
    staging: Staging,
    sink: RejectSink,
    report: FileReport,
    logger: RunLogger,
) -> None:
    started = time.monotonic()
    for batch in batches:
        validated = validate_batch(batch, plan, settings.formats)
        report.rows_read += batch.height
        report.rejected += validated.rejected_records
        sink.add(validated.rejects)
        staging.stage(validated.rows)
        elapsed = max(time.monotonic() - started, 1e-6)
        logger.info(
            "%s: %d rows read, %d rejected, %.0f rows/s",
            report.path,
            report.rows_read,
            report.rejected,
            report.rows_read / elapsed,
        )


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
