"""The SFTP backend of a file session, through paramiko: host key checks, login, listing and transfers."""

from __future__ import annotations

import base64
import hashlib
import posixpath
import socket
import stat as stat_mode
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

from blocks.ftp import FtpConnection
from tasks.errors import SourceRejectedError
from tasks.files.failures import REMOTE_ERRORS, ServerRefusalError, block_label, server_address
from tasks.files.listing import CHUNK_BYTES, Entry, EntryKind, decode_name

# A known_hosts "ssh-rsa" key is offered by servers under these signature algorithms too.
_KEY_TYPE_ALIASES = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}

_P = ParamSpec("_P")
_T = TypeVar("_T")


def ssh_fingerprint(key_blob: bytes) -> str:
    """Return the `SHA256:...` fingerprint of an SSH public key blob, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _sftp_kind(attrs: paramiko.SFTPAttributes) -> EntryKind:
    mode = attrs.st_mode or 0
    return "file" if stat_mode.S_ISREG(mode) else "dir" if stat_mode.S_ISDIR(mode) else "other"


def _sftp_entry(name: str, attrs: paramiko.SFTPAttributes) -> Entry:
    modified = None if attrs.st_mtime is None else datetime.fromtimestamp(attrs.st_mtime, UTC)
    return Entry(name, attrs.st_size or 0, modified, _sftp_kind(attrs))


def _read_dir(sftp: paramiko.SFTPClient, remote_dir: str) -> list[tuple[str, paramiko.SFTPAttributes]]:
    """List `remote_dir` as `SFTPClient.listdir_attr` does, but keep names that are not UTF-8.

    paramiko decodes each name (and its `ls -l` line) strictly: one such name would fail the whole
    listing. This reads them as bytes (`decode_name`), through the client's request methods.
    """
    kind, reply = sftp._request(CMD_OPENDIR, sftp._adjust_cwd(remote_dir))  # type: ignore[attr-defined]
    if kind != CMD_HANDLE:
        raise paramiko.SSHException("the server answered OPENDIR without a handle")
    handle = reply.get_binary()
    entries: list[tuple[str, paramiko.SFTPAttributes]] = []
    while (batch := _read_dir_batch(sftp, handle)) is not None:
        entries += batch
    sftp._request(CMD_CLOSE, handle)  # type: ignore[attr-defined]
    return [(name, attrs) for name, attrs in entries if name not in {".", ".."}]


def _read_dir_batch(
    sftp: paramiko.SFTPClient, handle: bytes
) -> list[tuple[str, paramiko.SFTPAttributes]] | None:
    try:
        kind, reply = sftp._request(CMD_READDIR, handle)  # type: ignore[attr-defined]
    except EOFError:
        return None  # the server's "end of folder" status
    if kind != CMD_NAME:
        raise paramiko.SSHException("the server answered READDIR without names")
    batch = []
    for _ in range(reply.get_int()):
        name, long_name = decode_name(reply.get_binary()), decode_name(reply.get_binary())
        batch.append((name, paramiko.SFTPAttributes._from_msg(reply, name, long_name)))  # type: ignore[attr-defined]
    return batch


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
                raise ServerRefusalError(str(exc)) from exc
            raise

    def login_dir(self) -> str:
        return self._call(self._sftp.normalize, ".")

    def listdir(self, remote_dir: str) -> list[Entry]:
        return [_sftp_entry(name, attrs) for name, attrs in self._call(_read_dir, self._sftp, remote_dir)]

    def stat(self, remote: str) -> Entry | None:
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

    def mkdir(self, remote: str) -> None:
        self._call(self._sftp.mkdir, remote)

    def put_bytes(self, remote: str, payload: bytes) -> None:
        self._call(self._write_new, remote, payload)

    def _write_new(self, remote: str, payload: bytes) -> None:
        with self._sftp.open(remote, "wbx") as remote_file:  # "x": fail rather than overwrite
            remote_file.write(payload)

    def remove(self, remote: str) -> None:
        self._call(self._sftp.remove, remote)

    def close(self) -> None:
        with suppress(*REMOTE_ERRORS):
            self._sftp.close()
        self._transport.close()


def _host_key_name(connection: FtpConnection) -> str:
    port = connection.effective_port()
    return connection.host if port == 22 else f"[{connection.host}]:{port}"


def _known_hosts(connection: FtpConnection) -> tuple[Path, paramiko.HostKeys]:
    path = Path(connection.known_hosts_file or "~/.ssh/known_hosts").expanduser()
    host_keys = paramiko.HostKeys()
    if connection.known_hosts_file and not path.is_file():
        raise SourceRejectedError(
            f"The known_hosts file {str(path)!r} of {block_label(connection)} does not exist; create it "
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
        f"The SSH host key of {server_address(connection)} is unknown: it is not in {str(known_hosts)!r} and "
        f"{block_label(connection)} sets no `host_key_fingerprint`. The server presented "
        f"{_presented(key)}; compare it out of band with `ssh-keygen -lf` on the server, then set "
        f"`host_key_fingerprint: '{ssh_fingerprint(key.asbytes())}'` on the connection block."
    )


def _mismatch_message(connection: FtpConnection, expected: str, key: paramiko.PKey) -> str:
    return (
        f"The SSH host key of {server_address(connection)} does not match: expected {expected}, but the server "
        f"presented {_presented(key)}. Someone may be posing as the server; if its key was changed on "
        "purpose, check the new key out of band and update `host_key_fingerprint` of "
        f"{block_label(connection)}."
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


def connect_sftp(connection: FtpConnection) -> _SftpBackend:
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
