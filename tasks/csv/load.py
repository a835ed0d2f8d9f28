"""Load one downloaded CSV file into the hub: read the header (within the job's width limits),
transcode if needed, plan the mapping and hand the file's batches to the hub's load
(`tasks.hub.load`), whole or not at all."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.csv.reader import CsvFormat, iter_batches, open_csv
from tasks.hub.entities import entity as entity_named
from tasks.hub.load import LoadSettings, RunLogger, SourceFile, load_prepared
from tasks.hub.mapping import MappingPlan, near_misses, plan_mapping
from tasks.run import FileReport, Reject, current_progress


def import_csv_file(
    engine: sa.Engine,
    source: SourceFile,
    csv: CsvFormat,
    settings: LoadSettings,
    *,
    rejects_dir: Path,
    logger: RunLogger,
) -> tuple[FileReport, list[Reject]]:
    """Load `source`, read with `csv`, whole or not at all; return its report and its first rejects."""
    name = source.remote_path

    def prepare(report: FileReport) -> tuple[MappingPlan, Iterable[pl.DataFrame]]:
        utf8, header = open_csv(source.local_path, csv, name=name)
        plan = plan_mapping(entity_named(settings.entity), settings.mapping, header.columns, name=name)
        report.ignored_columns, report.near_misses = list(plan.ignored_columns), near_misses(plan)
        size, progress = utf8.stat().st_size, current_progress()
        return plan, iter_batches(
            utf8, csv, header, name=name, on_read=lambda done, rows: progress.read(done, size, rows)
        )

    try:
        report, rejects = load_prepared(
            engine, name, prepare, settings, rejects_dir=rejects_dir, logger=logger, ledger_source=source
        )
    finally:
        for leftover in source.local_path.parent.glob(source.local_path.name + ".utf8"):
            leftover.unlink(missing_ok=True)
    if report.status in ("SUCCESS", "PARTIAL") and report.rows_read == 0:
        report.message = "The file has a header and no data rows."
    return report, rejects


@task(name="load-file", cache_policy=NO_CACHE)
def load_file(
    engine: sa.Engine, source: SourceFile, csv: CsvFormat, settings: LoadSettings, rejects_dir: Path
) -> tuple[FileReport, list[Reject]]:
    """Load one downloaded file into the hub database (the run's engine; one transaction) and ledger it."""
    return import_csv_file(engine, source, csv, settings, rejects_dir=rejects_dir, logger=get_run_logger())
