"""The acceptance suite's stacks: what an operator sets up by following docs/server.md, started once.

A stack is a real `prefect server` with every service on (the scheduler included), the sample sources
of `python -m demo.samples`, the blocks saved by `python -m deployments blocks`, the process work pool,
the deployments of the project's own `prefect.yaml` made by `prefect --no-prompt deploy --all` (what
users type), and real process workers. Two stacks, each shared by the tests that use it:

- `stack`: the server on PostgreSQL (`PREFECT_API_DATABASE_CONNECTION_URL`, what production servers
  use), the hub database on PostgreSQL too;
- `sqlite_stack`: the server on SQLite (the docs' quick default, where the scheduler crash was seen),
  the hub database an SQLite file, one worker.

Only loop intervals are shortened (scheduler, worker polling, the wait of a run queued behind a
concurrency slot); nothing is switched off. The server's log must hold no ERROR and no traceback:
the check runs when the stack stops, and fails the session otherwise.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POOL = "local-process"
FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
NOT_DONE = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.PAUSED]
DOCS_ORDER = [
    "import-csv-from-ftp/products-from-erp-ftp",
    "import-json-from-api/products-from-pim-api",
    "import-json-from-api/offers-from-erp-api",
    "import-csv-from-ftp/offers-from-erp-ftp",
    "run-shell-job/nightly-shop-reindex",
]
"""Every sample deployment, in the order docs/server.md runs them (the offers export before the update)."""
SERVER_PROBLEM = re.compile(r"\bERROR\b|Traceback \(most recent call last\)")
LOG_RECORD_START = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| ")
SQLITE_HEARTBEAT_LOCKED = re.compile(
    r"Worker channel heartbeat persistence failed.*database is locked", re.DOTALL
)
"""Prefect's own limitation on SQLite (PrefectHQ/prefect#16299, #17566): a worker's heartbeat write
meets another writer and fails at once; the next heartbeat (30 s later) writes it. Tolerated on the
SQLite server only, and only with that exact cause: anything else still fails the session."""

pytestmark = pytest.mark.acceptance


def prefect_yaml() -> dict[str, Any]:
    """The project's `prefect.yaml` as a document (anchors resolved): what every test compares with."""
    document: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    return document


def one_deployment_manifest(path: Path, template: str, name: str, job_changes: dict[str, Any]) -> Path:
    """Write a prefect.yaml holding one deployment: a copy of `template` named `name`, no schedule.

    Its job is named `name` too, and updated with `job_changes`.
    """
    document: dict[str, Any] = prefect_yaml()
    entry = next(d for d in document["deployments"] if d["name"] == template)
    deployment = copy.deepcopy(entry) | {"name": name, "schedules": []}
    deployment["parameters"]["job"] |= {"name": name, **job_changes}
    document["deployments"] = [deployment]
    document.pop("definitions", None)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def started_run_id(output: str) -> uuid.UUID:
    """The flow run id that `prefect deployment run` printed."""
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    assert match, f"no flow run id in:\n{output}"
    return uuid.UUID(match.group(1))


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def background(
    args: list[str], env: dict[str, str], log: Path, cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process in its own process group; stop the whole group (TERM, then KILL) on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue


def wait_for(
    what: str, predicate: Any, timeout: float, interval: float = 0.5, logs: tuple[Path, ...] = ()
) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` and the logs' tails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}\n{tail(log)}" for log in logs)
            raise AssertionError(f"{what}: not after {timeout:.0f}s\n{tails}")
        time.sleep(interval)


def tail(log: Path, lines: int = 60) -> str:
    """Return the last lines of a log file ('' when it does not exist)."""
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def deployment_busy(client: SyncPrefectClient, deployment_id: uuid.UUID) -> bool:
    """A run of the deployment is in progress or due in the next 2 minutes (the scheduler's runs too).

    Most deployments have a concurrency limit of 1, some with CANCEL_NEW: a run started beside a
    scheduled run still going would be cancelled.
    """
    soon = datetime.now(UTC) + timedelta(minutes=2)
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=NOT_DONE))),
    )
    return any(
        run.state_type != StateType.SCHEDULED
        or run.expected_start_time is None
        or run.expected_start_time <= soon
        for run in runs
    )


@dataclass
class Stack:
    """One operated setup: server, sample sources, blocks, pool, deployments and two workers."""

    name: str
    api_url: str
    ui_url: str
    env: dict[str, str]
    hub_url: str
    ftp_root: Path
    folder: Path
    server_log: Path
    worker_logs: list[Path] = field(default_factory=list)

    def run(
        self, *args: str, timeout: float = 180, env: dict[str, str] | None = None, check: bool = True
    ) -> str:
        """Run a command of the project's environment from the project root; return its output."""
        program = str(BIN / args[0]) if (BIN / args[0]).exists() else args[0]
        result = subprocess.run(
            [program, *args[1:]],
            env=self.env | (env or {}),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        if check:
            assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{output}"
        return output

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """A Prefect client on this stack's server."""
        with temporary_settings({PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            yield client

    def wait_final(self, flow_run_id: uuid.UUID, timeout: float = 240) -> FlowRun:
        """Wait until a flow run reaches a final state; return it."""
        with self.client() as client:

            def final() -> FlowRun | None:
                run = client.read_flow_run(flow_run_id)
                return run if run.state_type in FINAL else None

            result: FlowRun = wait_for(
                f"flow run {flow_run_id} final", final, timeout, 1, (*self.worker_logs, self.server_log)
            )
            return result

    def hub_rows(self, query: str) -> list[tuple[Any, ...]]:
        """Rows of a query on the stack's hub database."""
        engine = sa.create_engine(self.hub_url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.exec_driver_sql(query).all()]
        finally:
            engine.dispose()

    def logs_text(self) -> str:
        """The workers' and the server's logs, for an assertion message."""
        return "\n".join(f"--- {log.name}\n{tail(log, 120)}" for log in (*self.worker_logs, self.server_log))


def _subprocess_env(home: Path, api_url: str) -> dict[str, str]:
    # Nothing of the test session's own Prefect settings (its PREFECT_HOME) leaks into the stack.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "DATAHUB_"))}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PYTHONPATH": str(ROOT),
        "DATAHUB_STATE_DIR": str(home.parent / "state"),
    }


def _server_env(env: dict[str, str], port: int, database_url: str | None) -> dict[str, str]:
    server = env | {
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",  # else the UI says "Oops" off port 4200
        # Quicker loops, nothing switched off: the scheduler looks every 2 s (default 60 s), a run
        # queued behind a busy concurrency slot is looked at again after 2 s (default 30 s).
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
        "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
    }
    if database_url is not None:
        server["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    return server


@contextmanager
def _postgres_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database (name returned), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _start_samples(stack: ExitStack, folder: Path, env: dict[str, str], hub_url: str) -> Path:
    log = folder / "samples.log"
    stack.enter_context(
        background(
            [
                sys.executable,
                "-m",
                "demo.samples",
                "--dir",
                str(folder / "samples"),
                "--ftp-port",
                "0",
                "--api-port",
                "0",
                "--hub-url",
                hub_url,
            ],
            env,
            log,
            ROOT,
        )
    )
    wait_for("sample servers ready", lambda: "ready" in log.read_text(errors="replace"), 60, logs=(log,))
    return folder / "samples"


def _start_server(
    stack: ExitStack, folder: Path, env: dict[str, str], port: int, database_url: str | None
) -> Path:
    log = folder / "server.log"
    stack.enter_context(
        background(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            _server_env(env, port, database_url),
            log,
            folder,
        )
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("prefect server healthy", healthy, 180, logs=(log,))
    return log


def _start_workers(stack: ExitStack, folder: Path, env: dict[str, str], count: int) -> list[Path]:
    logs = []
    worker_env = env | {
        "DATAHUB_PROJECT_DIR": str(ROOT),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        # The sample API serves its files from loopback: the worker allows downloads from it explicitly.
        "DATAHUB_DOWNLOAD_ALLOW_PRIVATE": "1",
    }
    cwd = folder / "worker"  # not the project: the deployments' pull step must move there
    cwd.mkdir(exist_ok=True)
    for index in range(1, count + 1):
        log = folder / f"worker-{index}.log"
        stack.enter_context(
            background(
                # One flow run at a time per worker (the limit): a queued run then goes to whichever
                # worker is free, not to the one still closing its previous run's process.
                [
                    str(BIN / "prefect"),
                    "worker",
                    "start",
                    "--pool",
                    POOL,
                    "--name",
                    f"worker-{index}",
                    "--limit",
                    "1",
                ],
                worker_env,
                log,
                cwd,
            )
        )
        logs.append(log)
    for log in logs:
        wait_for(
            f"{log.stem} started",
            lambda log=log: "started" in log.read_text(errors="replace"),
            90,
            logs=(log,),
        )
    return logs


def _log_records(text: str) -> list[str]:
    """The log's records, each with its continuation lines (a traceback belongs to the record above it)."""
    records: list[str] = []
    for line in text.splitlines():
        if LOG_RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return records


def _server_problems(log: Path, *, sqlite: bool) -> tuple[list[str], list[str]]:
    """The server log's records that hold an ERROR or a traceback: (problems, tolerated)."""
    flagged = [r for r in _log_records(log.read_text(errors="replace")) if SERVER_PROBLEM.search(r)]
    tolerated = [r for r in flagged if sqlite and SQLITE_HEARTBEAT_LOCKED.search(r)]
    return [r for r in flagged if r not in tolerated], tolerated


@contextmanager
def operated_stack(
    name: str, folder: Path, *, database_url: str | None, hub_url: str, workers: int
) -> Iterator[Stack]:
    """Start a stack by the steps of docs/server.md; stop it and check the server's log afterwards."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _subprocess_env(folder / "prefect-home", api_url)
    with ExitStack() as stack:
        samples = _start_samples(stack, folder, env, hub_url)
        server_log = _start_server(stack, folder, env, port, database_url)
        operated = Stack(
            name=name,
            api_url=api_url,
            ui_url=f"http://127.0.0.1:{port}",
            env=env,
            hub_url=hub_url,
            ftp_root=samples / "ftp",
            folder=folder,
            server_log=server_log,
        )
        operated.run("prefect", "work-pool", "create", POOL, "--type", "process")
        operated.run(sys.executable, "-m", "deployments", "blocks", "--file", str(samples / "blocks.yaml"))
        operated.run("prefect", "--no-prompt", "deploy", "--all")
        operated.worker_logs = _start_workers(stack, folder, env, workers)
        yield operated
    problems, tolerated = _server_problems(server_log, sqlite=database_url is None)
    if tolerated:
        print(f"the {name} server's heartbeat writes met 'database is locked' {len(tolerated)} time(s)")
    assert not problems, f"the {name} server logged errors:\n" + "\n\n".join(problems[:5])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_admin_url: str) -> Iterator[Stack]:
    """The suite's stack: the Prefect server and the hub database on PostgreSQL."""
    server_admin = postgres_admin_url.replace("/test", "/postgres")
    with (
        _postgres_database(server_admin, "prefect_accept") as server_db,
        _postgres_database(server_admin, "hub_accept") as hub_db,
    ):
        base = postgres_admin_url.rsplit("/", 1)[0]
        with operated_stack(
            "postgresql",
            tmp_path_factory.mktemp("stack-pg"),
            database_url=f"{base.replace('+psycopg', '+asyncpg')}/{server_db}",
            hub_url=f"{base}/{hub_db}",
            workers=2,
        ) as operated:
            yield operated


@pytest.fixture(scope="session")
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The docs' quick setup: the Prefect server on SQLite in PREFECT_HOME, an SQLite hub database."""
    folder = tmp_path_factory.mktemp("stack-sqlite")
    # One worker, as docs/server.md's quick setup has: a Prefect server on SQLite is one writer at a
    # time, and more workers make its own writes fail with "database is locked" (PostgreSQL is the
    # way to more workers: the `stack` fixture runs two).
    with operated_stack(
        "sqlite", folder, database_url=None, hub_url=f"sqlite:///{folder / 'hub.db'}", workers=1
    ) as operated:
        yield operated
