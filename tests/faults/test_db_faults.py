"""The hub database fails mid-file: PostgreSQL connections killed with `pg_terminate_backend`, and a
write that violates a constraint. The file's transaction rolls back, the file is not moved to
outbound, and a re-run leaves the tables exactly as one clean run does.

The kill is injected through a hook at a chosen point of the load (while a batch is staged, and after
the merge just before the ledger entry), so the test is deterministic; it terminates every backend of
the hub's connections (`application_name`), as a database restart would: the loading connection and
the one holding the job's lock. The load is retried (the lock taken again); a hub that keeps failing
stops the run with every file in place (issue 14: unavailability is not the file's fault).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import tasks.hub.ledger
import tasks.hub.staging
from flows.import_csv_from_ftp import CsvImportJob
from tests.faults.harness import (
    content,
    csv_job,
    files_in,
    make_folders,
    products_csv,
    run_csv,
    save_ftp_block,
    save_hub,
    table,
)
from tests.fixtures_servers import LocalFtp
from tests.flows.hub import status_of

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.postgres]


def _schema_url(admin_url: str, schema: str, app: str) -> str:
    return f"{admin_url}?options=-csearch_path%3D{schema}&application_name={app}"


@pytest.fixture
def pg_hubs(postgres_admin_url: str) -> Iterator[tuple[str, str, str]]:
    """Two fresh schemas: the hub under test and a reference loaded by one clean run; and the app name."""
    suffix = uuid.uuid4().hex[:10]
    schemas = (f"f_{suffix}", f"r_{suffix}")
    app = f"fault-{suffix}"
    admin = sa.create_engine(postgres_admin_url)
    with admin.begin() as conn:
        for schema in schemas:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            _schema_url(postgres_admin_url, schemas[0], app),
            _schema_url(postgres_admin_url, schemas[1], "reference"),
            app,
        )
    finally:
        with admin.begin() as conn:
            for schema in schemas:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def _terminate(admin_url: str, app: str) -> int:
    engine = sa.create_engine(admin_url)
    try:
        with engine.begin() as conn:
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                (app,),
            ).scalar_one()
    finally:
        engine.dispose()
    return int(killed)


def _once(kill: Callable[[], int], original: Callable[..., Any], fired: list[int]) -> Callable[..., Any]:
    def hooked(*args: Any, **kwargs: Any) -> Any:
        if not fired:
            fired.append(kill())
        return original(*args, **kwargs)

    return hooked


def _clean_reference(ftp_server: LocalFtp, reference_url: str, files: dict[str, str]) -> list[Any]:
    root = make_folders(ftp_server.root / "reference")
    for name, text in files.items():
        (root / "in" / name).write_text(text, encoding="utf-8")
    source = {
        "kind": "folder",
        "inbound_dir": "reference/in",
        "outbound_dir": "reference/out",
        "settle_seconds": 0,
    }
    state, _ = run_csv(csv_job(save_ftp_block(ftp_server), save_hub(reference_url), source=source))
    assert status_of(state) == "SUCCESS"
    return content(reference_url)


def _two_files(
    ftp_server: LocalFtp, pg_hubs: tuple[str, str, str]
) -> tuple[str, str, Path, CsvImportJob, dict[str, str]]:
    """Two files of 300 products in inbound and a job on the hub under test."""
    hub_url, reference_url, _ = pg_hubs
    files = {"a.csv": products_csv(1, 300), "b.csv": products_csv(301, 300)}
    root = make_folders(ftp_server.root)
    for name, text in files.items():
        (root / "in" / name).write_text(text, encoding="utf-8")
    return hub_url, reference_url, root, csv_job(save_ftp_block(ftp_server), save_hub(hub_url)), files


def _hook_kill(
    point: str, kill: Callable[[], int], fired: list[int], monkeypatch: pytest.MonkeyPatch, *, every: bool
) -> None:
    hook = _every if every else _once
    if point == "while-staging":
        monkeypatch.setattr(
            tasks.hub.staging.Staging, "stage", hook(kill, tasks.hub.staging.Staging.stage, fired)
        )
    else:
        monkeypatch.setattr("tasks.hub.load.record_file", hook(kill, tasks.hub.ledger.record_file, fired))


def _loaded_products(url: str) -> int:
    exists = table(
        url,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'products'",
    )
    return int(table(url, "SELECT count(*) FROM products")[0][0]) if exists == [(1,)] else 0


def _every(kill: Callable[[], int], original: Callable[..., Any], fired: list[int]) -> Callable[..., Any]:
    def hooked(*args: Any, **kwargs: Any) -> Any:
        fired.append(kill())
        return original(*args, **kwargs)

    return hooked


@pytest.mark.parametrize("point", ["while-staging", "before-the-ledger-entry"])
def test_connections_killed_mid_file_roll_it_back_and_the_load_is_retried(
    ftp_server: LocalFtp,
    pg_hubs: tuple[str, str, str],
    postgres_admin_url: str,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
) -> None:
    hub_url, reference_url, root, job, files = _two_files(ftp_server, pg_hubs)
    fired: list[int] = []
    _hook_kill(point, partial(_terminate, postgres_admin_url, pg_hubs[2]), fired, monkeypatch, every=False)

    state, report = run_csv(job)

    assert fired  # the hook ran
    assert fired[0] >= 2  # and killed the loading connection and the one holding the job's lock
    assert status_of(state) == "SUCCESS", report.error
    assert [(f.path, f.status) for f in report.files] == [("in/a.csv", "SUCCESS"), ("in/b.csv", "SUCCESS")]
    assert files_in(root, "out") == ["a.csv", "b.csv"]
    assert content(hub_url) == _clean_reference(ftp_server, reference_url, files)
    assert sorted(table(hub_url, "SELECT path FROM datahub_ledger")) == [("in/a.csv",), ("in/b.csv",)]


@pytest.mark.parametrize("point", ["while-staging", "before-the-ledger-entry"])
def test_a_hub_that_keeps_failing_stops_the_run_with_the_files_in_place_and_a_rerun_loads_them_once(
    ftp_server: LocalFtp,
    pg_hubs: tuple[str, str, str],
    postgres_admin_url: str,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
) -> None:
    hub_url, reference_url, root, job, files = _two_files(ftp_server, pg_hubs)
    fired: list[int] = []
    _hook_kill(point, partial(_terminate, postgres_admin_url, pg_hubs[2]), fired, monkeypatch, every=True)

    state, report = run_csv(job)

    assert len(fired) == 4  # the first attempt and its three retries
    assert state.is_failed()
    assert "the hub database failed during the load, which was rolled back" in report.error
    assert "Re-run the job" in report.error
    assert report.files == []  # not the file's fault: no file is failed, the run stops
    assert files_in(root, "in") == ["a.csv", "b.csv"]  # not moved to outbound, nor to failed
    assert _loaded_products(hub_url) == 0  # the first load rolled back with its tables
    assert table(hub_url, "SELECT count(*) FROM datahub_ledger") == [(0,)]
    assert table(hub_url, f"SELECT status FROM datahub_runs WHERE job = '{job.name}'") == [("FAILED",)]

    monkeypatch.undo()
    again_state, again = run_csv(job)

    assert status_of(again_state) == "SUCCESS"
    assert [(f.path, f.status) for f in again.files] == [("in/a.csv", "SUCCESS"), ("in/b.csv", "SUCCESS")]
    assert files_in(root, "in") == []
    assert content(hub_url) == _clean_reference(ftp_server, reference_url, files)
    assert sorted(table(hub_url, "SELECT path FROM datahub_ledger")) == [("in/a.csv",), ("in/b.csv",)]


def test_a_constraint_violation_rolls_the_file_back_and_a_rerun_loads_it_once(
    ftp_server: LocalFtp, pg_hubs: tuple[str, str, str]
) -> None:
    hub_url, reference_url, _ = pg_hubs
    first, second = products_csv(1, 20), products_csv(21, 20).replace("Product 30;", "FORBIDDEN;")
    root = make_folders(ftp_server.root)
    (root / "in" / "a.csv").write_text(first, encoding="utf-8")
    job = csv_job(save_ftp_block(ftp_server), save_hub(hub_url))
    assert status_of(run_csv(job)[0]) == "SUCCESS"
    engine = sa.create_engine(hub_url)
    with engine.begin() as conn:  # a rule of the hub the file breaks on one row
        conn.exec_driver_sql(
            "ALTER TABLE products ADD CONSTRAINT no_forbidden CHECK (\"productNames\" <> 'FORBIDDEN')"
        )
    (root / "in" / "b.csv").write_text(second, encoding="utf-8")

    state, report = run_csv(job)

    assert state.is_failed()
    message = report.files[0].message
    assert message.startswith(
        "in/b.csv: the hub database refused the file's data, so nothing of it was loaded"
    )
    assert "no_forbidden" in message
    assert "Traceback" not in message
    assert files_in(root, "failed") == ["b.csv"]  # not outbound
    assert files_in(root, "out") == ["a.csv"]
    assert table(hub_url, "SELECT count(*) FROM products") == [(20,)]  # none of b.csv's 20
    assert table(hub_url, "SELECT path FROM datahub_ledger") == [("in/a.csv",)]

    with engine.begin() as conn:  # the operator fixes the database, puts the file back and re-runs
        conn.exec_driver_sql("ALTER TABLE products DROP CONSTRAINT no_forbidden")
    engine.dispose()
    (root / "failed" / "b.csv").rename(root / "in" / "b.csv")
    again_state, again = run_csv(job)

    assert status_of(again_state) == "SUCCESS"
    assert [(f.path, f.status, f.inserted) for f in again.files] == [("in/b.csv", "SUCCESS", 20)]
    assert content(hub_url) == _clean_reference(ftp_server, reference_url, {"a.csv": first, "b.csv": second})
