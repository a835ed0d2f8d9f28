"""A logged-in session on an FTP, FTPS or SFTP server: list, stat, download, move and probe files."""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import posixpath
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from blocks.ftp import FtpConnection
from tasks.errors import BadFileError, ImportJobError, SourceRejectedError, SourceUnavailableError
from tasks.files.failures import translated
from tasks.files.ftplib_backend import connect_ftp
from tasks.files.listing import (
    ClaimedFile,
    Entry,
    FolderScan,
    Listing,
    RemoteFile,
    classify_listing,
    read_entry,
)
from tasks.files.paramiko_backend import connect_sftp
from tasks.files.paths import (
    CLAIM_DIR,
    MAX_NAME_TRIES,
    candidate_names,
    claim_paths,
    relative_to_root,
    resolve_root,
    safe_remote_path,
)

PROBE_PREFIX = ".datahub-write-probe-"
_EARLIEST = datetime.min.replace(tzinfo=UTC)

logger = logging.getLogger(__name__)


def _oldest_first(file: RemoteFile) -> tuple[datetime, str]:
    return (file.modified or _EARLIEST, file.path)


class _Backend(Protocol):
    def login_dir(self) -> str: ...
    def listdir(self, remote_dir: str) -> list[Entry]: ...
    def stat(self, remote: str) -> Entry | None: ...
    def retrieve(self, remote: str, sink: Callable[[bytes], None]) -> None: ...
    def rename(self, source: str, target: str) -> None: ...
    def mkdir(self, remote: str) -> None: ...
    def put_bytes(self, remote: str, payload: bytes) -> None: ...
    def remove(self, remote: str) -> None: ...
    def close(self) -> None: ...


def _listed(entry: Entry, pattern: str) -> bool:
    # The claim folder is a folder anyway; naming it here keeps it out even where a server says otherwise.
    return entry.kind == "file" and entry.name != CLAIM_DIR and fnmatch.fnmatchcase(entry.name, pattern)


def _claim_fix(folder: str) -> str:
    return (
        f"The job needs write rights in the folder {folder or '.'!r} to claim files before it imports them: "
        f"grant the user rights to create the folder {posixpath.join(folder, CLAIM_DIR)!r} there and to "
        "rename files into it."
    )


def _connect(connection: FtpConnection) -> _Backend:
    with translated(connection, "log in"):
        return connect_sftp(connection) if connection.protocol == "sftp" else connect_ftp(connection)


class _LocalWriteError(Exception):
    """Writing the local copy failed: a local problem, not the server's; carries the OSError."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _HashingSink:
    """Write chunks to a local file while counting and hashing them."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()
        self.written = 0

    def __call__(self, chunk: bytes) -> None:
        try:
            self._out.write(chunk)
        except OSError as exc:
            raise _LocalWriteError(exc) from exc
        self.digest.update(chunk)
        self.written += len(chunk)


class FileSession:
    """A logged-in session on a file server; every path is POSIX and relative to the connection's root."""

    def __init__(self, connection: FtpConnection, backend: _Backend, root: str) -> None:
        self._connection = connection
        self._backend = backend
        self._root = root
        # Folders seen to exist in this session: a bulk run moves every file into the same ones. One
        # removed meanwhile makes the rename itself fail, which is reported as before.
        self._known_dirs: set[str] = set()

    def _relative(self, path: str) -> str:
        return relative_to_root(self._root, path)

    def check_inside_root(self, folders: list[str]) -> None:
        """Refuse (SourceRejectedError) any of `folders` that lies outside the connection's root."""
        for folder in folders:
            self._relative(folder)

    def _remote(self, relative: str) -> str:
        return posixpath.join(self._root, relative) if relative else self._root

    def translated(self, action: str, path: str, fix: str) -> AbstractContextManager[None]:
        return translated(self._connection, action, path, fix)

    def scan(self, folder: str, pattern: str) -> FolderScan:
        """Return the plain files directly in `folder` matching `pattern`, oldest first, and those skipped.

        A matching file whose name or facts cannot be read is skipped, not fatal: `unreadable` says why.
        """
        relative = self._relative(folder)
        fix = "Create the folder, grant the user read rights on it, or fix the folder in the job."
        with self.translated("list the folder", relative, fix):
            entries = self._backend.listdir(self._remote(relative))
        found = [read_entry(relative, entry) for entry in entries if _listed(entry, pattern)]
        files = [file for file in found if isinstance(file, RemoteFile)]
        return FolderScan(sorted(files, key=_oldest_first), sorted(r for r in found if isinstance(r, str)))

    def list_files(self, folder: str, pattern: str) -> list[RemoteFile]:
        """Return the plain files directly in `folder` whose names match `pattern`, oldest first."""
        return self.scan(folder, pattern).files

    def look(self, path: str) -> RemoteFile | str | None:
        """Return the facts of the plain file at `path`, why they cannot be read, or None when there is none."""
        relative = self._relative(path)
        entry = self._entry(relative, "look up", "Fix the path in the job or the rights on the server.")
        if entry is None or entry.kind != "file":
            return None
        return read_entry(posixpath.dirname(relative), replace(entry, name=posixpath.basename(relative)))

    def _entry(self, relative: str, action: str, fix: str) -> Entry | None:
        with self.translated(action, relative, fix):
            return self._backend.stat(self._remote(relative))

    def stat(self, path: str) -> RemoteFile | None:
        """Return the facts of the plain file at `path`, or None when there is none.

        Raises BadFileError when the server reports facts that cannot be read (a size that is no number).
        """
        found = self.look(path)
        if isinstance(found, str):
            raise BadFileError(found)
        return found

    def _require_file(self, relative: str) -> RemoteFile:
        remote = self.stat(relative)
        if remote is None:
            raise SourceRejectedError(
                f"The file {relative!r} does not exist on {self._connection.describe()}; check the path in "
                "the job, or whether another run already moved it."
            )
        return remote

    def download(
        self, path: str, local_path: Path, *, known: RemoteFile | None = None
    ) -> tuple[RemoteFile, str]:
        """Stream `path` into `local_path`; return its facts and the SHA-256 hex of the bytes written.

        `known`: the file's facts, just read by the caller (a claimed file, read after its rename);
        otherwise they are read first. The bytes received are checked against its size either way.
        """
        relative = self._relative(path)
        remote = known if known is not None else self._require_file(relative)
        try:
            with local_path.open("wb") as out:
                sink = _HashingSink(out)
                with self.translated("download", relative, "Grant the user read rights on the file."):
                    self._backend.retrieve(self._remote(relative), sink)
            self._check_complete(relative, remote, sink.written)
        except _LocalWriteError as exc:
            local_path.unlink(missing_ok=True)
            raise exc.error from None
        except BaseException:
            local_path.unlink(missing_ok=True)  # a partial copy must never look like a download
            raise
        return RemoteFile(relative, sink.written, remote.modified), sink.digest.hexdigest()

    def _check_complete(self, relative: str, remote: RemoteFile, written: int) -> None:
        if written != remote.size:
            raise SourceUnavailableError(
                f"The download of {relative!r} from {self._connection.describe()} got {written} of "
                f"{remote.size} bytes: the transfer broke off or the file changed meanwhile; retry later."
            )

    def move(self, path: str, dest_dir: str) -> str:
        """Rename `path` into `dest_dir` without overwriting anything, verify it, and return the new path."""
        source_path, target_dir = self._relative(path), self._relative(dest_dir)
        source = self._require_file(source_path)
        self._require_dir(target_dir)
        target = self._free_target(target_dir, posixpath.basename(source_path))
        fix = f"Grant the user rights to rename {source_path!r} and to write into the folder {target_dir!r}."
        with self.translated("move", source_path, fix):
            self._backend.rename(self._remote(source_path), self._remote(target))
        self._verify_move(source, target)
        return target

    def _require_dir(self, folder: str) -> None:
        if not self._is_dir(folder):
            raise SourceRejectedError(
                f"The folder {folder!r} does not exist on {self._connection.describe()}; create it and grant "
                "the user write rights on it, or fix the folder in the job."
            )

    def _is_dir(self, folder: str) -> bool:
        if folder in self._known_dirs:
            return True
        entry = self._entry(folder, "look up the folder", "Fix the folder in the job.")
        if entry is not None and entry.kind == "dir":
            self._known_dirs.add(folder)
            return True
        return False

    def _free_target(self, folder: str, name: str) -> str:
        for candidate in candidate_names(name, datetime.now(UTC)):
            target = safe_remote_path(folder, candidate)
            with self.translated("look up", target, "Grant the user read rights on the folder."):
                if self._backend.stat(self._remote(target)) is None:
                    return target
        raise SourceRejectedError(
            f"The folder {folder!r} already holds {MAX_NAME_TRIES} files named like {name!r}; clean it up."
        )

    def _verify_move(self, source: RemoteFile, target: str) -> None:
        moved, left = self.stat(target), self.stat(source.path)
        if moved is None or moved.size != source.size or left is not None:
            found = "missing" if moved is None else f"{moved.size} bytes where {source.size} were moved"
            remains = "is still there" if left is not None else "is gone"
            raise SourceRejectedError(
                f"Moving {source.path!r} to {target!r} on {self._connection.describe()} did not take effect: "
                f"the target is {found} and the source {remains}; check both folders on the server."
            )

    def claim(self, path: str) -> ClaimedFile | None:
        """Rename the file at `path` into the claim folder beside it, keeping its name; None if it is gone.

        From then on nobody changes what this run imports: a new upload under the same name is a new file,
        left for the next run. A copy already claimed under that name (by an earlier attempt of the same
        task, or by a run that stopped) is returned instead, untouched, and the file at `path` waits: the
        claimed copy is the older one. Never overwrites anything.
        """
        original, claimed_path = claim_paths(self._relative(path))
        earlier = self.stat(claimed_path)
        if earlier is not None:
            return ClaimedFile(replace(earlier, path=original), claimed_path, leftover=True)
        if self.stat(original) is None or not self._rename_into_claim(original, claimed_path):
            return None
        claimed = self.stat(claimed_path)
        if claimed is None:
            raise SourceRejectedError(
                f"Claiming {original!r} (renaming it to {claimed_path!r}) on {self._connection.describe()} "
                "did not take effect: the claimed file is missing; check the folder on the server."
            )
        return ClaimedFile(replace(claimed, path=original), claimed_path)

    def _rename_into_claim(self, original: str, claimed_path: str) -> bool:
        """Rename `original` to `claimed_path`, creating the claim folder; False if `original` went away."""
        folder = posixpath.dirname(original)
        fix = _claim_fix(folder)
        self._ensure_claim_dir(posixpath.dirname(claimed_path), fix)
        try:
            with self.translated("claim", original, fix):
                self._backend.rename(self._remote(original), self._remote(claimed_path))
        except SourceRejectedError:
            if self.look(original) is None:
                return False  # deleted or moved by someone else meanwhile: nothing to claim
            raise
        return True

    def _ensure_claim_dir(self, claim_dir: str, fix: str) -> None:
        if claim_dir in self._known_dirs:
            return
        entry = self._entry(claim_dir, "look up the claim folder", fix)
        if entry is not None and entry.kind == "dir":
            self._known_dirs.add(claim_dir)
            return
        if entry is not None:
            raise SourceRejectedError(
                f"{claim_dir!r} on {self._connection.describe()} is not a folder, so files cannot be claimed "
                "into it; rename or remove it."
            )
        with self.translated("create the claim folder", claim_dir, fix):
            self._backend.mkdir(self._remote(claim_dir))
        self._known_dirs.add(claim_dir)

    def leftover_claims(self, folder: str, pattern: str) -> list[ClaimedFile]:
        """Return the files matching `pattern` still claimed in `folder`'s claim folder, oldest first.

        The job runs under a lock, so any claimed file found at the start of a run was left by a run that
        stopped before moving it: it is imported first, under its original path.
        """
        claim_dir = posixpath.join(self._relative(folder), CLAIM_DIR)
        if not self._is_dir(claim_dir):
            return []
        scan = self.scan(claim_dir, pattern)
        for reason in scan.unreadable:
            logger.warning("%s", reason)
        return [
            ClaimedFile(replace(file, path=claim_paths(file.path)[0]), file.path, leftover=True)
            for file in scan.files
        ]

    def check(self, read_dirs: list[str], write_dirs: list[str]) -> list[str]:
        """Return the problems found reading `read_dirs` and writing into `write_dirs`; empty = all good."""
        problems = [self._read_problem(folder) for folder in read_dirs]
        problems += [self._write_problem(folder) for folder in write_dirs]
        return [problem for problem in problems if problem]

    def _read_problem(self, folder: str) -> str | None:
        try:
            self.list_files(folder, "*")
        except ImportJobError as exc:
            return str(exc)
        return None

    def _write_problem(self, folder: str) -> str | None:
        try:
            probe = safe_remote_path(self._relative(folder), PROBE_PREFIX + secrets.token_hex(6))
            fix = (
                f"Create the folder {folder!r} if it is missing, and grant the user rights to write and "
                "delete files in it."
            )
            with self.translated("write the probe file", probe, fix):
                self._backend.put_bytes(self._remote(probe), b"datahub write probe\n")
            with self.translated("delete the probe file", probe, fix + " Then delete the probe file."):
                self._backend.remove(self._remote(probe))
        except ImportJobError as exc:
            return str(exc)
        return None


@contextmanager
def open_session(connection: FtpConnection) -> Iterator[FileSession]:
    """Log in to the server of `connection`, yield a session on it, and log out at the end."""
    backend = _connect(connection)
    try:
        with translated(connection, "find the login folder"):
            root = resolve_root(backend.login_dir(), connection.root_dir)
        yield FileSession(connection, backend, root)
    finally:
        backend.close()


def check_connection(connection: FtpConnection) -> list[str]:
    """Return what fails when logging in (DNS, refused, TLS, host key, login); empty means it works."""
    try:
        with open_session(connection):
            return []
    except ImportJobError as exc:
        return [str(exc)]


def watch_listing(
    session: FileSession, folder: str, pattern: str, *, settle_seconds: float, min_age_seconds: float
) -> Listing:
    """List `folder` twice, `settle_seconds` apart, and split the files into ready and growing ones."""
    first = session.scan(folder, pattern)
    second = first
    if settle_seconds > 0:
        time.sleep(settle_seconds)
        second = session.scan(folder, pattern)
    return classify_listing(
        first.files,
        second.files,
        now=datetime.now(UTC),
        min_age_seconds=min_age_seconds,
        unreadable=second.unreadable,
    )


def watch_file(session: FileSession, path: str, *, settle_seconds: float, min_age_seconds: float) -> Listing:
    """Look at the file at `path` twice, `settle_seconds` apart: a listing of it, ready or growing.

    An absent file gives an empty listing; one whose facts cannot be read is listed as unreadable.
    """
    first = session.look(path)
    second = first
    if settle_seconds > 0:
        time.sleep(settle_seconds)
        second = session.look(path)
    return classify_listing(
        [first] if isinstance(first, RemoteFile) else [],
        [second] if isinstance(second, RemoteFile) else [],
        now=datetime.now(UTC),
        min_age_seconds=min_age_seconds,
        unreadable=[second] if isinstance(second, str) else [],
    )
