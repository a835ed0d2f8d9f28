"""Real FTP, FTPS and SFTP servers on 127.0.0.1 for tests: pyftpdlib and asyncssh, each in a thread.

Load with ``pytest_plugins = ["tests.fixtures_servers"]``. Each server logs in ``importer`` with
``s3cret-ftp-pw`` and serves its own folder; the folder ``locked`` in it can be read but not written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import posixpath
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from blocks.ftp import FtpConnection

USERNAME = "importer"
PASSWORD = "s3cret-ftp-pw"
HOST = "127.0.0.1"
READ_ONLY_DIR = "locked"
FULL_PERMS = "elradfmwMT"
READ_PERMS = "elr"


@dataclass(frozen=True, kw_only=True)
class LocalFtp:
    """A running FTP or FTPS server; `ca_bundle` is the PEM of the CA that signed its certificate."""

    host: str
    port: int
    root: Path
    username: str
    password: str
    protocol: str = "ftp"
    ca_bundle: str | None = None


@dataclass(frozen=True, kw_only=True)
class LocalSftp:
    """A running SFTP server with its host key's fingerprint and a known_hosts file that lists it."""

    host: str
    port: int
    root: Path
    username: str
    password: str
    protocol: str = "sftp"
    host_key_fingerprint: str
    known_hosts_path: str


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""

    ca_pem: Path
    server_pem: Path


def make_block(server: LocalFtp | LocalSftp, **overrides: Any) -> FtpConnection:
    """Return a block for `server` with verification set up (CA bundle or host key fingerprint)."""
    fields: dict[str, Any] = {
        "protocol": server.protocol,
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "timeout_seconds": 5.0,
    }
    if isinstance(server, LocalFtp):
        fields["ca_bundle"] = server.ca_bundle
    else:
        fields["host_key_fingerprint"] = server.host_key_fingerprint
    return FtpConnection(**(fields | overrides))


def _prepare_root(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / READ_ONLY_DIR).mkdir(exist_ok=True)


# --- TLS material ----------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey], ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer[0]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


def make_tls_files(folder: Path) -> TlsFiles:
    """Write a throwaway CA certificate and a server certificate plus key for 127.0.0.1 into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("Data Hub test CA", ca_key, ("Data Hub test CA", ca_key), ca=True)
    server_cert = _certificate(HOST, server_key, ("Data Hub test CA", ca_key), ca=False)
    files = TlsFiles(folder / "ca.pem", folder / "server.pem")
    files.ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    files.server_pem.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM) + key_pem)
    return files


# --- FTP and FTPS (pyftpdlib) ----------------------------------------------------------------------


def _cutting_dtp(base: type[DTPHandler], cut_after_bytes: int) -> type[DTPHandler]:
    def send(self: Any, payload: bytes) -> int:
        sent: int = base.send(self, payload)
        if self.tot_bytes_sent >= cut_after_bytes:
            self.handle_close()  # as if the server died mid-transfer: 426 and a closed data socket
        return sent

    return type("CuttingDTPHandler", (base,), {"send": send})


def _ftp_handler(
    root: Path, tls: TlsFiles | None, cut_after_bytes: int | None, mlsd: bool, extra: dict[str, Any]
) -> type:
    authorizer = DummyAuthorizer()
    authorizer.add_user(USERNAME, PASSWORD, str(root), perm=FULL_PERMS)
    authorizer.override_perm(USERNAME, str(root / READ_ONLY_DIR), perm=READ_PERMS, recursive=True)
    base: type[FTPHandler] = TLS_FTPHandler if tls else FTPHandler
    # pyftpdlib keeps handler settings on the class, so each server gets its own subclass.
    attrs: dict[str, Any] = {"authorizer": authorizer, "auth_failed_timeout": 0, "use_sendfile": False}
    if tls:
        attrs |= {"certfile": str(tls.server_pem), "tls_control_required": True, "tls_data_required": True}
    if cut_after_bytes is not None:
        attrs["dtp_handler"] = _cutting_dtp(base.dtp_handler, cut_after_bytes)
    if not mlsd:
        attrs["proto_cmds"] = {k: v for k, v in base.proto_cmds.items() if k not in {"MLSD", "MLST"}}
    return type("LocalFtpHandler", (base,), attrs | extra)


@contextmanager
def serve_ftp(
    root: Path,
    *,
    tls: TlsFiles | None = None,
    cut_after_bytes: int | None = None,
    mlsd: bool = True,
    handler_attrs: dict[str, Any] | None = None,
) -> Iterator[LocalFtp]:
    """Run a pyftpdlib server on 127.0.0.1 serving `root` (FTPS when `tls` is given) until exit.

    `handler_attrs` go onto the handler class as they are: hooks such as `on_file_sent`, a
    `ftp_MLST` override, an `abstracted_fs` class or `unicode_errors`.
    """
    _prepare_root(root)
    handler = _ftp_handler(root, tls, cut_after_bytes, mlsd, handler_attrs or {})
    # Its own IOLoop: the default one is a process-wide singleton that close_all() would tear down.
    server = FTPServer((HOST, 0), handler, ioloop=IOLoop())
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)

    thread = threading.Thread(target=serve, name="local-ftp", daemon=True)
    thread.start()
    protocol, ca_bundle = ("ftps", str(tls.ca_pem)) if tls else ("ftp", None)
    try:
        yield LocalFtp(
            host=HOST, port=server.address[1], root=root, username=USERNAME, password=PASSWORD,
            protocol=protocol, ca_bundle=ca_bundle,
        )  # fmt: skip
    finally:
        stopping.set()
        thread.join()
        server.close_all()


# --- SFTP (asyncssh) -------------------------------------------------------------------------------


def _inside(path: bytes, folder: str) -> bool:
    normalized = posixpath.normpath("/" + path.decode("utf-8", "surrogateescape").lstrip("/"))
    return normalized == "/" + folder or normalized.startswith(f"/{folder}/")


class _LocalSftpServer(asyncssh.SFTPServer):  # type: ignore[misc]
    """Chrooted SFTP that refuses writes under the read-only folder and can drop mid-download."""

    cut_after_bytes: int | None = None

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        writing = pflags & (
            asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_APPEND | asyncssh.FXF_TRUNC
        )
        if writing and _inside(path, READ_ONLY_DIR):
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        return super().open(path, pflags, attrs)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        if _inside(oldpath, READ_ONLY_DIR) or _inside(newpath, READ_ONLY_DIR):
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        super().rename(oldpath, newpath)

    def remove(self, path: bytes) -> None:
        if _inside(path, READ_ONLY_DIR):
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        super().remove(path)

    def read(self, file_obj: object, offset: int, size: int) -> Any:
        if self.cut_after_bytes is not None and offset >= self.cut_after_bytes:
            self.connection.abort()  # as if the server died mid-transfer
            raise asyncssh.SFTPConnectionLost("connection dropped")
        return super().read(file_obj, offset, size)


class _PasswordServer(asyncssh.SSHServer):  # type: ignore[misc]
    """Password login for the one test user; remembers its connection so shutdown can close it."""

    def __init__(self, connections: set[asyncssh.SSHServerConnection]) -> None:
        self._connections = connections
        self._connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        self._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self._connection)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USERNAME and password == PASSWORD


class _SftpThread:
    """An asyncssh server on its own event loop in a daemon thread."""

    def __init__(self, root: Path, host_key: asyncssh.SSHKey, cut_after_bytes: int | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.connections: set[asyncssh.SSHServerConnection] = set()
        server_class = type("SftpServer", (_LocalSftpServer,), {"cut_after_bytes": cut_after_bytes})
        self._options = {
            "server_host_keys": [host_key],
            "server_factory": lambda: _PasswordServer(self.connections),
            "sftp_factory": lambda chan: server_class(chan, chroot=str(root).encode()),
            "allow_scp": False,
        }
        self._thread = threading.Thread(target=self.loop.run_forever, name="local-sftp", daemon=True)
        self._acceptor: asyncssh.SSHAcceptor | None = None

    def start(self) -> int:
        self._thread.start()
        self._acceptor = self._run(self._listen())
        port: int = self._acceptor.get_port()
        return port

    async def _listen(self) -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(HOST, 0, **self._options)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    async def _close_connections(self) -> None:
        for conn in list(self.connections):
            conn.close()
            await conn.wait_closed()

    async def _settle(self) -> list[asyncio.Task[Any]]:
        # Closing a connection takes a few loop turns: close what appears until a turn finds nothing.
        others: list[asyncio.Task[Any]] = []
        for _ in range(100):
            await asyncio.sleep(0.01)
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            if not others and not self.connections:
                break
            await self._close_connections()
        return others

    async def _shutdown(self) -> None:
        assert self._acceptor is not None
        # Stop accepting before closing: on Python 3.11 a connection whose accept is still in flight
        # when the server closes is never closed (Server._attach asserts), and leaks its socket.
        for listening in self._acceptor.sockets:
            self.loop.remove_reader(listening.fileno())
        await self._settle()
        self._acceptor.close()
        await self._acceptor.wait_closed()
        # Let no task outlive the loop: a pending task at close() warns, and warnings are errors.
        others = await self._settle()
        for pending in others:
            pending.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def stop(self) -> None:
        try:
            self._run(self._shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()


@contextmanager
def serve_sftp(
    root: Path, host_key: asyncssh.SSHKey, *, cut_after_bytes: int | None = None
) -> Iterator[LocalSftp]:
    """Run an asyncssh SFTP server on 127.0.0.1, chrooted to `root`, until exit."""
    _prepare_root(root)
    server = _SftpThread(root, host_key, cut_after_bytes)
    port = server.start()
    known_hosts = root.parent / f"known_hosts-{port}"
    public_key = host_key.export_public_key("openssh").decode("ascii").strip()
    known_hosts.write_text(f"[{HOST}]:{port} {public_key}\n")
    try:
        yield LocalSftp(
            host=HOST, port=port, root=root, username=USERNAME, password=PASSWORD,
            host_key_fingerprint=host_key.get_fingerprint("sha256"), known_hosts_path=str(known_hosts),
        )  # fmt: skip
    finally:
        server.stop()


# --- Fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA and server certificate, made once per test session."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def sftp_host_key() -> asyncssh.SSHKey:
    """The SFTP servers' host key, made once per test session."""
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[LocalFtp]:
    """A plain FTP server on 127.0.0.1 serving `tmp_path / "ftp"`."""
    with serve_ftp(tmp_path / "ftp") as server:
        yield server


@pytest.fixture
def ftps_server(tmp_path: Path, tls_files: TlsFiles) -> Iterator[LocalFtp]:
    """An FTPS server (explicit TLS required on control and data) serving `tmp_path / "ftps"`."""
    with serve_ftp(tmp_path / "ftps", tls=tls_files) as server:
        yield server


@pytest.fixture
def sftp_server(tmp_path: Path, sftp_host_key: asyncssh.SSHKey) -> Iterator[LocalSftp]:
    """An SFTP server chrooted to `tmp_path / "sftp"`, with a generated host key."""
    with serve_sftp(tmp_path / "sftp", sftp_host_key) as server:
        yield server
