"""Read, download and move files on FTP, FTPS and SFTP servers through one session API.

``open_session(connection)`` logs in and yields a ``FileSession``; every path it takes or returns is
POSIX and relative to the connection's root folder. Library errors (ftplib, ssl, paramiko, sockets)
are translated here, once, into the tree of ``tasks.errors``. The Prefect tasks at the bottom take a
block name, load the block and open and close their own session.
"""

from __future__ import annotations

import base64
import fnmatch
import ftplib
import hashlib
import io
import logging
import posixpath
import secrets
import socket
import ssl
import stat as stat_mode
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, ParamSpec, Protocol, TypeVar

import paramiko
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.exceptions import MissingContextError
from prefect.tasks import Task

from blocks.ftp import FtpConnection
from tasks.errors import BadFileError, ImportJobError, SourceRejectedError, SourceUnavailableError

CHUNK_BYTES = 64 * 1024
PROBE_PREFIX = ".datahub-write-probe-"
MAX_NAME_TRIES = 100
RETRY_DELAYS_SECONDS: list[float] = [5, 30]

# Errors the transport libraries raise for network, protocol and server answers; anything else is a bug.
_REMOTE_ERRORS = (OSError, EOFError, ftplib.Error, paramiko.SSHException)
# FTP replies meaning "command not implemented": the server lacks MLSD/MLST, so fall back to NLST/SIZE.
_UNSUPPORTED_REPLIES = frozenset({"500", "502"})
# A known_hosts "ssh-rsa" key is offered by servers under these signature algorithms too.
_KEY_TYPE_ALIASES = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}
_EARLIEST = datetime.min.replace(tzinfo=UTC)

logger = logging.getLogger(__name__)
_P = ParamSpec("_P")
_T = TypeVar("_T")
EntryKind = Literal["file", "dir", "other"]


@dataclass(frozen=True)
class RemoteFile:
    """A plain file on the server: path relative to the root, size in bytes, UTC modification time."""

    path: str
    size: int
    modified: datetime | None


@dataclass(frozen=True)
class Listing:
    """Files ready to import, and files still being written (changed or too young)."""

    ready: list[RemoteFile]
    growing: list[RemoteFile]


@dataclass(frozen=True)
class Downloaded:
    """A downloaded file: its remote facts, where it was written, and the SHA-256 of its bytes."""

    remote: RemoteFile
    local_path: Path
    sha256: str


@dataclass(frozen=True)
class _Entry:
    """One directory entry as a backend reports it, before path checks."""

    name: str
    size: int
    modified: datetime | None
    kind: EntryKind


# --- Pure path and naming rules ------------------------------------------------------------------


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def resolve_root(login_dir: str, root_dir: str) -> str:
    """Return the absolute root folder: `root_dir` taken from the login folder when relative."""
    if _has_control_chars(root_dir):
        raise SourceRejectedError(
            f"The root_dir {root_dir!r} of the connection block contains a control character; fix it."
        )
    return posixpath.normpath(posixpath.join(login_dir or "/", root_dir))


def relative_to_root(root: str, path: str) -> str:
    """Return `path` (relative, or absolute inside `root`) as a normalized path relative to `root`."""
    if _has_control_chars(path):
        raise SourceRejectedError(f"The path {path!r} contains a control character; fix the path in the job.")
    if path.startswith("/"):
        return _inside_root(root, posixpath.normpath("/" + path.lstrip("/")), path)
    normalized = posixpath.normpath(path) if path else "."
    if normalized == ".." or normalized.startswith("../"):
        raise SourceRejectedError(
            f"The path {path!r} leads out of the connection's root folder {root!r}; give a path inside it."
        )
    return "" if normalized == "." else normalized


def _inside_root(root: str, absolute: str, original: str) -> str:
    base = posixpath.normpath("/" + root.lstrip("/"))
    if absolute == base:
        return ""
    prefix = base.rstrip("/") + "/"
    if not absolute.startswith(prefix):
        raise SourceRejectedError(
            f"The path {original!r} lies outside the connection's root folder {base!r}; "
            "give a path relative to the root folder."
        )
    return absolute[len(prefix) :]


def _name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if name.startswith("/"):
        return "it is absolute"
    if _has_control_chars(name):
        return "it contains a control character"
    return None


def safe_remote_path(folder: str, name: str) -> str:
    """Return `name` joined under `folder`; refuse names that are empty, absolute, odd or leave `folder`."""
    problem = _name_problem(name) or _name_problem(folder or ".")
    joined = posixpath.normpath(posixpath.join(folder, name)) if problem is None else ""
    base = posixpath.normpath(folder) if folder else "."
    inside = joined.startswith(base + "/") if base != "." else joined not in {"", ".", ".."}
    if problem is None and not (inside and not joined.startswith("../")):
        problem = "it leads out of the folder"
    if problem is not None:
        raise BadFileError(
            f"Refusing the remote file name {name!r} in folder {folder!r}: {problem}. "
            "Rename the file on the server."
        )
    return joined


def local_file_name(path: str) -> str:
    """Return a safe local file name for the remote `path`: its last segment, refused if odd."""
    name = posixpath.basename(posixpath.normpath(path)) if path else ""
    if name in {"", ".", ".."} or "\\" in name or _has_control_chars(name):
        raise BadFileError(
            f"Cannot derive a safe local file name from the remote path {path!r}; "
            "rename the file on the server."
        )
    return name


def candidate_names(name: str, when: datetime, *, limit: int = MAX_NAME_TRIES) -> Iterator[str]:
    """Yield `name`, then `stem.<UTC time>.ext`, then `stem.<UTC time>-2.ext`... up to `limit` names."""
    yield name
    stem, extension = posixpath.splitext(name)
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    yield f"{stem}.{stamp}{extension}"
    for number in range(2, limit):
        yield f"{stem}.{stamp}-{number}{extension}"


def _age_seconds(file: RemoteFile, now: datetime) -> float:
    # A server that reports no time cannot make a file look young; the settle look still applies.
    return float("inf") if file.modified is None else (now - file.modified).total_seconds()


def classify_listing(
    first: list[RemoteFile], second: list[RemoteFile], *, now: datetime, min_age_seconds: float
) -> Listing:
    """Split the second look into ready files (unchanged since the first look, old enough) and growing."""
    before = {file.path: file for file in first}
    ready: list[RemoteFile] = []
    growing: list[RemoteFile] = []
    for file in second:
        settled = before.get(file.path) == file and _age_seconds(file, now) >= min_age_seconds
        (ready if settled else growing).append(file)
    return Listing(ready=ready, growing=growing)


def _oldest_first(file: RemoteFile) -> tuple[datetime, str]:
    return (file.modified or _EARLIEST, file.path)


def ssh_fingerprint(key_blob: bytes) -> str:
    """Return the `SHA256:...` fingerprint of an SSH public key blob, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _parse_ftp_time(value: str | None) -> datetime | None:
    # MLSD/MDTM times are UTC "YYYYMMDDHHMMSS" with optional ".fff" (RFC 3659).
    try:
        return datetime.strptime((value or "")[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


# --- Error translation -----------------------------------------------------------------------------


class _ServerRefusalError(OSError):
    """An SFTP server answered a request with a plain failure status (no errno), not a dead socket."""


def _where(connection: FtpConnection) -> str:
    return f"{connection.host}:{connection.effective_port()}"


def _block_label(connection: FtpConnection) -> str:
    name = connection._block_document_name
    return f"block {name!r}" if name else "the connection block"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _reply_code(exc: BaseException) -> str:
    return str(exc)[:3]


def _is_login_failure(exc: BaseException) -> bool:
    if isinstance(exc, paramiko.AuthenticationException):
        return True
    return isinstance(exc, ftplib.error_perm) and _reply_code(exc) == "530"


@dataclass(frozen=True)
class _Failure:
    """A library error and what we were doing; `detail` is its text with the password masked."""

    connection: FtpConnection
    exc: BaseException
    detail: str
    action: str
    path: str | None
    fix: str

    @property
    def where(self) -> str:
        return f"{self.connection.host}:{self.connection.effective_port()}"


def _during(failure: _Failure) -> str:
    return f" while trying to {failure.action} {failure.path!r}" if failure.path is not None else ""


def _path_reason(failure: _Failure) -> str | None:
    if isinstance(failure.exc, FileNotFoundError):
        return "it does not exist"
    if isinstance(failure.exc, PermissionError):
        return "permission denied"
    if isinstance(failure.exc, _ServerRefusalError | ftplib.error_perm):
        return f"the server answered {failure.detail!r}"
    return None


def _tls_message(where: str, exc: ssl.SSLCertVerificationError) -> str:
    return (
        f"The TLS certificate of {where} could not be verified ({exc.verify_message}). Set `ca_bundle` "
        "of the connection block to the PEM file of the CA that issued the server certificate, or connect "
        "by a name the certificate lists (for a throwaway test server only: `insecure_skip_tls_verify`)."
    )


def _ftp_reply_error(failure: _Failure) -> ImportJobError:
    if isinstance(failure.exc, ftplib.error_temp):
        return SourceUnavailableError(
            f"The server at {failure.where} answered {failure.detail!r}{_during(failure)}; retry later."
        )
    if isinstance(failure.exc, ftplib.error_perm):
        hint = (
            f" Check the protocol ({failure.connection.protocol}) and port of {_block_label(failure.connection)}."
            if failure.action == "log in"
            else ""
        )
        return SourceRejectedError(
            f"The server at {failure.where} refused to {failure.action}: {failure.detail!r}.{hint}"
        )
    return SourceRejectedError(
        f"The server at {failure.where} answered {failure.detail!r}, which is not "
        f"{failure.connection.protocol.upper()}; check the protocol and port of "
        f"{_block_label(failure.connection)}."
    )


def _transport_error(failure: _Failure) -> ImportJobError:
    exc, where = failure.exc, failure.where
    hint = "check that the server is up and the port is right"
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return SourceRejectedError(
            f"The TLS handshake with {where} failed ({failure.detail}); check that the server speaks FTPS "
            "with explicit TLS (AUTH TLS) on this port."
        )
    if isinstance(exc, ConnectionRefusedError):
        return SourceUnavailableError(f"The connection to {where} was refused; {hint}.")
    if isinstance(exc, TimeoutError):
        return SourceUnavailableError(
            f"The server at {where} did not answer within {failure.connection.timeout_seconds:g} s; {hint}."
        )
    return SourceUnavailableError(
        f"The connection to {where} failed or dropped{_during(failure)} ({failure.detail}); {hint}."
    )


def _login_message(failure: _Failure) -> str:
    connection = failure.connection
    return (
        f"{connection.protocol.upper()} login to {failure.where} as {connection.username!r} failed "
        f"({failure.detail}); check the username and password of {_block_label(connection)}."
    )


def _classify(failure: _Failure) -> ImportJobError:
    connection, exc = failure.connection, failure.exc
    if isinstance(exc, socket.gaierror):
        return SourceUnavailableError(
            f"Cannot resolve host {connection.host!r} ({exc.strerror}); check the host of "
            f"{_block_label(connection)} and this machine's DNS."
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SourceRejectedError(_tls_message(failure.where, exc))
    if _is_login_failure(exc):
        return SourceRejectedError(_login_message(failure))
    reason = _path_reason(failure) if failure.path is not None else None
    if reason is not None:
        message = f"Cannot {failure.action} {failure.path!r} on {connection.describe()}: {reason}."
        return SourceRejectedError(f"{message} {failure.fix}".strip())
    if isinstance(exc, ftplib.Error):
        return _ftp_reply_error(failure)
    return _transport_error(failure)


def translate_error(
    connection: FtpConnection,
    exc: BaseException,
    *,
    action: str = "log in",
    path: str | None = None,
    fix: str = "",
) -> ImportJobError:
    """Return the project error for a library error: what failed (DNS, refused, login, TLS...) and the fix."""
    password = connection.password.get_secret_value()
    # No server reply or library text may carry the password into a message; our own wording never does.
    detail = _reason(exc).replace(password, "***") if password else _reason(exc)
    return _classify(_Failure(connection, exc, detail, action, path, fix))


@contextmanager
def _translated(
    connection: FtpConnection, action: str, path: str | None = None, fix: str = ""
) -> Iterator[None]:
    try:
        yield
    except _REMOTE_ERRORS as exc:
        raise translate_error(connection, exc, action=action, path=path, fix=fix) from exc


# --- Protocol backends -----------------------------------------------------------------------------


class _Backend(Protocol):
    def login_dir(self) -> str: ...
    def listdir(self, remote_dir: str) -> list[_Entry]: ...
    def stat(self, remote: str) -> _Entry | None: ...
    def retrieve(self, remote: str, sink: Callable[[bytes], None]) -> None: ...
    def rename(self, source: str, target: str) -> None: ...
    def put_bytes(self, remote: str, payload: bytes) -> None: ...
    def remove(self, remote: str) -> None: ...
    def close(self) -> None: ...


def _parse_facts(text: str) -> dict[str, str]:
    pairs = (fact.partition("=") for fact in text.split(";") if "=" in fact)
    return {key.strip().lower(): value for key, _, value in pairs}


def _kind_from_facts(facts: dict[str, str]) -> EntryKind:
    kind = facts.get("type", "").lower()
    return "file" if kind == "file" else "dir" if kind in {"dir", "cdir", "pdir"} else "other"


class _FtpBackend:
    """FTP and FTPS through ftplib; MLSD/MLST when the server has them, else NLST, SIZE and MDTM."""

    def __init__(self, ftp: ftplib.FTP) -> None:
        self._ftp = ftp
        self._machine_listing = True

    def login_dir(self) -> str:
        return self._ftp.pwd()

    def listdir(self, remote_dir: str) -> list[_Entry]:
        if self._machine_listing:
            try:
                return [self._entry(name, facts, remote_dir) for name, facts in self._ftp.mlsd(remote_dir)]
            except ftplib.error_perm as exc:
                if _reply_code(exc) not in _UNSUPPORTED_REPLIES:
                    raise
                self._machine_listing = False
        names = [posixpath.basename(name.rstrip("/")) for name in self._ftp.nlst(remote_dir)]
        entries = (self._stat_by_size(posixpath.join(remote_dir, name)) for name in names if name)
        return [entry for entry in entries if entry is not None]

    def _entry(self, name: str, facts: dict[str, str], remote_dir: str) -> _Entry:
        kind = _kind_from_facts(facts)
        if kind == "file" and "size" not in facts:
            # A server may leave out the size fact; SIZE then answers for the one file.
            return self._stat_by_size(posixpath.join(remote_dir, name)) or _Entry(name, 0, None, "other")
        return _Entry(name, int(facts.get("size", "0")), _parse_ftp_time(facts.get("modify")), kind)

    def stat(self, remote: str) -> _Entry | None:
        if self._machine_listing:
            try:
                reply = self._ftp.sendcmd(f"MLST {remote}")
            except ftplib.error_perm as exc:
                if _reply_code(exc) not in _UNSUPPORTED_REPLIES:
                    return None
                self._machine_listing = False
            else:
                return self._parse_mlst(reply, remote)
        return self._stat_by_size(remote) or self._stat_dir(remote)

    def _parse_mlst(self, reply: str, remote: str) -> _Entry | None:
        # The facts line is the one that starts with a space (RFC 3659 §7.2).
        for line in reply.splitlines()[1:]:
            if line.startswith(" "):
                facts = _parse_facts(line[1:].partition(" ")[0])
                return self._entry(posixpath.basename(remote), facts, posixpath.dirname(remote))
        return None

    def _stat_by_size(self, remote: str) -> _Entry | None:
        self._ftp.voidcmd("TYPE I")  # many servers refuse SIZE in ASCII mode
        try:
            size = self._ftp.size(remote)
        except ftplib.error_perm:
            return None  # missing, or a folder: SIZE only answers for files
        try:
            modified = _parse_ftp_time(self._ftp.sendcmd(f"MDTM {remote}")[4:].strip())
        except ftplib.error_perm:
            modified = None
        return _Entry(posixpath.basename(remote), size or 0, modified, "file")

    def _stat_dir(self, remote: str) -> _Entry | None:
        here = self._ftp.pwd()
        try:
            self._ftp.cwd(remote)
        except ftplib.error_perm:
            return None
        self._ftp.cwd(here)
        return _Entry(posixpath.basename(remote), 0, None, "dir")

    def retrieve(self, remote: str, sink: Callable[[bytes], None]) -> None:
        self._ftp.retrbinary(f"RETR {remote}", sink, blocksize=CHUNK_BYTES)

    def rename(self, source: str, target: str) -> None:
        self._ftp.rename(source, target)

    def put_bytes(self, remote: str, payload: bytes) -> None:
        self._ftp.storbinary(f"STOR {remote}", io.BytesIO(payload))

    def remove(self, remote: str) -> None:
        self._ftp.delete(remote)

    def close(self) -> None:
        with suppress(*_REMOTE_ERRORS):
            self._ftp.quit()
        self._ftp.close()


class _ReusingFtpTls(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control channel's TLS session on data channels.

    vsftpd and FileZilla Server refuse data connections that do not (``require_ssl_reuse``).
    """

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if isinstance(self.sock, ssl.SSLSocket) and self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


def _sftp_kind(attrs: paramiko.SFTPAttributes) -> EntryKind:
    mode = attrs.st_mode or 0
    return "file" if stat_mode.S_ISREG(mode) else "dir" if stat_mode.S_ISDIR(mode) else "other"


def _sftp_entry(name: str, attrs: paramiko.SFTPAttributes) -> _Entry:
    modified = None if attrs.st_mtime is None else datetime.fromtimestamp(attrs.st_mtime, UTC)
    return _Entry(name, attrs.st_size or 0, modified, _sftp_kind(attrs))


class _SftpBackend:
    """SFTP through paramiko."""

    def __init__(self, transport: paramiko.Transport, sftp: paramiko.SFTPClient) -> None:
        self._transport = transport
        self._sftp = sftp

    def _call(self, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            # paramiko raises a bare OSError both for a server's "failure" status and for a dead socket.
            if exc.errno is None and self._transport.is_active():
                raise _ServerRefusalError(str(exc)) from exc
            raise

    def login_dir(self) -> str:
        return self._call(self._sftp.normalize, ".")

    def listdir(self, remote_dir: str) -> list[_Entry]:
        return [
            _sftp_entry(attrs.filename, attrs) for attrs in self._call(self._sftp.listdir_attr, remote_dir)
        ]

    def stat(self, remote: str) -> _Entry | None:
        try:
            return _sftp_entry(posixpath.basename(remote), self._call(self._sftp.stat, remote))
        except FileNotFoundError:
            return None

    def retrieve(self, remote: str, sink: Callable[[bytes], None]) -> None:
        self._call(self._read_into, remote, sink)

    def _read_into(self, remote: str, sink: Callable[[bytes], None]) -> None:
        with self._sftp.open(remote, "rb") as remote_file:
            # Pipelined reads with a bounded number of requests in flight: fast, and memory stays small.
            remote_file.prefetch(max_concurrent_requests=64)
            while chunk := remote_file.read(CHUNK_BYTES):
                sink(chunk)

    def rename(self, source: str, target: str) -> None:
        self._call(self._sftp.rename, source, target)  # plain SFTP rename never overwrites

    def put_bytes(self, remote: str, payload: bytes) -> None:
        self._call(self._write_new, remote, payload)

    def _write_new(self, remote: str, payload: bytes) -> None:
        with self._sftp.open(remote, "wbx") as remote_file:  # "x": fail rather than overwrite
            remote_file.write(payload)

    def remove(self, remote: str) -> None:
        self._call(self._sftp.remove, remote)

    def close(self) -> None:
        with suppress(*_REMOTE_ERRORS):
            self._sftp.close()
        self._transport.close()


# --- Connecting --------------------------------------------------------------------------------------


def tls_context(connection: FtpConnection) -> ssl.SSLContext:
    """Return the TLS context for FTPS: verifying against `ca_bundle` or the system store by default."""
    try:
        context = ssl.create_default_context(
            cafile=None if connection.insecure_skip_tls_verify else connection.ca_bundle
        )
    except (OSError, ssl.SSLError) as exc:
        raise SourceRejectedError(
            f"Cannot read the CA file {connection.ca_bundle!r} ({_reason(exc)}); set `ca_bundle` of "
            f"{_block_label(connection)} to a readable PEM file."
        ) from exc
    context.check_hostname = connection.tls_verify_hostname and not connection.insecure_skip_tls_verify
    if connection.insecure_skip_tls_verify:
        context.verify_mode = ssl.CERT_NONE
    return context


def _connect_ftp(connection: FtpConnection) -> _FtpBackend:
    timeout = connection.timeout_seconds
    secure = connection.protocol == "ftps"
    ftp = (
        _ReusingFtpTls(context=tls_context(connection), timeout=timeout)
        if secure
        else ftplib.FTP(timeout=timeout)
    )
    try:
        ftp.connect(connection.host, connection.effective_port(), timeout=timeout)
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.auth()
        ftp.login(connection.username, connection.password.get_secret_value())
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()
        ftp.set_pasv(connection.passive)
    except BaseException:
        ftp.close()
        raise
    return _FtpBackend(ftp)


def _host_key_name(connection: FtpConnection) -> str:
    port = connection.effective_port()
    return connection.host if port == 22 else f"[{connection.host}]:{port}"


def _known_hosts(connection: FtpConnection) -> tuple[Path, paramiko.HostKeys]:
    path = Path(connection.known_hosts_file or "~/.ssh/known_hosts").expanduser()
    host_keys = paramiko.HostKeys()
    if connection.known_hosts_file and not path.is_file():
        raise SourceRejectedError(
            f"The known_hosts file {str(path)!r} of {_block_label(connection)} does not exist; create it "
            "or set `host_key_fingerprint` instead."
        )
    if path.is_file():
        host_keys.load(str(path))
    return path, host_keys


def _prefer_known_key_types(transport: paramiko.Transport, known: list[str]) -> None:
    # Ask for the key type we can check; otherwise the server may offer another of its keys.
    options = transport.get_security_options()
    wanted = [alias for kind in known for alias in _KEY_TYPE_ALIASES.get(kind, (kind,))]
    preferred = [kind for kind in wanted if kind in options.key_types]
    options.key_types = tuple(preferred + [kind for kind in options.key_types if kind not in preferred])


def _presented(key: paramiko.PKey) -> str:
    return f"{ssh_fingerprint(key.asbytes())} ({key.get_name()} key)"


def _unknown_host_message(connection: FtpConnection, known_hosts: Path, key: paramiko.PKey) -> str:
    return (
        f"The SSH host key of {_where(connection)} is unknown: it is not in {str(known_hosts)!r} and "
        f"{_block_label(connection)} sets no `host_key_fingerprint`. The server presented "
        f"{_presented(key)}; compare it out of band with `ssh-keygen -lf` on the server, then set "
        f"`host_key_fingerprint: '{ssh_fingerprint(key.asbytes())}'` on the connection block."
    )


def _mismatch_message(connection: FtpConnection, expected: str, key: paramiko.PKey) -> str:
    return (
        f"The SSH host key of {_where(connection)} does not match: expected {expected}, but the server "
        f"presented {_presented(key)}. Someone may be posing as the server; if its key was changed on "
        "purpose, check the new key out of band and update `host_key_fingerprint` of "
        f"{_block_label(connection)}."
    )


def _verify_host_key(
    connection: FtpConnection, key: paramiko.PKey, known: paramiko.HostKeys, path: Path
) -> None:
    actual = ssh_fingerprint(key.asbytes())
    if connection.insecure_accept_any_host_key:
        return
    if connection.host_key_fingerprint is not None:
        if actual != connection.host_key_fingerprint:
            raise SourceRejectedError(_mismatch_message(connection, connection.host_key_fingerprint, key))
        return
    entries = known.lookup(_host_key_name(connection))
    if entries is None:
        raise SourceRejectedError(_unknown_host_message(connection, path, key))
    expected = [ssh_fingerprint(known_key.asbytes()) for known_key in entries.values()]
    if actual not in expected:
        raise SourceRejectedError(_mismatch_message(connection, " or ".join(expected), key))


def _start_sftp(connection: FtpConnection, transport: paramiko.Transport) -> paramiko.SFTPClient:
    timeout = connection.timeout_seconds
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout
    path, known = (
        (Path(), paramiko.HostKeys()) if connection.insecure_accept_any_host_key else _known_hosts(connection)
    )
    entries = known.lookup(_host_key_name(connection))
    if connection.host_key_fingerprint is None and entries is not None:
        _prefer_known_key_types(transport, list(entries.keys()))
    transport.start_client(timeout=timeout)
    _verify_host_key(connection, transport.get_remote_server_key(), known, path)
    transport.auth_password(connection.username, connection.password.get_secret_value())
    sftp = paramiko.SFTPClient.from_transport(transport)
    if sftp is None:
        raise paramiko.SSHException("the server did not start the SFTP subsystem")
    sftp.get_channel().settimeout(timeout)  # type: ignore[union-attr]
    return sftp


def _connect_sftp(connection: FtpConnection) -> _SftpBackend:
    sock = socket.create_connection(
        (connection.host, connection.effective_port()), connection.timeout_seconds
    )
    transport = paramiko.Transport(sock)
    try:
        return _SftpBackend(transport, _start_sftp(connection, transport))
    except BaseException:
        transport.close()
        sock.close()
        # After a failed handshake the transport thread is already on its way out; let it finish.
        if transport.is_alive():
            transport.join(timeout=connection.timeout_seconds)
        raise


def _connect(connection: FtpConnection) -> _Backend:
    with _translated(connection, "log in"):
        return _connect_sftp(connection) if connection.protocol == "sftp" else _connect_ftp(connection)


# --- The session ------------------------------------------------------------------------------------


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

    def _relative(self, path: str) -> str:
        return relative_to_root(self._root, path)

    def _remote(self, relative: str) -> str:
        return posixpath.join(self._root, relative) if relative else self._root

    def _translated(self, action: str, path: str, fix: str) -> AbstractContextManager[None]:
        return _translated(self._connection, action, path, fix)

    def list_files(self, folder: str, pattern: str) -> list[RemoteFile]:
        """Return the plain files directly in `folder` whose names match `pattern`, oldest first."""
        relative = self._relative(folder)
        fix = "Create the folder, grant the user read rights on it, or fix the folder in the job."
        with self._translated("list the folder", relative, fix):
            entries = self._backend.listdir(self._remote(relative))
        matching = [e for e in entries if e.kind == "file" and fnmatch.fnmatchcase(e.name, pattern)]
        files = [file for file in (self._listed_file(relative, entry) for entry in matching) if file]
        return sorted(files, key=_oldest_first)

    def _listed_file(self, folder: str, entry: _Entry) -> RemoteFile | None:
        try:
            path = safe_remote_path(folder, entry.name)
        except BadFileError as exc:
            logger.warning("%s It is skipped.", exc)
            return None
        # A plain file "directly in the folder": a name with slashes that stays inside is still refused.
        return RemoteFile(path, entry.size, entry.modified) if posixpath.dirname(path) == folder else None

    def stat(self, path: str) -> RemoteFile | None:
        """Return the facts of the plain file at `path`, or None when there is none."""
        relative = self._relative(path)
        with self._translated("look up", relative, "Fix the path in the job or the rights on the server."):
            entry = self._backend.stat(self._remote(relative))
        return (
            None
            if entry is None or entry.kind != "file"
            else RemoteFile(relative, entry.size, entry.modified)
        )

    def _require_file(self, relative: str) -> RemoteFile:
        remote = self.stat(relative)
        if remote is None:
            raise SourceRejectedError(
                f"The file {relative!r} does not exist on {self._connection.describe()}; check the path in "
                "the job, or whether another run already moved it."
            )
        return remote

    def download(self, path: str, local_path: Path) -> tuple[RemoteFile, str]:
        """Stream `path` into `local_path`; return its facts and the SHA-256 hex of the bytes written."""
        relative = self._relative(path)
        remote = self._require_file(relative)
        try:
            with local_path.open("wb") as out:
                sink = _HashingSink(out)
                with self._translated("download", relative, "Grant the user read rights on the file."):
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
        with self._translated("move", source_path, fix):
            self._backend.rename(self._remote(source_path), self._remote(target))
        self._verify_move(source, target)
        return target

    def _require_dir(self, folder: str) -> None:
        with self._translated("look up the folder", folder, "Fix the folder in the job."):
            entry = self._backend.stat(self._remote(folder))
        if entry is None or entry.kind != "dir":
            raise SourceRejectedError(
                f"The folder {folder!r} does not exist on {self._connection.describe()}; create it and grant "
                "the user write rights on it, or fix the folder in the job."
            )

    def _free_target(self, folder: str, name: str) -> str:
        for candidate in candidate_names(name, datetime.now(UTC)):
            target = safe_remote_path(folder, candidate)
            with self._translated("look up", target, "Grant the user read rights on the folder."):
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
            with self._translated("write the probe file", probe, fix):
                self._backend.put_bytes(self._remote(probe), b"datahub write probe\n")
            with self._translated("delete the probe file", probe, fix + " Then delete the probe file."):
                self._backend.remove(self._remote(probe))
        except ImportJobError as exc:
            return str(exc)
        return None


@contextmanager
def open_session(connection: FtpConnection) -> Iterator[FileSession]:
    """Log in to the server of `connection`, yield a session on it, and log out at the end."""
    backend = _connect(connection)
    try:
        with _translated(connection, "find the login folder"):
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
    first = session.list_files(folder, pattern)
    second = first
    if settle_seconds > 0:
        time.sleep(settle_seconds)
        second = session.list_files(folder, pattern)
    return classify_listing(first, second, now=datetime.now(UTC), min_age_seconds=min_age_seconds)


# --- Prefect tasks ----------------------------------------------------------------------------------


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
    block = FtpConnection.load(name)
    # `load` is typed for sync and async callers alike; these tasks are sync, so it returned the block.
    if not isinstance(block, FtpConnection):
        raise TypeError(f"block {name!r} did not load as an FtpConnection")
    return block


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=RETRY_DELAYS_SECONDS,
    retry_condition_fn=_retry_when_unavailable,
)
def list_source_files(
    connection: str, folder: str, pattern: str, *, settle_seconds: float, min_age_seconds: float
) -> Listing:
    """Return the files in `folder` matching `pattern`, split into ready and still-growing ones."""
    block = _load_block(connection)
    with open_session(block) as session:
        listing = watch_listing(
            session, folder, pattern, settle_seconds=settle_seconds, min_age_seconds=min_age_seconds
        )
    _run_logger().info(
        "Found %d ready and %d growing files matching %r in %r.",
        len(listing.ready),
        len(listing.growing),
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
def stat_source_file(connection: str, path: str) -> RemoteFile | None:
    """Return the facts of the file at `path`, or None when it is absent."""
    block = _load_block(connection)
    with open_session(block) as session:
        return session.stat(path)


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=RETRY_DELAYS_SECONDS,
    retry_condition_fn=_retry_when_unavailable,
)
def download_file(connection: str, path: str, local_dir: Path) -> Downloaded:
    """Download `path` into `local_dir` under its own (checked) name; return the facts and SHA-256."""
    block = _load_block(connection)
    local_dir.mkdir(parents=True, exist_ok=True)
    local_path = local_dir / local_file_name(path)
    with open_session(block) as session:
        remote, sha256 = session.download(path, local_path)
    _run_logger().info("Downloaded %r (%d bytes, sha256 %s).", remote.path, remote.size, sha256)
    return Downloaded(remote=remote, local_path=local_path, sha256=sha256)


# No retries: if the rename went through but the answer was lost, a retry would move the file twice.
@task(cache_policy=NO_CACHE)
def move_file(connection: str, path: str, dest_dir: str) -> str:
    """Move `path` into `dest_dir` on the same server, never overwriting; return the final path."""
    block = _load_block(connection)
    with open_session(block) as session:
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
