"""The connection to a file server that CSV import jobs read from: FTP, FTPS or SFTP.

The block only holds settings; ``tasks/files/failures.py`` opens sessions with it and translates errors.
TLS certificates (FTPS) and host keys (SFTP) are verified unless an ``insecure_*`` field opts out.
"""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

Protocol = Literal["ftp", "ftps", "sftp"]

DEFAULT_PORTS: dict[str, int] = {"ftp": 21, "ftps": 21, "sftp": 22}


class FtpConnection(Block):
    """A login to an FTP, FTPS (explicit TLS) or SFTP server, optionally rooted at a folder."""

    _block_type_name = "FTP Connection"
    _description = (
        "Login to an FTP, FTPS (explicit TLS) or SFTP server that import jobs read CSV files from. "
        "Certificates and host keys are verified by default."
    )

    protocol: Protocol = Field(
        default="sftp",
        description="Transfer protocol: sftp (SSH), ftps (FTP with explicit TLS, AUTH TLS) or plain ftp.",
    )
    host: str = Field(description="Host name or IP address of the server.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="TCP port; empty means the protocol's default (21 for ftp and ftps, 22 for sftp).",
    )
    username: str = Field(description="User name to log in with.")
    password: SecretStr = Field(description="Password to log in with; never shown or logged.")
    passive: bool = Field(default=True, description="Use passive mode for FTP and FTPS data connections.")
    timeout_seconds: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the server before giving up on a connection."
    )
    root_dir: str = Field(
        default="",
        description="Folder on the server that all job paths are relative to; empty means the login folder.",
    )
    ca_bundle: str | None = Field(
        default=None,
        description="FTPS: path to a PEM file of CA certificates to trust; empty means the system store.",
    )
    tls_verify_hostname: bool = Field(
        default=True, description="FTPS: check that the server certificate names the host."
    )
    insecure_skip_tls_verify: bool = Field(
        default=False,
        description="FTPS: accept any certificate. Only for throwaway test servers: anyone could listen in.",
    )
    host_key_fingerprint: str | None = Field(
        default=None,
        description="SFTP: expected host key fingerprint as `ssh-keygen -lf` prints it, e.g. 'SHA256:...'.",
    )
    known_hosts_file: str | None = Field(
        default=None,
        description="SFTP: known_hosts file to check the host key against; empty means ~/.ssh/known_hosts.",
    )
    insecure_accept_any_host_key: bool = Field(
        default=False,
        description="SFTP: accept any host key. Only for throwaway test servers: anyone could pose as it.",
    )

    @field_validator("host_key_fingerprint")
    @classmethod
    def _fingerprint_is_sha256(cls, value: str | None) -> str | None:
        # Only the SHA256 form is compared; an MD5 "aa:bb:..." value would never match and fail late.
        if value is not None and not value.strip().startswith("SHA256:"):
            raise ValueError("give the fingerprint in the form `ssh-keygen -lf` prints: 'SHA256:...'")
        return None if value is None else value.strip().rstrip("=")

    def effective_port(self) -> int:
        """Return the configured port, or the protocol's default when none is set."""
        return self.port if self.port is not None else DEFAULT_PORTS[self.protocol]

    def secret_values(self) -> list[str]:
        """Return the block's secrets for `blocks.masking.mask`: the password."""
        return [self.password.get_secret_value()]

    def describe(self) -> str:
        """Return a URL-like label for messages, e.g. ``sftp://user@host:22/root``, without the password."""
        root = "/" + self.root_dir.strip("/") if self.root_dir.strip("/") else ""
        return f"{self.protocol}://{self.username}@{self.host}:{self.effective_port()}{root}"
