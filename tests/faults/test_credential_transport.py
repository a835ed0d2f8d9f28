"""Credentials travel over https only, unless the API block's base URL itself is http.

A real local server speaks https and plain http on the same port (it looks at the first byte a client
sends: a TLS handshake starts with 0x16), so a request to the API's own host and port under the other
scheme reaches it, and it records every request with the headers it carried. An https API block's
API key, bearer token and OAuth2 client secret must never arrive over plain http: not by a redirect,
not to a trusted host, not by an absolute URL, not to an http token endpoint.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from blocks.api import ApiConnection
from tasks.api.http import open_client, send
from tasks.errors import SourceRejectedError
from tests.fixtures_servers import TlsFiles

API_KEY = "Api-K3y-over-https-only"
BEARER = "B3arer-over-https-only"
CLIENT_SECRET = "Cl1ent-S3cret-over-https-only"
CREDENTIALS = (API_KEY, BEARER, CLIENT_SECRET)


@dataclass
class Seen:
    scheme: str
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class DualServer:
    """https and http on one port of 127.0.0.1; `/products` over https redirects to `redirect_to` if set."""

    port: int
    seen: list[Seen] = field(default_factory=list)
    redirect_to: str | None = None

    def url(self, scheme: str, path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def plain_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.scheme == "http"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass

    def _answer(self) -> None:
        state = self.server.state
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("latin-1") if length else ""
        state.seen.append(Seen(scheme, self.command, self.path, dict(self.headers) | {"body": body}))
        if scheme == "https" and self.path == "/products" and state.redirect_to:
            self.send_response(302)
            self.send_header("Location", state.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = (
            {"access_token": "T0ken-issued", "expires_in": 3600} if self.path == "/token" else {"items": []}
        )
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer  # noqa: N815 (http.server's names)
    do_POST = _answer  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.state = DualServer(port=int(self.server_address[1]))

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.settimeout(5)
        try:
            tls = sock.recv(1, socket.MSG_PEEK) == b"\x16"
            return (self.context.wrap_socket(sock, server_side=True) if tls else sock), address
        except OSError:
            sock.close()
            raise


@pytest.fixture
def dual_servers(tls_files: TlsFiles) -> Iterator[tuple[DualServer, DualServer]]:
    """Two https-and-http servers on 127.0.0.1, on two ports."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files.server_pem)
    servers = [_Server(context), _Server(context)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield servers[0].state, servers[1].state
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _connection(base_url: str, tls_files: TlsFiles, auth: str, **fields: Any) -> ApiConnection:
    credentials: dict[str, dict[str, Any]] = {
        "api_key": {"api_key": SecretStr(API_KEY)},
        "bearer": {"bearer_token": SecretStr(BEARER)},
        "oauth2_client_credentials": {"client_id": "hub", "client_secret": SecretStr(CLIENT_SECRET)},
    }
    return ApiConnection(
        base_url=base_url,
        auth=auth,
        ca_bundle=str(tls_files.ca_pem),
        timeout_seconds=5,
        **credentials[auth],
        **fields,
    )


def _credentials_in(seen: list[Seen]) -> list[str]:
    text = json.dumps([s.headers for s in seen])
    found = [c for c in CREDENTIALS if c in text]
    return found + [f"{s.path}: Authorization" for s in seen if "Authorization" in s.headers]


def test_an_https_api_key_is_not_sent_after_a_redirect_to_http_on_the_same_port(
    dual_servers: tuple[DualServer, DualServer], tls_files: TlsFiles
) -> None:
    server, _ = dual_servers
    server.redirect_to = server.url("http", "plain")
    with open_client(_connection(server.url("https"), tls_files, "api_key")) as client:
        send(client, "GET", "products")
    assert server.seen[0].scheme == "https"
    assert server.seen[0].headers.get("X-API-Key") == API_KEY
    assert [s.path for s in server.plain_requests()] == ["/plain"]
    assert _credentials_in(server.plain_requests()) == []


def test_an_https_api_key_is_not_sent_to_a_trusted_host_over_http(
    dual_servers: tuple[DualServer, DualServer], tls_files: TlsFiles
) -> None:
    server, other = dual_servers
    server.redirect_to = other.url("http", "files")
    block = _connection(server.url("https"), tls_files, "api_key", trusted_hosts=["127.0.0.1"])
    with open_client(block) as client:
        send(client, "GET", "products")
        send(client, "GET", other.url("https", "files"))  # the trusted host over https still gets it
    assert [s.path for s in other.plain_requests()] == ["/files"]
    assert _credentials_in(other.plain_requests()) == []
    assert [s.headers.get("X-API-Key") for s in other.seen if s.scheme == "https"] == [API_KEY]


def test_an_https_bearer_token_is_not_sent_to_an_http_url_of_the_base_host(
    dual_servers: tuple[DualServer, DualServer], tls_files: TlsFiles
) -> None:
    server, _ = dual_servers
    with open_client(_connection(server.url("https"), tls_files, "bearer")) as client:
        send(client, "GET", "products")
        send(client, "GET", server.url("http", "plain"))
    assert server.seen[0].headers.get("Authorization") == f"Bearer {BEARER}"
    assert _credentials_in(server.plain_requests()) == []


def test_an_https_api_does_not_send_its_client_secret_to_an_http_token_endpoint(
    dual_servers: tuple[DualServer, DualServer], tls_files: TlsFiles
) -> None:
    server, _ = dual_servers
    block = _connection(
        server.url("https"), tls_files, "oauth2_client_credentials", token_url=server.url("http", "token")
    )
    with open_client(block) as client, pytest.raises(SourceRejectedError, match="over https only"):
        send(client, "GET", "products")
    assert server.seen == []


def test_an_http_api_still_gets_its_credentials(
    dual_servers: tuple[DualServer, DualServer], tls_files: TlsFiles
) -> None:
    """A block whose base URL is http (a local or test API) keeps working, token endpoint included."""
    server, _ = dual_servers
    block = _connection(
        server.url("http"), tls_files, "oauth2_client_credentials", token_url=server.url("http", "token")
    )
    with open_client(block) as client:
        send(client, "GET", "products")
    assert [(s.scheme, s.path) for s in server.seen] == [("http", "/token"), ("http", "/products")]
    assert server.seen[1].headers.get("Authorization") == "Bearer T0ken-issued"
