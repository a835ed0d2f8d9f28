"""The CSV import flow end to end: real FTP/SFTP servers on loopback, the Prefect test server,
real SQLite and PostgreSQL hub databases."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import State
from pydantic import SecretStr

from blocks.database import DatabaseConnection
from flows.import_csv_from_ftp import CsvImportJob, check_job_connection, import_csv_from_ftp
from tasks.files import CLAIM_DIR
from tasks.run.report import ImportReport
from tests.fixtures_servers import make_block
from tests.flows.hub import rows, run_for_report, status_of

pytestmark = pytest.mark.usefixtures("prefect_server")

PRODUCTS_HEADER = "Product External Id;Product Names;Product Classification Category Id;Variant External Id;Variant Names;Variant Price"
GOOD_PRODUCTS = (
    PRODUCTS_HEADER + "\nP1;Chair;C1;V1;Chair oak;10.50\nP1;;;V2;Chair black;11.00\nP2;Table;C2;V3;Table;99\n"
)
BAD_ROW_PRODUCTS = PRODUCTS_HEADER + "\nP3;Lamp;C3;V4;Lamp;12.00\nP4;Stool;C4;V5;Stool;abc\n"


def _job(connection: str, target: str, **overrides: Any) -> CsvImportJob:
    job: dict[str, Any] = {
        "name": f"test-{uuid.uuid4().hex[:8]}",
        "connection": connection,
        "entity": "products",
        "source": {
            "kind": "folder",
            "inbound_dir": "in",
            "outbound_dir": "out",
            "failed_dir": "failed",
            "settle_seconds": 0,
        },
        "csv": {"delimiter": ";"},
        "target": target,
        "reject_threshold_percent": 60,
    }
    job.update(overrides)
    return CsvImportJob.model_validate(job)


def _run(job: CsvImportJob) -> tuple[State, ImportReport]:
    return run_for_report(import_csv_from_ftp, job)


def _has_table(url: str, table: str) -> bool:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).has_table(table)
    finally:
        engine.dispose()


def _artifact(key: str) -> Any:
    # Not prefect.artifacts.Artifact.get: it opens a client it never closes (leaked sockets).
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=1
        )
    return found[0] if found else None


@pytest.fixture
def ftp_root(ftp_server: Any) -> Path:
    root = Path(ftp_server.root)
    for folder in ("in", "out", "failed"):
        (root / folder).mkdir(exist_ok=True)
    return root


@pytest.fixture
def ftp_block(ftp_server: Any) -> str:
    name = f"ftp-{uuid.uuid4().hex[:8]}"
    make_block(ftp_server).save(name, overwrite=True)
    return name


@pytest.fixture
def hub(database_url: str) -> tuple[str, str]:
    name = f"hub-{uuid.uuid4().hex[:8]}"
    DatabaseConnection(url=SecretStr(database_url)).save(name, overwrite=True)
    return name, database_url


def test_bulk_run_loads_good_files_moves_them_and_fails_the_bad_one(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str]
) -> None:
    (ftp_root / "in" / "a.csv").write_text(GOOD_PRODUCTS, encoding="utf-8")
    (ftp_root / "in" / "b.csv").write_text(
        GOOD_PRODUCTS.replace(";", ","), encoding="utf-8"
    )  # wrong delimiter
    (ftp_root / "in" / "c.csv").write_text(BAD_ROW_PRODUCTS, encoding="utf-8")
    state, report = _run(_job(ftp_block, hub[0]))

    assert state.is_failed()
    statuses = {Path(f.path).name: f.status for f in report.files}
    assert statuses == {"a.csv": "SUCCESS", "b.csv": "FAILED", "c.csv": "PARTIAL"}
    wrong = next(f for f in report.files if f.path.endswith("b.csv"))
    assert "csv.delimiter: ','" in wrong.message
    assert sorted(p.name for p in (ftp_root / "out").iterdir()) == ["a.csv", "c.csv"]
    assert [p.name for p in (ftp_root / "failed").iterdir()] == ["b.csv"]
    assert [p.name for p in (ftp_root / "in").iterdir()] == [CLAIM_DIR]  # the claim folder stays
    assert list((ftp_root / "in" / CLAIM_DIR).iterdir()) == []
    assert rows(hub[1], 'SELECT "variantExternalId" FROM variants ORDER BY 1') == [
        ("V1",),
        ("V2",),
        ("V3",),
        ("V4",),
    ]
    assert rows(hub[1], 'SELECT "productNames" FROM products WHERE "productExternalId" = \'P1\'') == [
        ("Chair",)
    ]
    assert [(r.record, r.line, r.column, r.value, r.code) for r in report.rejects] == [
        (2, 3, "Variant Price", "abc", "F-E-012")
    ]
    history = rows(
        hub[1], f"SELECT status, files, rows_read, rejected FROM datahub_runs WHERE job = '{report.job}'"
    )
    assert history == [("FAILED", 3, 5, 1)]


def test_rerun_is_skipped_by_the_ledger_and_a_forced_rerun_changes_nothing(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str]
) -> None:
    job = _job(ftp_block, hub[0])
    (ftp_root / "in" / "a.csv").write_text(GOOD_PRODUCTS, encoding="utf-8")
    first_state, first = _run(job)
    assert status_of(first_state) == "SUCCESS"
    assert (first.total("inserted"), first.total("updated")) == (3, 0)
    before = rows(hub[1], "SELECT * FROM variants ORDER BY 1")

    (ftp_root / "out" / "a.csv").rename(ftp_root / "in" / "a.csv")  # the same file dropped again
    skipped_state, skipped = _run(job)
    assert status_of(skipped_state) == "SKIPPED"
    assert skipped.files[0].status == "SKIPPED"
    assert "Already imported" in skipped.files[0].message
    assert skipped.files[0].moved_to is not None  # not left in inbound forever

    moved = Path(ftp_root / skipped.files[0].moved_to)
    moved.rename(ftp_root / "in" / "a.csv")
    forced_state, forced = _run(job.model_copy(update={"force": True}))
    assert status_of(forced_state) == "SUCCESS"
    assert (forced.total("inserted"), forced.total("updated"), forced.total("unchanged")) == (0, 0, 3)
    assert rows(hub[1], "SELECT * FROM variants ORDER BY 1") == before


def test_partial_run_is_completed_with_rejects_and_publishes_artifacts(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str]
) -> None:
    (ftp_root / "in" / "c.csv").write_text(BAD_ROW_PRODUCTS, encoding="utf-8")
    job = _job(ftp_block, hub[0])
    state, report = _run(job)
    assert state.is_completed()
    assert status_of(state) == "PARTIAL"
    assert report.status == "PARTIAL"
    key = job.name.lower()
    summary, rejects = _artifact(f"{key}-summary"), _artifact(f"{key}-rejects")
    assert summary is not None
    assert "PARTIAL" in str(summary.data)
    assert rejects is not None
    assert "F-E-012" in str(rejects.data)
    assert '"file": "in/c.csv"' in str(rejects.data)
    progress = _artifact(f"{key}-progress")
    assert (progress.type, progress.data) == ("progress", 100.0)
    assert progress.description.startswith(
        "PARTIAL: 1 file, rows read 2, inserted 1, updated 0, unchanged 0, rejected 1. file 1 of 1, 2 rows, "
    )
    assert progress.description.endswith(" rows/s")
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    assert flow_run.name == f"PARTIAL · 1 of 2 rejected · {job.name}"
    assert "datahub:partial" in flow_run.tags


def test_threshold_exceeded_loads_nothing_and_moves_the_file_to_failed(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str]
) -> None:
    (ftp_root / "in" / "c.csv").write_text(BAD_ROW_PRODUCTS, encoding="utf-8")
    state, report = _run(_job(ftp_block, hub[0], reject_threshold_percent=10))
    assert state.is_failed()
    assert "reject_threshold_percent" in report.files[0].message
    assert [p.name for p in (ftp_root / "failed").iterdir()] == ["c.csv"]
    # The rollback took the whole file, the tables its load created included.
    assert not _has_table(hub[1], "variants")
    assert rows(hub[1], "SELECT count(*) FROM datahub_ledger") == [(0,)]


def test_single_file_job_moves_to_outbound_and_an_absent_file_is_skipped(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str]
) -> None:
    (ftp_root / "in" / "products.csv").write_text(GOOD_PRODUCTS, encoding="utf-8")
    source = {"kind": "file", "file_path": "in/products.csv", "outbound_dir": "out"}
    job = _job(ftp_block, hub[0], source=source)
    state, report = _run(job)
    assert status_of(state) == "SUCCESS"
    assert report.files[0].moved_to == "out/products.csv"
    again_state, again = _run(job)
    assert status_of(again_state) == "SKIPPED"
    assert again.files == []
    assert "not on the server" in again.warnings[0]


def test_move_never_overwrites_an_outbound_file(ftp_root: Path, ftp_block: str, hub: tuple[str, str]) -> None:
    (ftp_root / "out" / "a.csv").write_text("previous file", encoding="utf-8")
    (ftp_root / "in" / "a.csv").write_text(GOOD_PRODUCTS, encoding="utf-8")
    _, report = _run(_job(ftp_block, hub[0]))
    assert (ftp_root / "out" / "a.csv").read_text(encoding="utf-8") == "previous file"
    moved = report.files[0].moved_to
    assert moved is not None
    assert moved != "out/a.csv"
    assert moved.startswith("out/a.")
    assert (ftp_root / moved).read_text(encoding="utf-8") == GOOD_PRODUCTS


def test_encodings_bom_and_windows_1252(ftp_root: Path, ftp_block: str, hub: tuple[str, str]) -> None:
    text = PRODUCTS_HEADER + "\nP9;Chaise d'Été à 5 €;C1;V9;Été;5.00\n"
    (ftp_root / "in" / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    state, _ = _run(_job(ftp_block, hub[0]))
    assert status_of(state) == "SUCCESS"
    (ftp_root / "in" / "cp1252.csv").write_bytes(
        text.replace("P9", "P8").replace("V9", "V8").encode("cp1252")
    )
    state, _ = _run(_job(ftp_block, hub[0], csv={"delimiter": ";", "encoding": "windows-1252"}))
    assert status_of(state) == "SUCCESS"
    names = rows(hub[1], 'SELECT "productNames" FROM products ORDER BY 1')
    assert names == [("Chaise d'Été à 5 €",), ("Chaise d'Été à 5 €",)]


def test_missing_mapped_column_fails_the_file_with_the_fix(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str]
) -> None:
    (ftp_root / "in" / "a.csv").write_text(GOOD_PRODUCTS, encoding="utf-8")
    mapping = {"Product External Id": "productExternalId", "Brand": "productBrand"}
    state, report = _run(_job(ftp_block, hub[0], mapping=mapping))
    assert state.is_failed()
    assert "['Brand'] are not in the file's header" in report.files[0].message
    assert [p.name for p in (ftp_root / "failed").iterdir()] == ["a.csv"]


@pytest.mark.parametrize("server_fixture", ["ftps_server", "sftp_server"])
def test_verified_ftps_and_sftp_sources_end_to_end(
    request: pytest.FixtureRequest, server_fixture: str, sqlite_url: str
) -> None:
    server = request.getfixturevalue(server_fixture)
    hub = (f"hub-{uuid.uuid4().hex[:8]}", sqlite_url)
    DatabaseConnection(url=SecretStr(sqlite_url)).save(hub[0], overwrite=True)
    root = Path(server.root)
    for folder in ("in", "out", "failed"):
        (root / folder).mkdir(exist_ok=True)
    (root / "in" / "a.csv").write_text(GOOD_PRODUCTS, encoding="utf-8")
    name = f"{server.protocol}-{uuid.uuid4().hex[:8]}"
    make_block(server).save(name, overwrite=True)  # certificate / host key verified, not skipped
    state, report = _run(_job(name, hub[0]))
    assert status_of(state) == "SUCCESS"
    assert report.total("inserted") == 3
    assert [p.name for p in (root / "out").iterdir()] == ["a.csv"]


def test_connection_check_names_the_folder_it_cannot_write(ftp_root: Path, ftp_block: str) -> None:
    job = _job(ftp_block, "unused")
    assert check_job_connection(job) == []
    (ftp_root / "failed").rmdir()
    problems = check_job_connection(job)
    assert len(problems) == 1
    assert "failed" in problems[0]


def test_a_missing_inbound_folder_fails_the_run_with_the_folder_named(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str]
) -> None:
    (ftp_root / "in").rmdir()
    job = _job(ftp_block, hub[0])
    state, report = _run(job)
    assert state.is_failed()
    assert "Cannot list the folder 'in'" in report.error
    history = rows(hub[1], f"SELECT status, message FROM datahub_runs WHERE job = '{job.name}'")
    assert history[0][0] == "FAILED"
    assert history[0][1] == report.error
