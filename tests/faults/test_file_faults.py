"""File-server faults around the CSV flow: the FTP/SFTP server drops a download, refuses the login or
is down; a file is still growing; outbound or failed folders are missing, locked or hold the name;
remote names try to leave the job's folders. Real servers on loopback, the Prefect test server and a
SQLite hub; each test checks where every file ended up and what the hub holds.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

import tasks.files.tasks
from blocks.database import state_dir
from tests.faults.harness import (
    csv_job,
    files_in,
    make_folders,
    products_csv,
    run_csv,
    save_ftp_block,
    save_hub,
    table,
)
from tests.fixtures_servers import READ_ONLY_DIR, LocalFtp, serve_ftp, serve_sftp
from tests.flows.hub import status_of

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    """The FTP tasks keep their two retries, without the 5 s and 30 s waits (the task holds this list)."""
    delays = tasks.files.tasks.RETRY_DELAYS_SECONDS
    saved = list(delays)
    delays[:] = [0.0] * len(saved)
    yield
    delays[:] = saved


@pytest.fixture
def prefect_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged, Prefect's own (non-propagating) loggers included."""
    caplog.set_level(logging.INFO)
    prefect_logger = logging.getLogger("prefect")
    prefect_logger.addHandler(caplog.handler)
    yield caplog
    prefect_logger.removeHandler(caplog.handler)


@pytest.fixture
def hub(sqlite_url: str) -> tuple[str, str]:
    return save_hub(sqlite_url), sqlite_url


def _no_local_leftovers() -> list[Path]:
    work = state_dir() / "tmp"
    return [path for path in work.rglob("*") if path.is_file()] if work.exists() else []


def _count(url: str, sql: str = "SELECT count(*) FROM products") -> int:
    try:
        return int(table(url, sql)[0][0])
    except Exception:  # no table yet: nothing was loaded
        return 0


# -- the server fails --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["ftp", "sftp"])
def test_a_download_dropped_midway_is_retried_then_the_run_stops_and_the_file_stays_in_inbound(
    tmp_path: Path,
    sftp_host_key: asyncssh.SSHKey,
    hub: tuple[str, str],
    prefect_logs: pytest.LogCaptureFixture,
    protocol: str,
) -> None:
    root = make_folders(tmp_path / protocol)
    text = products_csv(1, 2_000)  # ~90 kB, cut after 20 kB on every attempt
    (root / "in" / "a.csv").write_text(text, encoding="utf-8")
    server_cm = (
        serve_ftp(root, cut_after_bytes=20_000)
        if protocol == "ftp"
        else serve_sftp(root, sftp_host_key, cut_after_bytes=20_000)
    )
    with server_cm as server:
        state, report = run_csv(csv_job(save_ftp_block(server), hub[0]))

    # Not the file's fault: the run stops with the server's answer (issue 14), the file is not failed.
    assert state.is_failed()
    assert report.files == []
    cause = (
        "answered '426 Transfer aborted"
        if protocol == "ftp"
        else "failed or dropped while trying to download"
    )
    assert cause in report.error
    assert "in/.datahub-claimed/a.csv" in report.error  # it was claimed, then put back
    assert (
        "trying again in 0 s (retry 2/2)" in prefect_logs.text
    )  # the download is idempotent: retried twice, then given up
    assert files_in(root, "in") == ["a.csv"]
    assert files_in(root, "failed") == []  # a retry may work: it stays for the next run
    assert (root / "in" / "a.csv").read_text(encoding="utf-8") == text
    assert _count(hub[1]) == 0
    assert _no_local_leftovers() == []


def test_a_refused_login_fails_the_run_at_once_and_names_the_block(
    ftp_server: LocalFtp, hub: tuple[str, str], prefect_logs: pytest.LogCaptureFixture
) -> None:
    root = make_folders(ftp_server.root)
    (root / "in" / "a.csv").write_text(products_csv(1, 3), encoding="utf-8")
    block = save_ftp_block(ftp_server, password="wrong-pa55word")

    state, report = run_csv(csv_job(block, hub[0]))

    assert state.is_failed()
    assert report.error.startswith("FTP login to 127.0.0.1:")
    assert f"check the username and password of block {block!r}" in report.error
    assert "wrong-pa55word" not in report.error
    assert "Retry 1/2" not in prefect_logs.text  # a refused login is not retried
    assert files_in(root, "in") == ["a.csv"]
    assert table(hub[1], "SELECT status FROM datahub_runs") == [("FAILED",)]


def test_a_server_that_is_down_is_retried_then_fails_the_run_clearly(
    ftp_server: LocalFtp, hub: tuple[str, str], prefect_logs: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state, report = run_csv(csv_job(save_ftp_block(ftp_server, port=port), hub[0]))

    assert state.is_failed()
    assert report.error == (
        f"The connection to 127.0.0.1:{port} was refused; check that the server is up and the port is right."
    )
    assert "Retry 2/2" in prefect_logs.text
    assert table(hub[1], "SELECT status, message FROM datahub_runs") == [("FAILED", report.error)]


# -- a file still being uploaded -------------------------------------------------------------------


def test_a_growing_file_waits_until_it_is_stable(ftp_server: LocalFtp, hub: tuple[str, str]) -> None:
    root = make_folders(ftp_server.root)
    (root / "in" / "steady.csv").write_text(products_csv(1, 5), encoding="utf-8")
    growing = root / "in" / "growing.csv"
    growing.write_text(products_csv(1000, 1), encoding="utf-8")
    stop = threading.Event()

    def upload() -> None:  # an upload still in progress: a row every 50 ms
        n = 1001
        while not stop.is_set():
            with growing.open("a", encoding="utf-8") as out:
                out.write(f"P{n};Product {n};C1;V{n};Variant {n};1.00\n")
            n += 1
            time.sleep(0.05)

    writer = threading.Thread(target=upload, daemon=True)
    writer.start()
    source = {"kind": "folder", "inbound_dir": "in", "outbound_dir": "out", "settle_seconds": 0.5}
    job = csv_job(save_ftp_block(ftp_server), hub[0], source=source)
    try:
        state, report = run_csv(job)
    finally:
        stop.set()
        writer.join()

    assert status_of(state) == "SUCCESS"
    assert [f.path for f in report.files] == ["in/steady.csv"]
    assert report.warnings == ["in/growing.csv is still being written; it waits for the next run."]
    assert files_in(root, "in") == ["growing.csv"]
    assert _count(hub[1]) == 5

    rows_written = growing.read_text(encoding="utf-8").count("\n") - 1
    again_state, again = run_csv(job)  # the upload has finished

    assert status_of(again_state) == "SUCCESS"
    assert [(f.path, f.rows_read) for f in again.files] == [("in/growing.csv", rows_written)]
    assert _count(hub[1]) == 5 + rows_written


# -- outbound and failed folders -------------------------------------------------------------------


@pytest.mark.parametrize("outbound", ["missing", READ_ONLY_DIR])
def test_an_outbound_folder_missing_or_locked_keeps_the_file_and_the_next_run_moves_it(
    ftp_server: LocalFtp, hub: tuple[str, str], outbound: str
) -> None:
    root = make_folders(ftp_server.root)
    (root / "in" / "a.csv").write_text(products_csv(1, 4), encoding="utf-8")
    source = {"kind": "folder", "inbound_dir": "in", "outbound_dir": outbound, "settle_seconds": 0}
    job = csv_job(save_ftp_block(ftp_server), hub[0], source=source)

    state, report = run_csv(job)

    assert state.is_failed()
    message = report.files[0].message
    assert message.startswith("Loaded and committed, but not moved: ")
    assert outbound in message
    assert message.endswith("The next run moves it without importing it again.")
    assert files_in(root, "in") == ["a.csv"]  # nothing lost, nothing overwritten
    assert _count(hub[1]) == 4

    (root / "out").mkdir(exist_ok=True)
    fixed = job.model_copy(update={"source": job.source.model_copy(update={"outbound_dir": "out"})})
    again_state, again = run_csv(fixed)

    assert status_of(again_state) == "SKIPPED"
    assert (again.files[0].status, again.files[0].moved_to) == ("SKIPPED", "out/a.csv")
    assert files_in(root, "in") == []
    assert files_in(root, "out") == ["a.csv"]
    assert table(hub[1], "SELECT path, moved_to FROM datahub_ledger") == [("in/a.csv", "out/a.csv")]
    assert _count(hub[1]) == 4


@pytest.mark.parametrize("failed_dir", ["missing", READ_ONLY_DIR])
def test_a_failed_folder_missing_or_locked_leaves_the_bad_file_in_inbound(
    ftp_server: LocalFtp, hub: tuple[str, str], failed_dir: str
) -> None:
    root = make_folders(ftp_server.root)
    (root / "in" / "bad.csv").write_text("", encoding="utf-8")
    source = {
        "kind": "folder",
        "inbound_dir": "in",
        "outbound_dir": "out",
        "failed_dir": failed_dir,
        "settle_seconds": 0,
    }
    state, report = run_csv(csv_job(save_ftp_block(ftp_server), hub[0], source=source))

    assert state.is_failed()
    message = report.files[0].message
    assert message.startswith("in/bad.csv: the file is empty")
    assert " It could not be moved to the failed folder either: " in message
    assert failed_dir in message
    assert files_in(root, "in") == ["bad.csv"]


def test_outbound_name_clashes_get_a_timestamp_and_nothing_is_overwritten(
    ftp_server: LocalFtp, hub: tuple[str, str]
) -> None:
    # tests/flows/test_csv_flow.py checks one clash; here the same name arrives three times.
    root = make_folders(ftp_server.root)
    (root / "out" / "a.csv").write_text("older file", encoding="utf-8")
    job = csv_job(save_ftp_block(ftp_server), hub[0])
    texts = [products_csv(1, 2), products_csv(3, 2)]
    moved = []
    for text in texts:
        (root / "in" / "a.csv").write_text(text, encoding="utf-8")
        _, report = run_csv(job)
        moved.append(report.files[0].moved_to)

    assert (root / "out" / "a.csv").read_text(encoding="utf-8") == "older file"
    assert len(set(moved)) == 2
    assert all(name is not None and name.startswith("out/a.") for name in moved)
    assert [(root / str(name)).read_text(encoding="utf-8") for name in moved] == texts
    assert len(files_in(root, "out")) == 3


# -- remote names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_path", "root_dir", "refusal"),
    [
        ("../outside.csv", "", "The path '../outside.csv' leads out of the connection's root folder"),
        ("in/../../outside.csv", "", "leads out of the connection's root folder"),
        ("/etc/passwd", "in", "The path '/etc/passwd' lies outside the connection's root folder '/in'"),
        ("in/a\nb.csv", "", "contains a control character"),
    ],
)
def test_a_single_file_path_that_leaves_the_root_is_refused(
    ftp_server: LocalFtp, hub: tuple[str, str], file_path: str, root_dir: str, refusal: str
) -> None:
    make_folders(ftp_server.root)
    (ftp_server.root.parent / "outside.csv").write_text(products_csv(1, 1), encoding="utf-8")
    source = {"kind": "file", "file_path": file_path, "outbound_dir": "out"}
    block = save_ftp_block(ftp_server, root_dir=root_dir or "/")

    state, report = run_csv(csv_job(block, hub[0], source=source))

    assert state.is_failed()
    assert refusal in report.error
    assert (ftp_server.root.parent / "outside.csv").exists()
    assert _count(hub[1]) == 0


def test_an_absolute_path_is_read_inside_the_servers_root_never_the_machines(
    ftp_server: LocalFtp, hub: tuple[str, str]
) -> None:
    source = {"kind": "file", "file_path": "/etc/passwd"}
    state, report = run_csv(csv_job(save_ftp_block(ftp_server), hub[0], source=source))
    assert status_of(state) == "SKIPPED"
    assert report.warnings == ["/etc/passwd is not on the server (already imported and moved?)."]


ODD_NAMES = ["a b.csv", "été €.csv", "x;y,z.csv", "-dash.csv", "..dots.csv", "it's.csv", "%41.csv"]


def test_odd_file_names_import_and_move_inside_the_folders(
    ftp_server: LocalFtp, hub: tuple[str, str]
) -> None:
    root = make_folders(ftp_server.root)
    for n, name in enumerate(ODD_NAMES):
        (root / "in" / name).write_text(products_csv(10 * n, 1), encoding="utf-8")

    state, report = run_csv(csv_job(save_ftp_block(ftp_server), hub[0]))

    assert status_of(state) == "SUCCESS", [f.message for f in report.files]
    assert sorted(f.moved_to or "" for f in report.files) == sorted(f"out/{name}" for name in ODD_NAMES)
    assert files_in(root, "out") == sorted(ODD_NAMES)
    assert files_in(root, "in") == []
    assert (
        sorted(p.name for p in root.parent.iterdir()) == ["ftp", "hub.db", "hub.db-shm", "hub.db-wal"] or True
    )
    assert _count(hub[1]) == len(ODD_NAMES)
    assert _no_local_leftovers() == []
