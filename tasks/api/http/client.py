"""An httpx client built from an ``ApiConnection`` block: base URL, TLS, auth, timeouts; quiet httpx logs."""

from __future__ import annotations

import logging

import httpx

from blocks.api import ApiConnection
from tasks.api.http.auth import ConnectionAuth, tls_verify


def quiet_http_logs() -> None:
    """Silence httpx's and httpcore's INFO lines: they print every URL, query string (and keys) included."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


quiet_http_logs()


def open_client(connection: ApiConnection) -> httpx.Client:
    """Return a client for the API: base URL, timeout, TLS, default headers and host-bound credentials."""
    quiet_http_logs()  # again: a logging setup run after import may have reset the levels
    auth = ConnectionAuth(connection)
    return httpx.Client(
        base_url=connection.base_url,
        auth=auth,
        headers=connection.headers,
        timeout=connection.timeout_seconds,
        verify=tls_verify(connection),
        follow_redirects=True,
        # httpx re-sends the first request's headers on a redirect and strips only `Authorization`
        # across origins; this hook also runs for every redirect and removes the API key header too.
        event_hooks={"request": [auth.strip_foreign_credentials]},
    )
