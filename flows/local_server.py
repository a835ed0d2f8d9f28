"""A Prefect server kept running in the background for `./dev run` and `./dev check`.

Prefect's ephemeral mode starts a temporary server for every command (about 10 s on this machine) and
stops it at the end. `./dev run` asks this module for a server instead: the first command starts
`prefect server start` on a free loopback port, in the background, with the project's Prefect home
(so the blocks saved with `./dev python -m deployments blocks` are there); later commands find it
and reuse it. What it knows is in `.state/local-server.json` (pid, port, the lock it was started
with; `DATAHUB_STATE_DIR` moves `.state`). It is started again when `uv.lock` changes (a new Prefect), stops by itself after
`DATAHUB_LOCAL_SERVER_IDLE_MINUTES` (default 30) without a command, or with `./dev server stop`.

Tests and CI never use it: only `./dev run`, `./dev check` and `./dev server` call this module, and
not when `PREFECT_API_URL` names a server already or `DATAHUB_LOCAL_SERVER=off`.

    python -m flows.local_server url       # start or reuse; print the API URL (what ./dev run does)
    python -m flows.local_server status    # say whether one runs, where, since when
    python -m flows.local_server stop      # stop it
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_SECONDS = 120.0
IDLE_MINUTES_VAR = "DATAHUB_LOCAL_SERVER_IDLE_MINUTES"
DEFAULT_IDLE_MINUTES = 30.0


def _state() -> Path:
    # The project's state folder, as blocks.database.state_dir says (not imported: it loads Prefect,
    # seconds this command is meant to save).
    folder = Path(os.environ.get("DATAHUB_STATE_DIR", ROOT / ".state"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record_path() -> Path:
    """Where the running server is recorded."""
    return _state() / "local-server.json"


def log_path() -> Path:
    """Where the server writes its log."""
    return _state() / "local-server.log"


def _touched_path() -> Path:
    return _state() / "local-server.touched"


class LocalServerError(Exception):
    """The background server could not be started; the message says why and where its log is."""


@dataclass(frozen=True)
class Running:
    """What `.state/local-server.json` records about the background server."""

    pid: int
    port: int
    lock: str
    started: float

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"


def lock_digest() -> str:
    """The digest of `uv.lock`: a server started under another lock runs other code, so it is replaced."""
    return hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()[:16]


def recorded() -> Running | None:
    """Return the recorded server, or None when there is no (readable) record."""
    try:
        return Running(**json.loads(record_path().read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def healthy(server: Running, timeout: float = 2.0) -> bool:
    """Whether the recorded process is alive and its API answers."""
    if not _alive(server.pid):
        return False
    try:
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # our own child: reap it if it ended
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure() -> Running:
    """Return a healthy server started under the current lock: the recorded one, or a new one."""
    _touch()
    server = recorded()
    if server is not None and server.lock == lock_digest() and healthy(server):
        return server
    if server is not None:
        stop(server)
    return start()


def start() -> Running:
    """Start `prefect server start` in the background on a free port and wait until it answers."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    pid = _spawn(command, env, log_path())
    server = Running(pid=pid, port=port, lock=lock_digest(), started=time.time())
    record_path().write_text(json.dumps(asdict(server)), encoding="utf-8")
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not healthy(server):
        if not _alive(pid) or time.monotonic() > deadline:
            stop(server)
            raise LocalServerError(
                f"The local Prefect server did not start; its log is {log_path()}. "
                "Set DATAHUB_LOCAL_SERVER=off to run with Prefect's ephemeral mode instead."
            )
        time.sleep(0.25)
    _start_watchdog(server)
    return server


def _spawn(command: list[str], env: dict[str, str], log: Path | None) -> int:
    """Start `command` in a session of its own (it outlives this command and the terminal's Ctrl-C).

    A bare pid, not a `Popen`: nothing here waits for it, and a `Popen` dropped while its process
    runs is a ResourceWarning.
    """
    out = str(log) if log is not None else os.devnull
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(command[0], command, env, file_actions=actions, setsid=True)


def stop(server: Running | None = None) -> bool:
    """Stop the recorded server (its whole process group); return whether one was running."""
    server = server or recorded()
    record_path().unlink(missing_ok=True)
    if server is None or not _alive(server.pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
    return True


def _touch() -> None:
    _touched_path().touch()


def idle_minutes() -> float:
    """How long the server may go without a command before it stops itself."""
    try:
        return float(os.environ.get(IDLE_MINUTES_VAR, DEFAULT_IDLE_MINUTES))
    except ValueError:
        return DEFAULT_IDLE_MINUTES


def _start_watchdog(server: Running) -> None:
    command = [sys.executable, "-m", "flows.local_server", "watch", str(server.pid), str(idle_minutes())]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    _spawn(command, env, None)


def watch(pid: int, minutes: float) -> None:
    """Stop the server `pid` once no command has touched it for `minutes`; end when it is gone."""
    while _alive(pid):
        server = recorded()
        if server is None or server.pid != pid:
            return  # replaced or stopped by a command
        try:
            idle = time.time() - _touched_path().stat().st_mtime
        except OSError:
            idle = 0.0
        if idle > minutes * 60:
            stop(server)
            return
        time.sleep(min(30.0, max(1.0, minutes * 60 / 10)))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def status() -> str:
    """One line: whether a server runs, where, for how long, and under which lock."""
    server = recorded()
    if server is None:
        return "No local Prefect server is running; `./dev run` starts one."
    if not healthy(server):
        return f"The local Prefect server recorded in {record_path()} (pid {server.pid}) does not answer; `./dev run` starts a new one."
    minutes = (time.time() - server.started) / 60
    stale = (
        "" if server.lock == lock_digest() else " (uv.lock changed since: the next `./dev run` restarts it)"
    )
    return (
        f"Local Prefect server at {server.api_url} (UI http://127.0.0.1:{server.port}), pid {server.pid}, "
        f"up {minutes:.0f} min; stops after {idle_minutes():.0f} idle min{stale}."
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="./dev server", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("url", "status", "stop", "watch"), help="what to do")
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "url":
        try:
            print(ensure().api_url)
        except LocalServerError as exc:
            print(exc, file=sys.stderr)
            return 1
    elif args.command == "status":
        print(status())
    elif args.command == "stop":
        print("Stopped the local Prefect server." if stop() else "No local Prefect server was running.")
    else:
        watch(int(args.args[0]), float(args.args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
