"""`python -m deployments runs|ledger|rejects|forget`: the hub's history read from the terminal, exactly.

The hub is the embedded SQLite database of the test's state folder; the job is in no `prefect.yaml`,
so every command reads that database. Its rows are made by real loads; their times are then fixed,
so that the whole output can be compared.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from blocks.database import DatabaseConnection
from deployments.__main__ import main
from tasks.csv.load import import_csv_file
from tasks.csv.reader import CsvFormat
from tasks.hub.ledger import RunTotals, find_loaded, finish_run, prepare_hub, start_run
from tasks.hub.load import LoadSettings, SourceFile
from tasks.hub.mapping import CellFormats
from tasks.run.report import FileReport

JOB = "suppliers-from-erp"
RUN = "5f0c1a2e-0000-4000-8000-000000000001"
GOOD = "Supplier External Id,Supplier Name,Status\nS1,Acme,ACTIVE\nS2,Globex,OPEN\nS3,Initech,ACTIVE\n"
BAD = "Supplier External Id,Supplier Name,Status\nS4,Umbrella,SHUT\nS5,,ACTIVE\nS6,Hooli,ACTIVE\n"


def load(
    engine: sa.Engine, folder: Path, name: str, text: str, *, threshold: float, force: bool = False
) -> FileReport:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    data = path.read_bytes()
    source = SourceFile(f"erp/inbound/{name}", path, len(data), None, hashlib.sha256(data).hexdigest())
    settings = LoadSettings(
        job=JOB, run_id=RUN, entity="suppliers", mapping=None, formats=CellFormats(),
        reject_threshold_percent=threshold, force=force,
    )  # fmt: skip
    report, _ = import_csv_file(
        engine, source, CsvFormat(delimiter=","), settings, rejects_dir=folder / "rejects",
        logger=logging.getLogger("test"),
    )  # fmt: skip
    return report


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sa.Engine:
    """The embedded hub of a fresh state folder, holding one run of JOB: one PARTIAL file, one FAILED."""
    monkeypatch.setenv("DATAHUB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "200")
    engine = DatabaseConnection().engine()
    prepare_hub(engine)
    start_run(engine, run_id=RUN, job=JOB, kind="csv-ftp", flow_run_id=RUN)
    assert load(engine, tmp_path, "a.csv", GOOD, threshold=50).status == "PARTIAL"
    assert load(engine, tmp_path, "b.csv", BAD, threshold=10).status == "FAILED"
    totals = RunTotals(files=2, rows_read=3, inserted=2, rejected=1)
    finish_run(
        engine, run_id=RUN, status="FAILED", totals=totals, message="erp/inbound/b.csv: 2 of 3 rows rejected"
    )
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE datahub_runs SET started_at = '2026-11-27 08:00:00.000000'")
        conn.exec_driver_sql("UPDATE datahub_ledger SET recorded_at = '2026-11-27 08:00:01.000000'")
    yield engine
    engine.dispose()


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str, str]:
    manifest = tmp_path / "prefect.yaml"
    manifest.write_text("deployments: []\n", encoding="utf-8")
    code = main([*args, "--prefect-file", str(manifest)])
    out, err = capsys.readouterr()
    return code, out, err


def shown(text: str, tmp_path: Path) -> str:
    """The output with the test's folder as <tmp>, without the table's trailing padding, its rule as `───`."""
    lines = (line.rstrip() for line in text.replace(str(tmp_path), "<tmp>").splitlines())
    return "\n".join("───" if line and set(line) == {"─"} else line for line in lines)


HUB = "hub sqlite:///<tmp>/state/hub.db"


def test_runs_lists_the_jobs_last_runs_with_status_counts_and_message(
    hub: sa.Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, tmp_path, "runs", JOB)
    assert (code, err) == (0, "")
    assert (
        shown(out, tmp_path)
        == f"""\
Last 1 runs of suppliers-from-erp ({HUB}), newest first
started (UTC)         status   files   read   inserted   updated   unchanged   rejected   run                                    message
───
2026-11-27 08:00:00   FAILED       2      3          2         0           0          1   {RUN}   erp/inbound/b.csv: 2 of 3 rows rejected"""
    )


def test_rejects_lists_every_files_rejects_even_of_a_file_the_threshold_rolled_back(
    hub: sa.Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, tmp_path, "rejects", RUN)
    assert (code, err) == (0, "")
    assert (
        shown(out, tmp_path)
        == f"""\
erp/inbound/a.csv: PARTIAL, 1 reject(s)
erp/inbound/b.csv: FAILED, 2 reject(s)
Rejects of run {RUN} ({HUB})
file                record   line   column          value     code      message
───
erp/inbound/a.csv        2      3   Status          'OPEN'    F-E-008   Unexpected value for `status`; it must be one of ACTIVE, SUSPENDED, CLOSED.
erp/inbound/b.csv        1      2   Status          'SHUT'    F-E-008   Unexpected value for `status`; it must be one of ACTIVE, SUSPENDED, CLOSED.
erp/inbound/b.csv        2      3   Supplier Name   (blank)   F-E-001   Required field `supplierName` is missing or blank."""
    )


def test_forget_marks_the_import_forgotten_and_the_next_load_imports_the_file_again(
    hub: sa.Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, tmp_path, "forget", JOB, "a.csv")
    assert (code, err) == (0, "")
    assert shown(out, tmp_path) == (
        f"Forgot 1 import(s) of erp/inbound/a.csv by suppliers-from-erp ({HUB}); the rows are kept, marked "
        "forgotten.\nThe job's next run imports it again."
    )
    with hub.begin() as conn:
        conn.exec_driver_sql("UPDATE datahub_ledger SET forgotten_at = '2026-11-27 09:30:00.000000'")
        assert find_loaded(conn, JOB, sha256=hashlib.sha256(GOOD.encode()).hexdigest()) is None
    code, out, err = run(capsys, tmp_path, "ledger", JOB)
    assert (code, err) == (0, "")
    assert (
        shown(out, tmp_path)
        == f"""\
Last 1 files of suppliers-from-erp in the ledger ({HUB}), newest first
recorded (UTC)        file                outcome   run                                    moved to   note
───
2026-11-27 08:00:01   erp/inbound/a.csv   PARTIAL   {RUN}              forgotten 2026-11-27 09:30:00"""
    )
    # Not forced: the forgotten content is imported again (the one-import-per-content index allows it).
    assert load(hub, tmp_path, "a.csv", GOOD, threshold=50).status == "PARTIAL"
    code, out, _ = run(capsys, tmp_path, "forget", JOB, "a.csv")
    assert code == 0, out  # the new import; the forgotten row stays as it was
    assert out.startswith("Forgot 1 import(s) of erp/inbound/a.csv")


def test_mistakes_are_one_line_each_and_exit_1(
    hub: sa.Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    said = {
        args: (code, shown(out, tmp_path), shown(err, tmp_path))
        for args in (("runs", "suppliers"), ("ledger", "suppliers"), ("rejects", "no-such-run"),
                     ("forget", JOB, "b.csv"), ("forget", JOB, "zzz.csv"))
        for code, out, err in [run(capsys, tmp_path, *args)]
    }  # fmt: skip
    unknown = f"The {HUB} has no run of a job named 'suppliers'; jobs it has: suppliers-from-erp."
    assert said == {
        ("runs", "suppliers"): (1, "", unknown),
        ("ledger", "suppliers"): (1, "", unknown),
        ("rejects", "no-such-run"): (
            1,
            "",
            f"The run no-such-run is not in its run history; `runs JOB` lists a job's runs ({HUB}).",
        ),
        ("forget", JOB, "b.csv"): (  # failed, so never imported
            1,
            "",
            "Nothing forgotten: the job suppliers-from-erp has no import of b.csv to forget (see `python -m "
            "deployments ledger suppliers-from-erp`).",
        ),
        ("forget", JOB, "zzz.csv"): (
            1,
            "",
            "Nothing forgotten: the job suppliers-from-erp has no import of zzz.csv to forget (see `python -m "
            "deployments ledger suppliers-from-erp`).",
        ),
    }
