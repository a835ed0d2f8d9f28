"""Benchmark the CSV load step: a products file into SQLite or PostgreSQL, fresh and forced re-import.

    python -m bench.csv_import --rows 1000000 --target sqlite --runs 3
    python -m bench.csv_import --rows 1000000 --target postgresql --runs 3
    python -m bench.csv_import --rows 20000 --target sqlite --runs 1      # smoke size, seconds

The file is generated once (cached under `.state/bench/`). Each run is two measurements, each in a
fresh Python process: a load into an empty database ("fresh"), then a load of the same file again
("re-import": every row unchanged; `import_csv_file` itself never consults the ledger, which is what
the job's `force` amounts to). Import time is the wall time of `import_csv_file` (parse, validate,
stage, merge, commit); peak RSS is the process's `ru_maxrss` at its end (imports included). The job
maps 14 typed columns (text, decimal, boolean, date, datetime, list); the other 8 are ignored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STATE = Path(__file__).resolve().parents[1] / ".state" / "bench"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMA = "bench"
MAPPING = {
    "Product External Id": "productExternalId",  # text, key of products and parent of variants
    "Product Names": "productNames",  # text with commas, quotes, accents
    "Product Brand": "productBrand",
    "Product Classification Category Id": "productClassificationCategoryId",
    "Deleted Product": "deletedProduct",  # boolean
    "Variant External Id": "variantExternalId",  # text, key of variants
    "Variant Names": "variantNames",
    "Variant External Sku": "variantExternalSku",
    "Variant Ean": "variantEan",  # list: 0-8 EANs joined with ||
    "Variant Price": "variantPrice",  # decimal, 2 % empty
    "Variant Weight": "variantWeight",  # decimal, 2 % empty
    "Variant Available From": "variantAvailableFrom",  # date DD/MM/YYYY
    "Variant Updated At": "variantUpdatedAt",  # datetime ISO 8601
    "Inactive Variant": "inactiveVariant",  # boolean
}


def data_file(rows: int) -> Path:
    """Return the generated products file of `rows` rows, generating it on first use."""
    from bench.generate_products import generate

    path = STATE / f"products-{_size_name(rows)}.csv"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        generate(rows, path)
    return path


def _size_name(rows: int) -> str:
    for unit, size in (("m", 1_000_000), ("k", 1_000)):
        if rows >= size and rows % size == 0:
            return f"{rows // size}{unit}"
    return str(rows)


def database_url(target: str) -> str:
    """Return the SQLAlchemy URL of the benchmark database on `target`."""
    if target == "sqlite":
        return f"sqlite:///{STATE / 'bench-hub.db'}"
    return f"{POSTGRES_URL}?options=-csearch_path%3D{SCHEMA}"


def reset_database(target: str) -> None:
    """Start from an empty database: a new SQLite file, or a new `bench` schema on PostgreSQL."""
    if target == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{STATE / 'bench-hub.db'}{suffix}").unlink(missing_ok=True)
        return
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
    engine.dispose()


def drop_schema() -> None:
    """Remove the benchmark schema from PostgreSQL."""
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    engine.dispose()


def measure(path: Path, target: str, *, batch_rows: int | None = None) -> dict[str, Any]:
    """Import `path` once in this process; return the timing, peak RSS and the report's counts."""
    from pydantic import SecretStr

    from blocks.database import DatabaseConnection
    from tasks.csv.load import import_csv_file
    from tasks.csv.reader import CsvFormat
    from tasks.hub.load import LoadSettings, SourceFile
    from tasks.hub.mapping import CellFormats

    digest = hashlib.sha256(path.name.encode()).hexdigest()  # the ledger's content hash; not timed
    source = SourceFile(f"/bench/{path.name}", path, path.stat().st_size, None, digest)
    csv_format = CsvFormat(delimiter=";", **({"batch_rows": batch_rows} if batch_rows else {}))
    settings = LoadSettings(
        job="bench-products",
        run_id=f"bench-{os.getpid()}",
        entity="products",
        mapping=MAPPING,
        formats=CellFormats(),
        reject_threshold_percent=10,
    )
    engine = DatabaseConnection(url=SecretStr(database_url(target))).engine()
    started = time.perf_counter()
    report, _ = import_csv_file(
        engine, source, csv_format, settings, rejects_dir=STATE / "rejects", logger=logging.getLogger("bench")
    )
    seconds = time.perf_counter() - started
    engine.dispose()
    if report.status == "FAILED":
        raise SystemExit(f"the import failed: {report.message}")
    return {
        "seconds": seconds,
        "rss_mib": _rss_mib(),
        "rows": report.rows_read,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "duplicates": report.duplicates,
    }


def _rss_mib() -> float:
    from bench.run import _rss_mib as peak

    return peak()


def _measure_in_subprocess(path: Path, target: str, batch_rows: int | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.csv_import", "--measure", str(path), "--target", target]
    if batch_rows:
        command += ["--batch-rows", str(batch_rows)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _summary(values: list[float], fmt: str) -> str:
    median = format(statistics.median(values), fmt)
    if len(values) == 1:
        return median
    return f"{median} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def run(rows: int, target: str, runs: int, batch_rows: int | None) -> list[str]:
    """Run the benchmark; return the table's lines."""
    path = data_file(rows)
    results: dict[str, list[dict[str, Any]]] = {"fresh": [], "re-import": []}
    for number in range(1, runs + 1):
        reset_database(target)
        for case in results:
            result = _measure_in_subprocess(path, target, batch_rows)
            results[case].append(result)
            print(f"run {number} {case}: {json.dumps(result)}", flush=True)
    if target == "postgresql":
        drop_schema()
    lines = [
        f"{rows:,} rows, {path.stat().st_size / 1e6:.0f} MB, 14 mapped columns, {target}, {runs} run(s): "
        "median (min-max)",
        "",
        "| case | import time (s) | rows/s | peak RSS (MiB) | inserted / updated / unchanged |",
        "|---|---|---|---|---|",
    ]
    for case, found in results.items():
        last = found[-1]
        lines.append(
            f"| {target} {case} | {_summary([r['seconds'] for r in found], '.2f')} "
            f"| {_summary([r['rows'] / r['seconds'] for r in found], ',.0f')} "
            f"| {_summary([r['rss_mib'] for r in found], '.0f')} "
            f"| {last['inserted']:,} / {last['updated']:,} / {last['unchanged']:,} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    """Command line; see the module's docstring."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the products file")
    parser.add_argument("--target", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median, min-max)")
    parser.add_argument("--batch-rows", type=int, default=None, help="override csv.batch_rows")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # one measurement (child process)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.target, batch_rows=args.batch_rows)))
        return
    print("\n".join(run(args.rows, args.target, args.runs, args.batch_rows)))


if __name__ == "__main__":
    main()
