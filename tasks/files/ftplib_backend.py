"""The FTP and FTPS backend of a file session, through ftplib: TLS context, login, listing and transfers."""

from __future__ import annotations

import ftplib
import io
import posixpath
import socket
import ssl
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

from blocks.ftp import FtpConnection
from tasks.errors import SourceRejectedError
from tasks.files.failures import REMOTE_ERRORS, block_label, reply_code, short_reason
from tasks.files.listing import CHUNK_BYTES, Entry, EntryKind, decode_name, is_utf8

# FTP replies meaning "command not implemented": the server lacks MLSD/MLST, so fall back to NLST/SIZE.
_UNSUPPORTED_REPLIES = frozenset({"500", "502"})


def _parse_ftp_time(value: str | None) -> datetime | None:
    # MLSD/MDTM times are UTC "YYYYMMDDHHMMSS" with optional ".fff" (RFC 3659).
    try:
        return datetime.strptime((value or "")[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_size(value: str) -> int | None:
    # Only plain ASCII digits: int() would also take "+1_000" or non-ASCII digits, which no server means.
    return int(value) if value.isascii() and value.isdigit() else None


def _parse_facts(text: str) -> dict[str, str]:
    pairs = (fact.partition("=") for fact in text.split(";") if "=" in fact)
    return {key.strip().lower(): value for key, _, value in pairs}


def _parse_mlsd_line(line: str) -> tuple[str, dict[str, str]]:
    # "fact=value;fact=value; name" (RFC 3659 §7.2): the name is everything after the first space.
    facts, _, name = line.partition(" ")
    return name, _parse_facts(facts)


def _kind_from_facts(facts: dict[str, str]) -> EntryKind:
    kind = facts.get("type", "").lower()
    return "file" if kind == "file" else "dir" if kind in {"dir", "cdir", "pdir"} else "other"


def entry_from_facts(name: str, facts: dict[str, str]) -> Entry:
    """Return the entry the MLSD/MLST facts describe; a size or time that cannot be read is its problem."""
    kind = _kind_from_facts(facts)
    size_text, time_text = facts.get("size", "0"), facts.get("modify")
    size, modified = _parse_size(size_text), _parse_ftp_time(time_text)
    if size is None:
        problem = f"the server reports its size as {size_text!r}, which is not a number of bytes"
        return Entry(name, 0, None, kind, problem)
    if time_text is not None and modified is None:
        problem = f"the server reports its modification time as {time_text!r}, which is not a time"
        return Entry(name, size, None, kind, problem)
    return Entry(name, size, modified, kind)


class _FtpBackend:
    """FTP and FTPS through ftplib; MLSD/MLST when the server has them, else NLST, SIZE and MDTM."""

    def __init__(self, ftp: ftplib.FTP) -> None:
        self._ftp = ftp
        self._machine_listing = True

    def login_dir(self) -> str:
        return self._ftp.pwd()

    def listdir(self, remote_dir: str) -> list[Entry]:
        if self._machine_listing:
            try:
                lines = self._data_lines(f"MLSD {remote_dir}")
            except ftplib.error_perm as exc:
                if reply_code(exc) not in _UNSUPPORTED_REPLIES:
                    raise
                self._machine_listing = False
            else:
                return [self._entry(*_parse_mlsd_line(line), remote_dir) for line in lines]
        names = [posixpath.basename(name.rstrip("/")) for name in self._data_lines(f"NLST {remote_dir}")]
        entries = (self._named_entry(remote_dir, name) for name in names if name)
        return [entry for entry in entries if entry is not None]

    def _data_lines(self, command: str) -> list[str]:
        """Run a listing command; return its lines, with names that are not UTF-8 kept (`decode_name`).

        ftplib's own `mlsd`/`nlst` decode strictly: one such name would fail the whole listing.
        """
        self._ftp.voidcmd("TYPE A")
        lines: list[str] = []
        with self._ftp.transfercmd(command) as conn, conn.makefile("rb") as data:
            while line := data.readline(self._ftp.maxline + 1):
                if len(line) > self._ftp.maxline:
                    raise ftplib.Error(f"got more than {self._ftp.maxline} bytes in one listing line")
                lines.append(decode_name(line.rstrip(b"\r\n")))
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()  # close the TLS layer cleanly, as ftplib does after a transfer
        self._ftp.voidresp()
        return [line for line in lines if line]

    def _named_entry(self, remote_dir: str, name: str) -> Entry | None:
        if not is_utf8(name):
            return Entry(name, 0, None, "file")  # cannot be sent back to ask SIZE; the session skips it
        return self._stat_by_size(posixpath.join(remote_dir, name))

    def _entry(self, name: str, facts: dict[str, str], remote_dir: str) -> Entry:
        if _kind_from_facts(facts) == "file" and "size" not in facts and is_utf8(name):
            # A server may leave out the size fact; SIZE then answers for the one file.
            return self._stat_by_size(posixpath.join(remote_dir, name)) or Entry(name, 0, None, "other")
        return entry_from_facts(name, facts)

    def stat(self, remote: str) -> Entry | None:
        if self._machine_listing:
            try:
                reply = self._ftp.sendcmd(f"MLST {remote}")
            except ftplib.error_perm as exc:
                if reply_code(exc) not in _UNSUPPORTED_REPLIES:
                    return None
                self._machine_listing = False
            else:
                return self._parse_mlst(reply, remote)
        return self._stat_by_size(remote) or self._stat_dir(remote)

    def _parse_mlst(self, reply: str, remote: str) -> Entry | None:
        # The facts line is the one that starts with a space (RFC 3659 §7.2).
        for line in reply.splitlines()[1:]:
            if line.startswith(" "):
                facts = _parse_facts(line[1:].partition(" ")[0])
                return self._entry(posixpath.basename(remote), facts, posixpath.dirname(remote))
        return None

    def _stat_by_size(self, remote: str) -> Entry | None:
        self._ftp.voidcmd("TYPE I")  # many servers refuse SIZE in ASCII mode
        try:
            reply = self._ftp.sendcmd(f"SIZE {remote}")
        except ftplib.error_perm:
            return None  # missing, or a folder: SIZE only answers for files
        try:
            modified = _parse_ftp_time(self._ftp.sendcmd(f"MDTM {remote}")[4:].strip())
        except ftplib.error_perm:
            modified = None
        name, size_text = posixpath.basename(remote), reply[4:].strip()
        size = _parse_size(size_text)
        if size is None:
            problem = f"the server answers its size as {size_text!r}, which is not a number of bytes"
            return Entry(name, 0, modified, "file", problem)
        return Entry(name, size, modified, "file")

    def _stat_dir(self, remote: str) -> Entry | None:
        here = self._ftp.pwd()
        try:
            self._ftp.cwd(remote)
        except ftplib.error_perm:
            return None
        self._ftp.cwd(here)
        return Entry(posixpath.basename(remote), 0, None, "dir")

    def retrieve(self, remote: str, sink: Callable[[bytes], None]) -> None:
        self._ftp.retrbinary(f"RETR {remote}", sink, blocksize=CHUNK_BYTES)

    def rename(self, source: str, target: str) -> None:
        self._ftp.rename(source, target)

    def mkdir(self, remote: str) -> None:
        self._ftp.mkd(remote)

    def put_bytes(self, remote: str, payload: bytes) -> None:
        self._ftp.storbinary(f"STOR {remote}", io.BytesIO(payload))

    def remove(self, remote: str) -> None:
        self._ftp.delete(remote)

    def close(self) -> None:
        with suppress(*REMOTE_ERRORS):
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


def tls_context(connection: FtpConnection) -> ssl.SSLContext:
    """Return the TLS context for FTPS: verifying against `ca_bundle` or the system store by default."""
    try:
        context = ssl.create_default_context(
            cafile=None if connection.insecure_skip_tls_verify else connection.ca_bundle
        )
    except (OSError, ssl.SSLError) as exc:
        raise SourceRejectedError(
            f"Cannot read the CA file {connection.ca_bundle!r} ({short_reason(exc, connection.secret_values())}); set `ca_bundle` of "
            f"{block_label(connection)} to a readable PEM file."
        ) from exc
    context.check_hostname = connection.tls_verify_hostname and not connection.insecure_skip_tls_verify
    if connection.insecure_skip_tls_verify:
        context.verify_mode = ssl.CERT_NONE
    return context


def connect_ftp(connection: FtpConnection) -> _FtpBackend:
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
