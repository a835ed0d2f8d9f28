"""Credentials for an API's own (and trusted) hosts only, over https unless the base URL itself is http,
masked in every message; OAuth2 tokens; the TLS trust (`tls_verify`) that the client and the token
endpoint share."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Generator

import httpx

from blocks import ApiConnection, basic_pair, mask
from tasks.api.http.status import safe_url, snippet, status_text
from tasks.errors import (
    SourceRejectedError,
    TokenUnavailableError,
)

TOKEN_MARGIN_SECONDS = 30.0


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: httpx.URL) -> tuple[str, int]:
    return url.host.lower(), url.port or DEFAULT_PORTS.get(url.scheme, 0)


def block_label(connection: ApiConnection) -> str:
    """Return how messages name the block: `block 'name'`, or `the connection block` when unsaved."""
    name = connection._block_document_name
    return f"block {name!r}" if name else "the connection block"


class ConnectionAuth(httpx.Auth):
    """Add the block's credentials to requests for its own host and its trusted hosts, never others."""

    def __init__(self, connection: ApiConnection) -> None:
        self.connection = connection
        self.label = block_label(connection)
        base = httpx.URL(connection.base_url)
        self._home = origin(base)
        # An https API gets its credentials over https only: plain http to the same host (another scheme
        # or port, a trusted host, a redirect or a link the server sent) would show them on the wire.
        self._https_only = base.scheme != "http"
        self._trusted = frozenset(host.strip().lower() for host in connection.trusted_hosts if host.strip())
        self._credential_headers = frozenset({"authorization", connection.api_key_header.lower()})
        self._token: tuple[str, float] | None = None  # OAuth2 access token and when to stop using it
        self._lock = threading.Lock()

    def may_receive_credentials(self, url: httpx.URL) -> bool:
        """Return whether `url` is https (unless the base URL is http) and its host (and port) the API's own
        or listed in `trusted_hosts`."""
        if self._https_only and url.scheme != "https":
            return False
        host, port = origin(url)
        return (host, port) == self._home or host in self._trusted or f"{host}:{port}" in self._trusted

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send the request with credentials when its host may have them; renew a rejected OAuth2 token."""
        if not self.may_receive_credentials(request.url):
            yield request
            return
        request.headers.update(self._headers())
        response = yield request
        if response.status_code == 401 and self.connection.auth == "oauth2_client_credentials":
            self._token = None  # revoked or expired early: one more try with a fresh token
            request.headers.update(self._headers())
            yield request

    def strip_foreign_credentials(self, request: httpx.Request) -> None:
        """Remove credential headers from a request (a redirect included) to a host that may not have them."""
        if not self.may_receive_credentials(request.url):
            for name in self._credential_headers:
                request.headers.pop(name, None)

    def mask(self, text: str) -> str:
        """Return `text` with every secret of the block (and the OAuth2 access token) masked."""
        return mask(text, [*self.connection.secret_values(), self._token[0] if self._token else None])

    def _headers(self) -> dict[str, str]:
        c = self.connection
        match c.auth:
            case "api_key" if c.api_key:
                return {c.api_key_header: c.api_key.get_secret_value()}
            case "bearer" if c.bearer_token:
                return {"Authorization": f"Bearer {c.bearer_token.get_secret_value()}"}
            case "basic" if c.password:
                return {
                    "Authorization": "Basic " + basic_pair(c.username or "", c.password.get_secret_value())
                }
            case "oauth2_client_credentials":
                return {"Authorization": f"Bearer {self._access_token()}"}
        return {}

    def _access_token(self) -> str:
        with self._lock:  # one fetch when several requests find the token expired
            if self._token is None or time.monotonic() >= self._token[1]:
                self._token = fetch_oauth2_token(self.connection, self.label, https_only=self._https_only)
            return self._token[0]


def secret_mask(client: httpx.Client) -> Callable[[str], str]:
    """Return the function that masks the client's secrets in a text (none to mask: the text as it is)."""
    auth = client.auth
    return auth.mask if isinstance(auth, ConnectionAuth) else str


def fetch_oauth2_token(connection: ApiConnection, label: str, *, https_only: bool) -> tuple[str, float]:
    """Return a client-credentials access token and the monotonic instant to renew it at.

    `https_only`: the client secret goes over https only (the API's base URL is https).
    """
    url = httpx.URL(connection.token_url or "")
    form = {"grant_type": "client_credentials"} | ({"scope": connection.scope} if connection.scope else {})
    secret = connection.client_secret.get_secret_value() if connection.client_secret else ""
    where = f"POST {safe_url(url)} (OAuth2 token of {label})"
    if https_only and url.scheme != "https":
        raise SourceRejectedError(
            f"{where} was not sent: the client secret goes over https only, as the `base_url` of {label} "
            "is https. Set `token_url` to the https address of the token endpoint."
        )
    try:
        with httpx.Client(timeout=connection.timeout_seconds, verify=tls_verify(connection)) as client:
            response = client.post(url, data=form, auth=(connection.client_id or "", secret))
    except httpx.HTTPError as exc:
        detail = mask(str(exc), connection.secret_values())
        raise TokenUnavailableError(f"{where} failed: {type(exc).__name__} ({detail}).") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TokenUnavailableError(f"{where} answered {status_text(response)}. Run the job again later.")
    token = token_field(response) if response.is_success else None
    if token is None:
        # A careless endpoint echoes the Basic header it refused: the pair is masked with the raw secret.
        echo = snippet(mask(response.text, connection.secret_values()))
        raise SourceRejectedError(
            f"{where} answered {status_text(response)} without an access token: {echo}. Check"
            f" `token_url`, `client_id`, `client_secret` and `scope` of {label}."
        )
    lifetime = expires_in(response)
    return token, time.monotonic() + max(lifetime - min(TOKEN_MARGIN_SECONDS, lifetime / 10), 0.0)


def token_field(response: httpx.Response) -> str | None:
    try:
        token = response.json().get("access_token")
    except (ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and token else None


def expires_in(response: httpx.Response) -> float:
    try:
        return float(response.json().get("expires_in", 3600))
    except (TypeError, ValueError):
        return 3600.0


def tls_verify(connection: ApiConnection) -> ssl.SSLContext | bool:
    """Return httpx's `verify`: off, the system store, or a context trusting the block's CA bundle."""
    if not connection.verify_tls:
        return False
    return ssl.create_default_context(cafile=connection.ca_bundle) if connection.ca_bundle else True
