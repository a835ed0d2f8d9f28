"""One job, one writer: a per-job lock held in the hub database itself for a whole run.

Prefect's concurrency limit holds only inside one Prefect server: two servers, two `./dev run`, or a
manual run beside a scheduled one would otherwise interleave, and an older file's values could then
overwrite a newer file's. So every import run holds its job's lock from the listing to the last move:

- PostgreSQL: a session-level advisory lock on a connection the run keeps open. A worker that dies
  closes its connection, and the server releases the lock at once.
- SQLite: an exclusive `flock` on a small file beside the database (SQLite is one machine's database,
  and the kernel releases the lock when the process dies). SQLite also has one writer at a time for
  the whole database: other jobs' writes wait up to the block's busy timeout.

A second run of the job waits (logging every 30 s who holds the lock) or is skipped at once, as the
job's `busy` policy says; past the policy's maximum wait it is skipped too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from pydantic import ConfigDict, Field

from tasks.errors import JobBusyError, SourceUnavailableError
from tasks.ui_schema import FormModel

RunLogger = logging.Logger | logging.LoggerAdapter[logging.Logger]
OnBusy = Literal["wait", "skip"]
POLL_SECONDS = 0.5
LOG_EVERY_SECONDS = 30.0


class BusyPolicy(FormModel):
    """What a run does when another run of the same job is still going (on any server or machine)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="When the job is already running")

    on_busy: OnBusy | None = Field(
        default=None,
        title="On busy",
        description="`wait`: wait for the other run to finish, then run. `skip`: end at once as Skipped. "
        "Empty: follow the deployment's collision strategy (ENQUEUE waits, CANCEL_NEW skips); a run "
        "without a deployment (`./dev run`) waits.",
    )
    max_wait_minutes: float = Field(
        default=60.0,
        gt=0,
        le=24 * 60,
        title="Maximum wait (minutes)",
        description="A waiting run gives up after this long and ends Skipped, naming the run that holds "
        "the job. While it waits it also holds its Prefect concurrency slot.",
    )


def lock_key(job: str) -> int:
    """Return the job's 64-bit advisory lock key (signed, as PostgreSQL's bigint)."""
    digest = hashlib.sha256(b"datahub-job:" + job.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def job_lock(
    engine: sa.Engine,
    job: str,
    *,
    on_busy: OnBusy,
    max_wait_seconds: float,
    holder: Callable[[], str],
    logger: RunLogger,
) -> Iterator[None]:
    """Hold `job`'s lock for the block; wait for it or raise JobBusyError, as `on_busy` says.

    `holder` describes the run holding the lock ("run X since T"), for the log and the error.
    """
    if engine.dialect.name == "postgresql":
        advisory = _AdvisoryLock(engine, job, logger)
        release = _wait_for(advisory.try_acquire, job, on_busy, max_wait_seconds, holder, logger)
        # Every transaction of the run first checks that the lock's connection still lives: a
        # database restart ends the session and its lock with it, and the run must then take the
        # lock again (or stop) before it writes anything.
        sa.event.listen(engine, "begin", advisory.verify)
        try:
            yield
        finally:
            sa.event.remove(engine, "begin", advisory.verify)
            release()
        return
    path = _sqlite_lock_path(engine, job)
    if path is None:  # an in-memory database lives in one process: nothing else can run the job
        yield
        return
    release = _wait_for(lambda: _try_file_lock(path), job, on_busy, max_wait_seconds, holder, logger)
    try:
        yield
    finally:
        release()


def _wait_for(
    acquire: Callable[[], Callable[[], None] | None],
    job: str,
    on_busy: OnBusy,
    max_wait_seconds: float,
    holder: Callable[[], str],
    logger: RunLogger,
) -> Callable[[], None]:
    started = time.monotonic()
    next_log = started
    while (release := acquire()) is None:
        waited = time.monotonic() - started
        if on_busy == "skip" or waited >= max_wait_seconds:
            raise JobBusyError(_busy_message(job, holder(), on_busy, waited))
        if time.monotonic() >= next_log:
            logger.info(
                "Job %s is locked by %s: waiting for it (%.0f s so far, at most %.0f s).",
                job,
                holder(),
                waited,
                max_wait_seconds,
            )
            next_log += LOG_EVERY_SECONDS
        time.sleep(POLL_SECONDS)
    if time.monotonic() - started >= POLL_SECONDS:
        logger.info(
            "Job %s: the other run finished; this run waited %.0f s.", job, time.monotonic() - started
        )
    return release


def _busy_message(job: str, holder: str, on_busy: OnBusy, waited: float) -> str:
    if on_busy == "skip":
        why = "its `busy.on_busy` is `skip`"
    else:
        why = f"it waited {waited / 60:.1f} min, the job's `busy.max_wait_minutes`"
    return (
        f"Job {job} is locked by {holder}: this run did nothing and is skipped ({why}). "
        "The next run imports what is left."
    )


class _AdvisoryLock:
    """A session-level advisory lock on a connection of its own, taken again if that connection breaks."""

    def __init__(self, engine: sa.Engine, job: str, logger: RunLogger) -> None:
        self.engine = engine
        self.job = job
        self.logger = logger
        self.conn: sa.Connection | None = None
        self.key = 0
        self._verifying = threading.Lock()

    def try_acquire(self) -> Callable[[], None] | None:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        # Advisory locks are per database: two hubs in two schemas of one database stay apart.
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        self.key = lock_key(f"{schema}.{self.job}")
        if not conn.exec_driver_sql("SELECT pg_try_advisory_lock(%(key)s)", {"key": self.key}).scalar_one():
            conn.close()
            return None
        self.conn = conn
        return self.release

    def verify(self, _conn: sa.Connection) -> None:
        if not self._verifying.acquire(blocking=False):
            return  # the check's own statement
        try:
            assert self.conn is not None
            try:
                self.conn.exec_driver_sql("SELECT 1")
                return
            except sa.exc.DBAPIError:
                self.conn.invalidate()
            if self.try_acquire() is None:
                raise SourceUnavailableError(
                    f"Job {self.job}: the hub database dropped the connection holding the job's lock, and "
                    "another run has taken the job since: this run stops here, leaving its remaining "
                    "files for that run. Nothing it committed is lost."
                )
            self.logger.warning(
                "Job %s: the connection holding the job's lock broke; the lock was taken again.", self.job
            )
        finally:
            self._verifying.release()

    def release(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.exec_driver_sql("SELECT pg_advisory_unlock(%(key)s)", {"key": self.key})
        except sa.exc.DBAPIError:
            pass  # the session is gone, and its lock with it
        finally:
            self.conn.close()
            self.conn = None


def _sqlite_lock_path(engine: sa.Engine, job: str) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    folder = Path(database).resolve().parent / (Path(database).name + ".locks")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"job-{lock_key(job) & 0xFFFFFFFFFFFFFFFF:016x}.lock"


def _try_file_lock(path: Path) -> Callable[[], None] | None:
    import fcntl  # POSIX only, as the workers and images are

    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None

    def release() -> None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)

    return release
