"""The job lock in the hub database (SQLite file lock, PostgreSQL advisory lock) and the hub's own migrations."""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager

import pytest
import sqlalchemy as sa

from tasks.errors import JobBusyError
from tasks.hub.ledger import find_loaded, prepare_hub, record_file
from tasks.hub.lock import OnBusy, job_lock
from tasks.hub.schema import ONE_IMPORT_PER_CONTENT, ensure_system_tables

LOG = logging.getLogger("test-lock")


def _lock(
    engine: sa.Engine, job: str, *, on_busy: OnBusy = "skip", wait: float = 1.0
) -> AbstractContextManager[None]:
    return job_lock(
        engine,
        job,
        on_busy=on_busy,
        max_wait_seconds=wait,
        holder=lambda: "run R1 since 2026-11-27 10:00:00 UTC",
        logger=LOG,
    )


def test_a_second_run_of_a_job_is_skipped_with_the_holder_named(engine: sa.Engine) -> None:
    with _lock(engine, "job-a"):
        busy = r"locked by run R1 since .*`busy.on_busy` is `skip`"
        with pytest.raises(JobBusyError, match=busy), _lock(engine, "job-a"):
            pytest.fail("two holders of one job's lock")
        with _lock(engine, "job-b"):
            pass  # another job runs beside it
    with _lock(engine, "job-a"):
        pass  # released on the way out


def test_a_waiting_run_logs_that_it_waits_and_gives_up_at_its_maximum(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="test-lock")
    with _lock(engine, "job-a"):
        started = time.monotonic()
        gave_up = r"waited 0\.0 min, the job's `busy\.max_wait_minutes`"
        with pytest.raises(JobBusyError, match=gave_up), _lock(engine, "job-a", on_busy="wait", wait=1.2):
            pytest.fail("two holders of one job's lock")
        assert time.monotonic() - started >= 1.2
    assert "is locked by run R1" in caplog.text
    assert "waiting for it" in caplog.text


def test_a_waiting_run_goes_on_once_the_holder_is_done(engine: sa.Engine) -> None:
    import threading

    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with _lock(engine, "job-a"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    with _lock(engine, "job-a", on_busy="wait", wait=30):
        waited = time.monotonic() - started
    thread.join()
    assert 0.5 <= waited < 30


def _old_hub(engine: sa.Engine) -> None:
    """The ledger as the first release created it (no `forced`, no version table), one content twice."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE datahub_ledger (id INTEGER PRIMARY KEY, job VARCHAR(200) NOT NULL, path TEXT NOT NULL, "
            "size BIGINT NOT NULL, modified_at TIMESTAMP, sha256 VARCHAR(64) NOT NULL, run_id VARCHAR(64) NOT NULL, "
            "outcome VARCHAR(20) NOT NULL, recorded_at TIMESTAMP NOT NULL, moved_to TEXT)"
        )
        for n, path in enumerate(["in/a.csv", "in/a-again.csv"], start=1):
            conn.exec_driver_sql(
                "INSERT INTO datahub_ledger (id, job, path, size, sha256, run_id, outcome, recorded_at) "
                f"VALUES ({n}, 'job-a', '{path}', 10, 'abc', 'r{n}', 'SUCCESS', '2026-01-01 00:00:00')"
            )


def test_an_old_hub_is_migrated_and_its_duplicate_imports_reported(engine: sa.Engine) -> None:
    _old_hub(engine)

    prepare_hub(engine)

    with engine.begin() as conn:
        note = conn.exec_driver_sql("SELECT version, note FROM datahub_schema").all()
        flags = conn.exec_driver_sql("SELECT id, forced FROM datahub_ledger ORDER BY id").all()
    assert [version for version, _ in note] == [2, 3]
    assert "found 1 content(s) imported more than once" in note[0][1]
    assert "ledger rows can be forgotten" in note[1][1]
    assert [(n, bool(forced)) for n, forced in flags] == [(1, False), (2, True)]
    prepare_hub(engine)  # once only
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM datahub_schema").scalar_one() == 2


def test_one_content_is_imported_once_per_job_unless_forced(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        ensure_system_tables(conn)
        indexes = {index["name"] for index in sa.inspect(conn).get_indexes("datahub_ledger")}
    assert ONE_IMPORT_PER_CONTENT in indexes

    def ledger(
        conn: sa.Connection, *, path: str, job: str = "job-a", outcome: str = "SUCCESS", forced: bool = False
    ) -> int:
        return record_file(
            conn,
            job=job,
            path=path,
            size=1,
            modified_at=None,
            sha256="abc",
            run_id="r",
            outcome=outcome,
            forced=forced,
        )

    with engine.begin() as conn:
        ledger(conn, path="in/a.csv")
        ledger(conn, path="in/b.csv", outcome="SKIPPED")  # a re-sent copy's own move row
        ledger(conn, path="in/a.csv", forced=True)  # a forced re-import
        ledger(conn, path="in/a.csv", job="job-b")  # another job
        ledger(conn, path="in/c.csv", outcome="FAILED")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        ledger(conn, path="in/a-again.csv")
    with engine.begin() as conn:
        seen = find_loaded(conn, "job-a", sha256="abc")
    assert seen is not None
    assert seen.path == "in/a.csv"
