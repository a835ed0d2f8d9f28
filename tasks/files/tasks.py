"""Read, download and move files on FTP, FTPS and SFTP servers through one session API.

``open_session(connection)`` logs in and yields a ``FileSession``; every path it takes or returns is
POSIX and relative to the connection's root folder. Library errors (ftplib, ssl, paramiko, sockets)
are translated once, in ``tasks.files.failures``, into the tree of ``tasks.errors``. The Prefect tasks
below (once per run: list, watch, check) take a block name, load the block and open and close their
own session; the per-file steps (``fetch``, ``move``, ``unclaim``) are plain functions on the run's
``HeldSession`` (``tasks.files.held``): a Prefect task and a login per file cost more than a small
file's whole import. The session lives in
``tasks.files.session``, the protocol backends in ``tasks.files.ftplib_backend`` and ``tasks.files.paramiko_backend``,
the path rules in ``tasks.files.paths``; the package (``tasks.files``) is the public face.
"""

from __future__ import annotations

import logging
import posixpath
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.exceptions import MissingContextError
from prefect.tasks import Task

from blocks.ftp import FtpConnection
from blocks.run_cache import load_block
from tasks.errors import ImportJobError, SourceUnavailableError
from tasks.files.held import HeldSession
from tasks.files.listing import ClaimedFile, Listing, RemoteFile
from tasks.files.paths import local_file_name
from tasks.files.session import (
    FileSession,
    open_session,
    watch_file,
    watch_listing,
)

__all__ = [
    "Downloaded",
    "check_ftp_connection",
    "fetch",
    "list_leftover_claims",
    "list_source_files",
    "move",
    "unclaim",
    "watch_source_file",
]

RETRY_DELAYS_SECONDS: list[float] = [5, 30]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Downloaded:
    """A downloaded file: its remote facts, where it was written, and the SHA-256 of its bytes.

    `remote` holds the path the file was listed under; `claimed_path`, when the file was claimed, is
    where it is now on the server: the path to move once it is imported.
    """

    remote: RemoteFile
    local_path: Path
    sha256: str
    claimed_path: str | None = None


def _retry_when_unavailable(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what a retry can fix: the server was down, slow or dropped the connection."""
    return isinstance(state.data, SourceUnavailableError)


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    # Tests call the tasks' `.fn` outside any run, where Prefect has no run logger to give.
    try:
        return get_run_logger()
    except MissingContextError:
        return logger


def _load_block(name: str) -> FtpConnection:
    return load_block(FtpConnection, name)


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=RETRY_DELAYS_SECONDS,
    retry_condition_fn=_retry_when_unavailable,
)
def list_source_files(
    connection: str,
    folder: str,
    pattern: str,
    *,
    settle_seconds: float,
    min_age_seconds: float,
    move_dirs: tuple[str, ...] | list[str] = (),
) -> Listing:
    """Return the files in `folder` matching `pattern`, split into ready and still-growing ones.

    `move_dirs` (the job's outbound and failed folders) are checked against the root first: a folder
    outside it fails the run before any file is touched.
    """
    block = _load_block(connection)
    with open_session(block) as session:
        session.check_inside_root(list(move_dirs))
        listing = watch_listing(
            session, folder, pattern, settle_seconds=settle_seconds, min_age_seconds=min_age_seconds
        )
    _run_logger().info(
        "Found %d ready, %d growing and %d unreadable files matching %r in %r.",
        len(listing.ready),
        len(listing.growing),
        len(listing.unreadable),
        pattern,
        folder,
    )
    return listing


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=RETRY_DELAYS_SECONDS,
    retry_condition_fn=_retry_when_unavailable,
)
def watch_source_file(
    connection: str,
    path: str,
    *,
    settle_seconds: float,
    min_age_seconds: float,
    move_dirs: tuple[str, ...] | list[str] = (),
) -> Listing:
    """Look at the file at `path` twice, `settle_seconds` apart: ready, growing, unreadable or absent (empty).

    `move_dirs` are checked against the root first, as `list_source_files` does.
    """
    block = _load_block(connection)
    with open_session(block) as session:
        session.check_inside_root(list(move_dirs))
        return watch_file(session, path, settle_seconds=settle_seconds, min_age_seconds=min_age_seconds)


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=RETRY_DELAYS_SECONDS,
    retry_condition_fn=_retry_when_unavailable,
)
def list_leftover_claims(connection: str, folder: str, pattern: str) -> list[ClaimedFile]:
    """Return the files matching `pattern` left claimed in `folder` by a run that stopped, oldest first.

    For one file `in/a.csv`, pass its folder and its name as a pattern: `glob.escape("a.csv")`.
    """
    block = _load_block(connection)
    with open_session(block) as session:
        leftovers = session.leftover_claims(folder, pattern)
    if leftovers:
        _run_logger().warning(
            "%d files matching %r were left claimed in %r by a run that stopped; they are imported first.",
            len(leftovers),
            pattern,
            folder,
        )
    return leftovers


def fetch(held: HeldSession, path: str, local_dir: Path, *, claim: bool) -> Downloaded | None:
    """Download `path` into `local_dir`, claiming it first when `claim`; None when it is not there.

    Claimed, the file is renamed into the claim folder beside it and downloaded from there: what is
    moved afterwards (`Downloaded.claimed_path`) is provably what was downloaded, whatever is uploaded
    under its name meanwhile. Unclaimed (`claim=False`), it is downloaded in place. A server that is
    down, slow or drops the transfer is tried again after each of `RETRY_DELAYS_SECONDS` (a new
    login each time); a claim that went through is found again by the next attempt, which goes on.
    Runs on the held session of the run: no login of its own unless the last use failed.
    """
    local_dir.mkdir(parents=True, exist_ok=True)
    local_path = local_dir / local_file_name(path)
    claimed: list[ClaimedFile] = []
    delays = list(RETRY_DELAYS_SECONDS)
    for attempt, delay in enumerate([*delays, None], start=1):
        try:
            with held.use() as session:
                downloaded = (
                    _fetch(session, path, local_path, claimed)
                    if claim
                    else _fetch_in_place(session, path, local_path)
                )
            break
        except SourceUnavailableError as exc:
            local_path.unlink(missing_ok=True)
            if delay is None:
                _unclaim_all(held, claimed)
                raise
            _run_logger().warning(
                "Downloading %r failed (%s); trying again in %.0f s (retry %d/%d).",
                path,
                exc,
                delay,
                attempt,
                len(delays),
            )
            time.sleep(delay)
        except ImportJobError:
            local_path.unlink(missing_ok=True)
            _unclaim_all(held, claimed)
            raise
    if downloaded is not None:
        _run_logger().info(
            "Downloaded %r%s (%d bytes, sha256 %s).",
            downloaded.remote.path,
            f" claimed as {downloaded.claimed_path!r}" if downloaded.claimed_path else "",
            downloaded.remote.size,
            downloaded.sha256,
        )
    return downloaded


def _unclaim_all(held: HeldSession, claimed: list[ClaimedFile]) -> None:
    # A download that failed leaves the file where it was found (a retry claims it once: one entry).
    for file in claimed[:1]:
        unclaim(held, file)


def unclaim(held: HeldSession, claimed: ClaimedFile) -> None:
    """Put a claimed file back beside the claim folder; if that fails, the next run takes it up first."""
    folder = posixpath.dirname(claimed.original.path) or "."
    try:
        with held.use() as session:
            session.move(claimed.claimed_path, folder)
    except ImportJobError as exc:
        _run_logger().warning(
            "%r stays claimed as %r (%s); the next run takes it up first.",
            claimed.original.path,
            claimed.claimed_path,
            exc,
        )


def _fetch(
    session: FileSession, path: str, local_path: Path, claimed_into: list[ClaimedFile]
) -> Downloaded | None:
    claimed = session.claim(path)
    if claimed is None:
        return None
    claimed_into.append(claimed)
    # Read after the rename (or found claimed): the facts of the file in the claim folder.
    known = replace(claimed.original, path=claimed.claimed_path)
    remote, sha256 = session.download(claimed.claimed_path, local_path, known=known)
    # The facts are those of the bytes downloaded; the path is the one the file was listed under.
    original = replace(remote, path=claimed.original.path)
    return Downloaded(
        remote=original, local_path=local_path, sha256=sha256, claimed_path=claimed.claimed_path
    )


def _fetch_in_place(session: FileSession, path: str, local_path: Path) -> Downloaded | None:
    if session.stat(path) is None:
        return None
    remote, sha256 = session.download(path, local_path)
    return Downloaded(remote=remote, local_path=local_path, sha256=sha256)


# Never retried: if the rename went through but the answer was lost, a retry would move the file twice.
def move(held: HeldSession, path: str, dest_dir: str) -> str:
    """Move `path` into `dest_dir` on the same server, never overwriting; return the final path.

    `path` may be a claimed path (`Downloaded.claimed_path`): the file keeps its original name.
    """
    with held.use() as session:
        target = session.move(path, dest_dir)
    _run_logger().info("Moved %r to %r.", path, target)
    return target


@task(cache_policy=NO_CACHE)
def check_ftp_connection(connection: str, read_dirs: list[str], write_dirs: list[str]) -> list[str]:
    """Return the problems found logging in, listing `read_dirs` and writing into `write_dirs`."""
    block = _load_block(connection)
    try:
        with open_session(block) as session:
            return session.check(read_dirs, write_dirs)
    except ImportJobError as exc:
        return [str(exc)]
