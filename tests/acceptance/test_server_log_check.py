"""The stacks' server-log check: which records fail the session, and the one Prefect limitation it lets by."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.conftest import _server_problems

HEARTBEAT_LOCKED = """\
16:01:59.001 | INFO    | prefect.server - all good
16:02:01.553 | ERROR   | prefect.server.utilities.worker_channel - Worker channel heartbeat persistence failed: work_pool=local-process worker_name=worker-1
Traceback (most recent call last):
  File "x.py", line 1, in f
sqlite3.OperationalError: database is locked

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked
16:02:02.000 | INFO    | prefect.server - still good
"""

HEARTBEAT_OTHER = HEARTBEAT_LOCKED.replace("database is locked", "no such table: worker")


def _log(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.log"
    path.write_text(text)
    return path


def test_a_locked_heartbeat_write_is_tolerated_on_sqlite_only(tmp_path: Path) -> None:
    log = _log(tmp_path, HEARTBEAT_LOCKED)
    problems, tolerated = _server_problems(log, sqlite=True)
    assert problems == []
    assert len(tolerated) == 1
    assert "database is locked" in tolerated[0]

    problems, tolerated = _server_problems(log, sqlite=False)
    assert len(problems) == 1
    assert tolerated == []
    assert problems[0].startswith("16:02:01.553 | ERROR")
    assert "sqlalchemy.exc.OperationalError" in problems[0]


def test_any_other_server_error_fails_the_session_with_its_traceback(tmp_path: Path) -> None:
    problems, tolerated = _server_problems(_log(tmp_path, HEARTBEAT_OTHER), sqlite=True)
    assert tolerated == []
    assert len(problems) == 1
    assert "no such table: worker" in problems[0]


def test_a_bare_traceback_is_a_problem(tmp_path: Path) -> None:
    problems, _ = _server_problems(
        _log(tmp_path, "Traceback (most recent call last):\nValueError: x\n"), sqlite=True
    )
    assert problems == ["Traceback (most recent call last):\nValueError: x"]
