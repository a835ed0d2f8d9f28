"""The connection to a REST API that API import jobs call: base URL, authentication and TLS settings.

The block only holds settings; ``tasks/api/http/`` opens clients with it, attaches the credentials (only
for the API's own host and the hosts listed in ``trusted_hosts``, over https only unless ``base_url`` is
http) and translates errors.
"""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from blocks.masking import basic_pair

AuthMode = Literal["none", "api_key", "bearer", "basic", "oauth2_client_credentials"]

# The fields each authentication mode cannot work without.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "api_key": ("api_key_header", "api_key"),
    "bearer": ("bearer_token",),
    "basic": ("username", "password"),
    "oauth2_client_credentials": ("token_url", "client_id", "client_secret"),
}


class ApiConnection(Block):
    """A REST API's base URL and how to log in to it; credentials go only to its own host."""

    _block_type_name = "API Connection"
    _description = (
        "Base URL and login of a REST API that import jobs call: an API key in a header, a bearer "
        "token, basic or OAuth2 client credentials. TLS certificates are verified by default."
    )

    base_url: str = Field(
        description="Root URL that call paths are relative to, e.g. `https://api.example.com/v1/`."
    )
    auth: AuthMode = Field(
        default="none",
        description="How to log in: none, api_key (a header), bearer, basic or oauth2_client_credentials.",
    )
    api_key_header: str = Field(
        default="X-API-Key", description="api_key: name of the header that carries the API key."
    )
    api_key: SecretStr | None = Field(
        default=None, description="api_key: the API key; never shown or logged."
    )
    bearer_token: SecretStr | None = Field(
        default=None, description="bearer: the token sent as `Authorization: Bearer ...`; never logged."
    )
    username: str | None = Field(default=None, description="basic: user name to log in with.")
    password: SecretStr | None = Field(
        default=None, description="basic: password to log in with; never shown or logged."
    )
    token_url: str | None = Field(
        default=None,
        description="oauth2_client_credentials: URL of the token endpoint, e.g. `https://login.example.com/oauth/token`.",
    )
    client_id: str | None = Field(default=None, description="oauth2_client_credentials: the client id.")
    client_secret: SecretStr | None = Field(
        default=None, description="oauth2_client_credentials: the client secret; never shown or logged."
    )
    scope: str | None = Field(
        default=None,
        description="oauth2_client_credentials: scopes to request, space separated; empty asks for none.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers sent with every request, e.g. `Accept-Language`. Not secret: put keys in `api_key`.",
    )
    timeout_seconds: float = Field(
        default=30.0, gt=0, description="Seconds to wait for each connect, read or write before giving up."
    )
    verify_tls: bool = Field(
        default=True,
        description="Verify the server's TLS certificate. Turn off only for throwaway test servers.",
    )
    ca_bundle: str | None = Field(
        default=None,
        description="Path to a PEM file of CA certificates to trust; empty means the system store.",
    )
    trusted_hosts: list[str] = Field(
        default_factory=list,
        description="Other hosts (`host` or `host:port`) that may receive the credentials, e.g. a file "
        "download host; over https only when `base_url` is https. Any other host gets no credentials.",
    )

    @model_validator(mode="after")
    def _mode_has_its_fields(self) -> ApiConnection:
        missing = [name for name in REQUIRED_FIELDS[self.auth] if not getattr(self, name)]
        if missing:
            raise ValueError(f"auth {self.auth!r} needs `{'`, `'.join(missing)}`: set it on the block")
        return self

    def secret_values(self) -> list[str]:
        """Return the block's secrets for `blocks.masking.mask`, with the Basic pairs they are sent in.

        Basic auth (and the OAuth2 client's login at the token endpoint) sends `user:secret` base64-encoded,
        which the raw secret does not match when a server echoes the header.
        """
        values = [
            s.get_secret_value()
            for s in (self.api_key, self.bearer_token, self.password, self.client_secret)
            if s
        ]
        if self.password:
            values.append(basic_pair(self.username or "", self.password.get_secret_value()))
        if self.client_secret:
            values.append(basic_pair(self.client_id or "", self.client_secret.get_secret_value()))
        return values
