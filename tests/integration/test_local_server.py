"""The background Prefect server of `./dev run`: started once, reused, replaced when the lock changes, stopped.

Runs in the test session's own state folder and Prefect home (tests/conftest.py): a developer's
server under `.state/` is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from flows import local_server


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not local_server._alive(pid):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def no_server_left() -> Iterator[None]:
    yield
    local_server.stop()


@pytest.mark.usefixtures("no_server_left")
def test_started_once_reused_replaced_under_a_new_lock_and_stopped_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert local_server.status() == "No local Prefect server is running; `./dev run` starts one."
    first = local_server.ensure()
    assert local_server.healthy(first)
    assert local_server.status().startswith(f"Local Prefect server at {first.api_url} ")

    assert local_server.ensure() == first  # the next command reuses it

    # A new lock is new code: the old server goes, a new one starts; this one may idle 1.2 s.
    monkeypatch.setattr(local_server, "lock_digest", lambda: "another-lock")
    monkeypatch.setenv(local_server.IDLE_MINUTES_VAR, "0.02")
    second = local_server.ensure()
    assert second.pid != first.pid
    assert _gone(first.pid, 30)
    assert local_server.healthy(second)

    assert _gone(second.pid, 90)  # nobody ran a command: it stopped itself
    assert local_server.recorded() is None
    assert local_server.stop() is False


@pytest.mark.usefixtures("no_server_left")
def test_stop_stops_it() -> None:
    server = local_server.ensure()
    assert local_server.stop() is True
    assert _gone(server.pid, 30)
    assert local_server.status() == "No local Prefect server is running; `./dev run` starts one."
