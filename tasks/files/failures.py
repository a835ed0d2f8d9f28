"""Translate ftplib, paramiko, ssl and socket errors, once, into the error tree of ``tasks.errors``."""

from __future__ import annotations

import ftplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from blocks import FtpConnection, mask
from tasks.errors import ImportJobError, SourceRejectedError, SourceUnavailableError

# Errors the transport libraries raise for network, protocol and server answers; anything else is a bug.
REMOTE_ERRORS = (OSError, EOFError, ftplib.Error, paramiko.SSHException)


class ServerRefusalError(OSError):
    """An SFTP server answered a request with a plain failure status (no errno), not a dead socket."""


def server_address(connection: FtpConnection) -> str:
    return f"{connection.host}:{connection.effective_port()}"


def block_label(connection: FtpConnection) -> str:
    name = connection._block_document_name
    return f"block {name!r}" if name else "the connection block"


def short_reason(exc: BaseException, secrets: list[str]) -> str:
    # Masked before it is cut: a secret cut in half at the end would no longer match.
    text = mask(str(exc), secrets).strip().rstrip(".") or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def reply_code(exc: BaseException) -> str:
    return str(exc)[:3]


def _is_login_failure(exc: BaseException) -> bool:
    if isinstance(exc, paramiko.AuthenticationException):
        return True
    return isinstance(exc, ftplib.error_perm) and reply_code(exc) == "530"


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
    if isinstance(failure.exc, ServerRefusalError | ftplib.error_perm):
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
            f" Check the protocol ({failure.connection.protocol}) and port of {block_label(failure.connection)}."
            if failure.action == "log in"
            else ""
        )
        return SourceRejectedError(
            f"The server at {failure.where} refused to {failure.action}: {failure.detail!r}.{hint}"
        )
    return SourceRejectedError(
        f"The server at {failure.where} answered {failure.detail!r}, which is not "
        f"{failure.connection.protocol.upper()}; check the protocol and port of "
        f"{block_label(failure.connection)}."
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
        f"({failure.detail}); check the username and password of {block_label(connection)}."
    )


def _classify(failure: _Failure) -> ImportJobError:
    connection, exc = failure.connection, failure.exc
    if isinstance(exc, socket.gaierror):
        return SourceUnavailableError(
            f"Cannot resolve host {connection.host!r} ({exc.strerror}); check the host of "
            f"{block_label(connection)} and this machine's DNS."
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
    # No server reply or library text may carry the password into a message; our own wording never does.
    detail = short_reason(exc, connection.secret_values())
    return _classify(_Failure(connection, exc, detail, action, path, fix))


@contextmanager
def translated(
    connection: FtpConnection, action: str, path: str | None = None, fix: str = ""
) -> Iterator[None]:
    try:
        yield
    except REMOTE_ERRORS as exc:
        raise translate_error(connection, exc, action=action, path=path, fix=fix) from exc
