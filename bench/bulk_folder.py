"""Bulk mode at scale: a folder of many small files, our flow against a per-file floor measured beside it.

The floor does, per file, what any importer of a folder must do, and nothing else: over ONE FTP session
and ONE SQLite connection kept for the whole folder, RETR the file into memory while hashing it
(sha256), parse it with polars, then in one transaction stage its rows into a temporary table, upsert
them into the target table and write a ledger row, commit, and rename the file into the outbound
folder. No Prefect, no validation, no claims, no rejects, no report. `bench/run.py` runs it and our
flow (`import_csv_from_ftp` with a `folder` source) on the same files in the same run.

    python -m bench.bulk_folder --files 200      # both, one run each, on a throwaway FTP server
"""

from __future__ import annotations

import argparse
import ftplib
import hashlib
import io
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from bench.csv_import import MAPPING, STATE, data_file

ROWS_PER_FILE = 100
FLOOR_COLUMNS = list(MAPPING)
FLOOR_KEY = "Variant External Id"


def bulk_files(files: int, rows_per_file: int = ROWS_PER_FILE) -> Path:
    """Return a folder of `files` CSV files of `rows_per_file` rows each, cut from the 100k-row data.

    Cut with polars (the data has quoted cells with newlines: lines are not records); cached.
    """
    import polars as pl

    folder = STATE / f"bulk-{files}x{rows_per_file}"
    if folder.exists() and len(list(folder.iterdir())) == files:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    source = data_file(100_000)
    frame = pl.read_csv(source, separator=";", infer_schema=False)
    if frame.height < files * rows_per_file:
        repeats = -(-files * rows_per_file // frame.height)
        frame = pl.concat([frame] * repeats)
    for number in range(files):
        chunk = frame.slice(number * rows_per_file, rows_per_file)
        path = folder / f"products-{number:05d}.csv"
        chunk.write_csv(path, separator=";")
        # Oldest first is the import order: give the files distinct, increasing times.
        stamp = 1_700_000_000 + number
        os.utime(path, (stamp, stamp))
    return folder


def stage_inbound(files_dir: Path, ftp_root: Path, folder: str) -> None:
    """Put a fresh copy (hard links, times kept) of every file in `ftp_root/folder/in`, empty `out`."""
    base = ftp_root / folder
    shutil.rmtree(base, ignore_errors=True)
    (base / "in").mkdir(parents=True)
    (base / "out").mkdir()
    for path in sorted(files_dir.iterdir()):
        os.link(path, base / "in" / path.name)


def child_bulk_floor(params: dict[str, Any]) -> dict[str, Any]:
    """The per-file floor over one FTP session and one SQLite connection; see the module docstring."""
    import polars as pl

    folder = params["folder"]
    db = sqlite3.connect(params["sqlite_path"], isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    quoted = ", ".join(f'"{c}" TEXT' for c in FLOOR_COLUMNS)
    db.execute(f'CREATE TABLE IF NOT EXISTS floor_variants ({quoted}, PRIMARY KEY ("{FLOOR_KEY}"))')
    db.execute("CREATE TABLE IF NOT EXISTS floor_ledger (path TEXT, size INTEGER, sha256 TEXT, at REAL)")
    db.execute(f'CREATE TEMP TABLE stg ({quoted}, PRIMARY KEY ("{FLOOR_KEY}"))')
    names = ", ".join(f'"{c}"' for c in FLOOR_COLUMNS)
    marks = ", ".join("?" for _ in FLOOR_COLUMNS)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in FLOOR_COLUMNS if c != FLOOR_KEY)
    started = time.perf_counter()
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", params["ftp_port"], timeout=30)
    ftp.login(params["user"], params["password"])
    rows = 0
    # Oldest first, as bulk mode imports them (the names sort the same way here).
    paths = [f"{folder}/in/{name.rsplit('/', 1)[-1]}" for name in sorted(ftp.nlst(f"{folder}/in"))]
    for path in paths:
        buffer, digest = io.BytesIO(), hashlib.sha256()

        def take(block: bytes, buffer: io.BytesIO = buffer, digest: Any = digest) -> None:
            buffer.write(block)
            digest.update(block)

        ftp.retrbinary(f"RETR {path}", take)
        frame = pl.read_csv(buffer.getvalue(), separator=";", infer_schema=False, columns=FLOOR_COLUMNS)
        db.execute("BEGIN")
        db.execute("DELETE FROM stg")
        db.executemany(f"INSERT OR REPLACE INTO stg ({names}) VALUES ({marks})", frame.iter_rows())
        db.execute(
            f"INSERT INTO floor_variants ({names}) SELECT {names} FROM stg WHERE true "
            f'ON CONFLICT ("{FLOOR_KEY}") DO UPDATE SET {updates}'
        )
        db.execute(
            "INSERT INTO floor_ledger VALUES (?, ?, ?, ?)",
            (path, buffer.tell(), digest.hexdigest(), time.time()),
        )
        db.execute("COMMIT")
        ftp.rename(path, f"{folder}/out/{path.rsplit('/', 1)[-1]}")
        rows += frame.height
    ftp.quit()
    seconds = time.perf_counter() - started
    db.close()
    return {"seconds": seconds, "rows": rows, "files": len(paths)}


def child_bulk_flow(params: dict[str, Any]) -> dict[str, Any]:
    """Run `import_csv_from_ftp` on the folder (bulk mode); return its timings, counts and peak RSS."""
    import flows.import_csv_from_ftp as module
    from bench.run import _rss_mib, _save_blocks, _wrap

    _save_blocks(params)
    job = module.CsvImportJob.model_validate(
        {
            "name": "bench-bulk",
            "connection": "bench-ftp",
            "entity": "products",
            # The files are complete before the run: no settle wait (that wait is a setting, not work).
            "source": {
                "kind": "folder",
                "inbound_dir": f"{params['folder']}/in",
                "outbound_dir": f"{params['folder']}/out",
                "settle_seconds": 0,
            },
            "csv": {"delimiter": ";"},
            "mapping": MAPPING,
            "target": "bench-hub",
            "reject_threshold_percent": 10,
        }
    )
    marks = _wrap(module, "_import_files")
    started = time.perf_counter()
    module.import_csv_from_ftp(job, return_state=True)
    total = time.perf_counter() - started
    report = marks["args"][1]
    failed = [f"{f.path}: {f.message}" for f in report.files if f.status not in ("SUCCESS", "PARTIAL")]
    if report.status != "SUCCESS" or failed or len(report.files) != params["files"]:
        raise SystemExit(f"the import ended {report.status} with {len(report.files)} files: {failed[:3]}")
    body = marks["end"] - marks["start"]
    return {
        "seconds": body,
        "load_seconds": sum(f.seconds or 0 for f in report.files),
        "prefect_seconds": total - body,
        "rows": report.total("rows_read"),
        "files": len(report.files),
        "rss_mib": _rss_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the floor once on a throwaway FTP server (the flow runs from `bench/run.py`)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args(argv)
    from demo.ftp_server import local_ftp_server

    files = bulk_files(args.files)
    root = STATE / "bulk-ftp"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    stage_inbound(files, root, "floor")
    db = STATE / "bulk-floor.db"
    db.unlink(missing_ok=True)
    with local_ftp_server(root, username="bench", password="bench-only-password") as ftp:
        result = child_bulk_floor(
            {
                "ftp_port": ftp.port,
                "user": "bench",
                "password": "bench-only-password",
                "folder": "floor",
                "sqlite_path": str(db),
            }
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
