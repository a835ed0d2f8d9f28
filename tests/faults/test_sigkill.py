"""The worker process is killed (SIGKILL) in the middle of a bulk run.

The flow runs in a child process, exactly as `python -m flows.import_csv_from_ftp job.yaml` runs it,
through a small launcher that pauses right after the first file committed and before it is moved:
the worst moment. The test kills it there with SIGKILL, then re-runs the job and checks that every
file was imported exactly once, the committed file was moved without a second import, and no file
was lost from inbound or outbound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prefect.settings import PREFECT_API_URL

from blocks.database import PROJECT_ROOT
from tasks.hub.ledger import ABANDONED
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

pytestmark = pytest.mark.usefixtures("prefect_server")

LAUNCHER = '''
"""Run the CSV flow like `python -m flows.import_csv_from_ftp JOB.yaml`, pausing after a commit."""
import sys
import time
from pathlib import Path

import flows.import_csv_from_ftp as module

marker = Path(sys.argv[2])
move_after = module._move_after


def move_after_a_pause(job, held, report, **kwargs):
    if report.status != "FAILED" and not marker.exists():
        marker.write_text(report.path)  # committed, not moved yet: the test kills us here
        time.sleep(120)
    return move_after(job, held, report, **kwargs)


module._move_after = move_after_a_pause
raise SystemExit(module.main([sys.argv[1]]))
'''
FILES = {f"{name}.csv": products_csv(100 * n, 40) for n, name in enumerate("abcde", start=1)}


def _drop(root: Path, files: dict[str, str], folder: str = "in") -> None:
    for n, (name, text) in enumerate(files.items()):
        path = root / folder / name
        path.write_text(text, encoding="utf-8")
        os.utime(path, (1_700_000_000 + n, 1_700_000_000 + n))  # a.csv oldest: imported first


def _wait_for(marker: Path, child: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"the flow process ended ({child.returncode}) before the first commit")
        if time.monotonic() > deadline:
            raise AssertionError("the flow process did not commit a file in time")
        time.sleep(0.1)


def test_a_run_killed_between_commit_and_move_is_completed_by_the_next_run_exactly_once(
    ftp_server: LocalFtp, tmp_path: Path
) -> None:
    hub_url, reference_url = f"sqlite:///{tmp_path / 'hub.db'}", f"sqlite:///{tmp_path / 'reference.db'}"
    root = make_folders(ftp_server.root)
    _drop(root, FILES)
    job = csv_job(save_ftp_block(ftp_server), save_hub(hub_url))
    job_file, launcher, marker = tmp_path / "job.yaml", tmp_path / "launch.py", tmp_path / "committed"
    job_file.write_text(yaml.safe_dump({"job": job.model_dump(mode="json")}), encoding="utf-8")
    launcher.write_text(LAUNCHER, encoding="utf-8")
    env = os.environ | {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(PROJECT_ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(launcher), str(job_file), str(marker)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(marker, child, seconds=90)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    # What the kill left: a.csv committed and ledgered but not moved, still claimed (renamed into the
    # claim folder beside inbound before its download); b.csv claimed and downloaded ahead while
    # a.csv loaded, not loaded; the run "RUNNING".
    assert marker.read_text() == "in/a.csv"
    assert files_in(root, "in") == sorted(FILES)[2:]
    assert files_in(root, "in/.datahub-claimed") == sorted(FILES)[:2]
    assert table(hub_url, "SELECT path, moved_to FROM datahub_ledger") == [("in/a.csv", None)]
    assert table(hub_url, "SELECT count(*) FROM products") == [(40,)]
    assert table(hub_url, "SELECT status, finished_at FROM datahub_runs") == [("RUNNING", None)]

    state, report = run_csv(job)

    assert status_of(state) == "SUCCESS"
    assert (
        [(f.path, f.status) for f in report.files]
        == [
            ("in/a.csv", "SKIPPED"),  # already committed: moved, not imported again
            *((f"in/{name}", "SUCCESS") for name in sorted(FILES)[1:]),
        ]
    )
    assert files_in(root, "in") == []
    assert files_in(root, "in/.datahub-claimed") == []  # the leftovers were taken up first
    assert files_in(root, "out") == sorted(FILES)  # none lost, none doubled
    assert sorted(table(hub_url, "SELECT path, moved_to FROM datahub_ledger")) == [
        (f"in/{name}", f"out/{name}") for name in sorted(FILES)
    ]
    history = table(hub_url, "SELECT run_id, status, inserted, message FROM datahub_runs ORDER BY started_at")
    assert [row[1:3] for row in history] == [("FAILED", 0), ("SUCCESS", 160)]  # killed run closed
    assert history[0][3] == f"{ABANDONED} {history[1][0]}."

    # The same files loaded by one clean run give the same tables.
    reference_root = make_folders(ftp_server.root / "reference")
    _drop(reference_root, FILES)
    source = {
        "kind": "folder",
        "inbound_dir": "reference/in",
        "outbound_dir": "reference/out",
        "settle_seconds": 0,
    }
    clean = csv_job(save_ftp_block(ftp_server), save_hub(reference_url), source=source)
    assert status_of(run_csv(clean)[0]) == "SUCCESS"
    assert content(hub_url) == content(reference_url)
