"""The deployments' lifecycle against a real `prefect server` and a real process worker.

Starts its own server (own PREFECT_HOME, free port; never the session `prefect_server` fixture),
creates the process work pool, saves the blocks with `python -m deployments blocks`, deploys a copy of
`prefect.yaml` whose jobs name the test's blocks with `prefect deploy --all`, runs the products
deployment through `prefect worker start --run-once` against the local FTP server, then checks
pause / resume, both concurrency policies and delete through the Prefect client.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Completed, Pending, Running

from deployments.operate import set_paused
from tests.fixtures_servers import LocalFtp

pytestmark = [pytest.mark.server, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POOL = "local-process"
PRODUCTS = "import-csv-from-ftp/products-from-erp-ftp"
OFFERS = "import-csv-from-ftp/offers-from-erp-ftp"
REINDEX = "run-shell-job/nightly-shop-reindex"
PRODUCTS_CSV = (
    "Product External Id;Product Names;Product Classification Category Id;Variant External Id;"
    "Variant Names;Variant Price\nP1;Chair;C1;V1;Chair oak;10.50\nP2;Table;C2;V2;Table;99\n"
)
FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _base_env(home: Path, state: Path) -> dict[str, str]:
    # Nothing of the test session's Prefect settings leaks into the subprocesses.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PYTHONPATH": str(ROOT),
        "DATAHUB_STATE_DIR": str(state),
    }


@contextmanager
def _background(
    args: list[str], env: dict[str, str], log: Path, cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process in its own process group; stop the whole group (TERM, then KILL) on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            process.wait(timeout=10)


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 90) -> str:
    result = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{output}"
    return output


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            assert server.poll() is None, f"prefect server exited:\n{log.read_text(errors='replace')}"
            try:
                if http.get(f"{url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise AssertionError(f"prefect server not healthy after {timeout}s:\n{log.read_text(errors='replace')}")


def _wait_final(client: SyncPrefectClient, flow_run: FlowRun, timeout: float, logs: list[Path]) -> FlowRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = client.read_flow_run(flow_run.id)
        if current.state_type in FINAL:
            return current
        time.sleep(1)
    text = "\n".join(log.read_text(errors="replace") for log in logs)
    raise AssertionError(f"flow run still {current.state_name} after {timeout}s:\n{text}")


def _test_manifest(path: Path) -> Path:
    """Copy prefect.yaml with every job loading into the test's `hub-db` block; schedules untouched."""
    document: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    for deployment in document["deployments"]:
        job = deployment["parameters"]["job"]
        if "operation" in job:  # a shell job: no connection, no hub database
            continue
        job["target"] = "hub-db"
        source = job.get("source")
        if isinstance(source, dict) and source.get("kind") == "folder":
            source["settle_seconds"] = 0
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(query).all()]
    finally:
        engine.dispose()


TRANSCRIPT: list[str] = []


def _show(step: str, output: str) -> None:
    # Written to $DATAHUB_LIFECYCLE_TRANSCRIPT when set: the closing note quotes these lines.
    TRANSCRIPT.append(f"$ {step}\n{output.strip()}\n")


def test_deploy_run_pause_resume_concurrency_delete(
    tmp_path: Path, ftp_server: LocalFtp, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    state_dir = tmp_path / "state"
    env = _base_env(tmp_path / "prefect-home", state_dir) | {"PREFECT_API_URL": url}
    server_env = env | {
        "PREFECT_UI_ENABLED": "false",
        # Runs are created by the test, never by the scheduler (a 15-minute run could race the test).
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    hub_url = f"sqlite:///{tmp_path / 'hub.db'}"
    ftp_root = Path(ftp_server.root)
    for folder in ("products/inbound", "products/outbound", "products/failed", "offers/done"):
        (ftp_root / folder).mkdir(parents=True, exist_ok=True)
    (ftp_root / "products/inbound/products-1.csv").write_text(PRODUCTS_CSV, encoding="utf-8")

    with ExitStack() as stack:
        server_log = tmp_path / "server.log"
        server = stack.enter_context(
            _background(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                server_env,
                server_log,
                tmp_path,
            )
        )
        _wait_healthy(url, server, server_log)
        _show("server healthy", f"{url} after {time.monotonic() - started:.1f}s")

        out = _run([str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"], env, tmp_path)
        _show(f"prefect work-pool create {POOL} --type process", out)

        blocks_env = env | {
            "DATAHUB_ERP_FTP_HOST": ftp_server.host,
            "DATAHUB_ERP_FTP_PORT": str(ftp_server.port),
            "DATAHUB_ERP_FTP_USER": ftp_server.username,
            "DATAHUB_ERP_FTP_PASSWORD": ftp_server.password,
            "DATAHUB_ERP_FTP_PROTOCOL": "ftp",
            "DATAHUB_HUB_DB_URL": hub_url,
        }
        # The test's own file (never the developer's): the shell job's command comes from it.
        local_file = tmp_path / "blocks.local.yaml"
        reindex = 'echo "reindexed by $DATAHUB_JOB" > "$DATAHUB_STATE_DIR/reindexed.txt"'
        local_file.write_text(yaml.safe_dump({"shop-reindex": {"commands": [reindex]}}), encoding="utf-8")
        out = _run(
            [sys.executable, "-m", "deployments", "blocks", "--file", str(local_file)], blocks_env, ROOT
        )
        assert "saved   Shell Operation 'shop-reindex': 1 command(s)" in out
        _show("python -m deployments blocks", out)
        assert f"saved   FTP Connection 'erp-ftp': ftp://importer@127.0.0.1:{ftp_server.port}" in out
        assert f"saved   Hub Database 'hub-db': {hub_url}" in out
        assert ftp_server.password not in out

        manifest = _test_manifest(tmp_path / "prefect.yaml")
        # Deployed without DATAHUB_PROJECT_DIR: the pull step's placeholder is resolved by the worker.
        out = _run(
            [str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", str(manifest)],
            env,
            ROOT,
            timeout=120,
        )
        _show("prefect --no-prompt deploy --all", out)

        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            products = client.read_deployment_by_name(PRODUCTS)
            offers = client.read_deployment_by_name(OFFERS)
            assert products.pull_steps == [
                {
                    "prefect.deployments.steps.set_working_directory": {
                        "directory": "{{ $DATAHUB_PROJECT_DIR }}"
                    }
                }
            ]
            assert [(s.slug, s.active) for s in products.schedules] == [("daily-0200", True)]
            assert [(s.slug, s.active) for s in offers.schedules] == [("every-15-minutes", True)]
            assert products.paused is False  # `paused: false` of prefect.yaml
            assert products.parameters["job"]["connection"] == "erp-ftp"
            assert products.parameters["job"]["target"] == "hub-db"
            assert products.global_concurrency_limit is not None
            assert products.global_concurrency_limit.limit == 1
            assert products.concurrency_options is not None
            assert products.concurrency_options.collision_strategy.value == "ENQUEUE"
            assert offers.concurrency_options is not None
            assert offers.concurrency_options.collision_strategy.value == "CANCEL_NEW"

            # --- one run through a real process worker ----------------------------------------------
            flow_run = client.create_flow_run_from_deployment(products.id)
            worker_log = tmp_path / "worker.log"
            worker_env = env | {"DATAHUB_PROJECT_DIR": str(ROOT)}
            worker_dir = tmp_path / "worker"  # not the project: the pull step must move there
            worker_dir.mkdir()
            stack.enter_context(
                _background(
                    [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--run-once", "--limit", "1"],
                    worker_env,
                    worker_log,
                    worker_dir,
                )
            )
            finished = _wait_final(client, flow_run, 150, [worker_log, server_log])
            _show(
                f"worker --run-once ran {PRODUCTS}",
                f"flow run {finished.name}: {finished.state_name} {finished.state and finished.state.message}",
            )
            assert finished.state_type == StateType.COMPLETED, worker_log.read_text(errors="replace")
            assert _rows(hub_url, 'SELECT "variantExternalId" FROM variants ORDER BY 1') == [("V1",), ("V2",)]
            assert _rows(hub_url, "SELECT job, status FROM datahub_runs") == [
                ("products-from-erp-ftp", "SUCCESS")
            ]
            assert [p.name for p in (ftp_root / "products/outbound").iterdir()] == ["products-1.csv"]
            assert list((ftp_root / "products/inbound").iterdir()) == []

            # --- the shell job kind: its deployment run by a worker, the command from its block ------
            reindex_run = client.create_flow_run_from_deployment(client.read_deployment_by_name(REINDEX).id)
            shell_log = tmp_path / "worker-shell.log"
            stack.enter_context(
                _background(
                    [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--run-once", "--limit", "1"],
                    worker_env,
                    shell_log,
                    worker_dir,
                )
            )
            finished = _wait_final(client, reindex_run, 120, [shell_log, server_log])
            _show(
                f"worker --run-once ran {REINDEX}",
                f"{finished.state_name}: {finished.state and finished.state.message}",
            )
            assert finished.state_type == StateType.COMPLETED, shell_log.read_text(errors="replace")
            assert (state_dir / "reindexed.txt").read_text() == "reindexed by nightly-shop-reindex\n"

            # --- pause / resume (the seeds' Disable / Activate) ---------------------------------------
            assert set_paused(PRODUCTS, paused=True) == 0
            assert client.read_deployment(products.id).paused is True
            assert set_paused(PRODUCTS, paused=False) == 0
            assert client.read_deployment(products.id).paused is False
            printed = capsys.readouterr().out
            _show(f"python -m deployments pause|resume {PRODUCTS}", printed)
            assert f"{PRODUCTS}: paused\n{PRODUCTS}: active\n" in printed
            schedules = client.read_deployment_schedules(products.id)
            assert [(s.slug, s.active) for s in schedules] == [("daily-0200", True)]

            # --- concurrency: CANCEL_NEW (offers) and ENQUEUE (products), one slot each ---------------
            outcomes = {}
            for deployment in (offers, products):
                first = client.create_flow_run_from_deployment(deployment.id)
                assert client.set_flow_run_state(first.id, Pending()).state.type == StateType.PENDING
                client.set_flow_run_state(first.id, Running())
                second = client.create_flow_run_from_deployment(deployment.id)
                client.set_flow_run_state(second.id, Pending())
                state = client.read_flow_run(second.id).state
                assert state is not None
                outcomes[deployment.name] = (state.type, state.name)
                client.set_flow_run_state(first.id, Completed())  # gives the slot back
            _show("second run while the first holds the slot", repr(outcomes))
            assert outcomes == {
                "offers-from-erp-ftp": (StateType.CANCELLED, "Cancelled"),
                "products-from-erp-ftp": (StateType.SCHEDULED, "AwaitingConcurrencySlot"),
            }

            # --- delete --------------------------------------------------------------------------------
            client.delete_deployment(offers.id)
            with pytest.raises(ObjectNotFound):
                client.read_deployment_by_name(OFFERS)
            remaining = {d.name for d in client.read_deployments()}
            assert "products-from-erp-ftp" in remaining
            assert "offers-from-erp-ftp" not in remaining
            _show(f"delete {OFFERS}", f"remaining deployments: {sorted(remaining)}")

    _show("lifecycle test duration", f"{time.monotonic() - started:.1f}s")
    if transcript := os.environ.get("DATAHUB_LIFECYCLE_TRANSCRIPT"):
        Path(transcript).write_text("\n".join(TRANSCRIPT), encoding="utf-8")
