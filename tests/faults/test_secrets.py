"""No secret value ever shows: every job kind runs with known secrets through a success and a failure
path, and everything a person or a log collector could read afterwards is searched for them.

Job kinds: CSV over FTP, FTPS and SFTP (password); REST API with an API key, a bearer token, basic
auth and OAuth2 client credentials (client secret, and the access token the token endpoint issues);
a PostgreSQL hub whose URL holds a password with a raw `@` (the test server trusts any password). What
is searched: the Prefect run logs read back from the API, Python logging at DEBUG (Prefect's loggers
included), stdout and stderr, the returned report, the run's artifacts, the final state's message and
exception, the flow-run parameters stored by the server, the run history and rejects files in the hub,
and the output of `python -m deployments blocks`.

Each secret is searched in five forms (`Evidence.leaks`): raw, inside a Basic pair (base64 of
`user:secret`), percent-encoded, JSON-escaped, and (the database's) inside a URL that holds it raw. The
secrets hold characters that these encodings change (`/`, `+`, `=`, `"`, `\\`, `&`, `@`), and the careless
test servers echo what they were sent in several of those forms.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlencode
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import State
from prefect.logging.handlers import APILogWorker
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from blocks import parse_database_url
from blocks.api import ApiConnection
from flows.import_json_from_api import ApiImportJob, import_json_from_api
from tasks.api.http import open_client, send
from tasks.errors import SourceRejectedError
from tasks.run.report import ImportReport, report_of
from tests.faults.harness import csv_job, make_folders, products_csv, save_ftp_block, save_hub, table
from tests.fixtures_servers import LocalFtp, LocalSftp
from tests.flows.hub import status_of

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.postgres]

FTP_PASSWORD = "s3cret-ftp-pw"  # what tests/fixtures_servers.py's servers accept
WRONG_FTP_PASSWORD = 'Wr0ng/ftp+S3cret="77"'
DB_PASSWORD = 'Db@S3cret:pw"4242'  # a raw `@` (and `:`) in the URL's password
API_KEY = 'Api/K3y+S3cret="1111"'
BEARER = "B3arer-T0ken-S3cret-2222"
BASIC_PASSWORD = "Bas1c/Pa55+S3cret\\3333"
CLIENT_SECRET = 'Cl1ent&S3cret="4444"'
ACCESS_TOKEN = "Acc3ss-T0ken-S3cret-5555"
# Basic auth (API basic, and the OAuth2 client's login at the token endpoint) sends base64(user:secret).
BASIC_PAIR = base64.b64encode(f"hub:{BASIC_PASSWORD}".encode()).decode()
CLIENT_PAIR = base64.b64encode(f"hub:{CLIENT_SECRET}".encode()).decode()
ALL_SECRETS = (
    BASIC_PAIR,
    CLIENT_PAIR,
    FTP_PASSWORD,
    WRONG_FTP_PASSWORD,
    DB_PASSWORD,
    API_KEY,
    BEARER,
    BASIC_PASSWORD,
    CLIENT_SECRET,
    ACCESS_TOKEN,
)


@dataclass
class Evidence:
    """Everything readable after a run, as text."""

    parts: dict[str, str]

    def leaks(self) -> list[str]:
        """Return where a secret, in any of its forms (or the first or last half of one), shows."""
        # Whole and by its distinctive halves: a truncated message still leaks it, and a URL parsed at
        # the wrong `@` shows a password's tail.
        found = []
        for where, text in self.parts.items():
            for secret in ALL_SECRETS:
                for form in secret_forms(secret):
                    half = len(form) // 2 + 2
                    if form in text or form[:half] in text or form[-half:] in text:
                        found.append(f"{secret!r} as {form!r} in {where}")
                        break
        return found


def secret_forms(secret: str) -> set[str]:
    """Return the forms a secret can show in: raw, percent-encoded, JSON-escaped (once, and twice for JSON
    inside JSON, as the evidence itself is partly JSON)."""
    escaped = json.dumps(secret)[1:-1]
    return {secret, quote(secret, safe=""), quote_plus(secret), escaped, json.dumps(escaped)[1:-1]}


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    prefect_logger = logging.getLogger("prefect")
    prefect_logger.addHandler(caplog.handler)
    yield caplog
    prefect_logger.removeHandler(caplog.handler)


def _collect(
    state: State, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], hub_url: str | None
) -> Evidence:
    APILogWorker.drain_all(timeout=10)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(str(flow_run_id))]))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(flow_run_id))]))
        )
    result = state.result(raise_on_failure=False)
    report = report_of(result)
    out, err = capfd.readouterr()
    parts = {
        "prefect run logs (API)": "\n".join(log.message for log in logs),
        "python logging": caplog.text,
        "stdout": out,
        "stderr": err,
        "report": report.model_dump_json() if isinstance(report, ImportReport) else "",
        "artifacts": json.dumps([a.model_dump(mode="json") for a in artifacts]),
        "state": f"{state.name} {state.message} {result!r} {result}",
        "flow-run parameters": json.dumps(run.parameters, default=str),
        "flow-run state (API)": json.dumps(
            run.state.model_dump(mode="json") if run.state else None, default=str
        ),
    }
    assert logs, "no run logs reached the API"
    if hub_url is not None:
        # Read back with the password percent-encoded: SQLAlchemy's own parser stops at its raw `@`.
        readable = parse_database_url(hub_url).render_as_string(hide_password=False)
        parts["run history"] = json.dumps(table(readable, "SELECT * FROM datahub_runs"), default=str)
    if isinstance(report, ImportReport):
        parts["rejects files"] = "".join(
            Path(f.rejects_file).read_text(encoding="utf-8") for f in report.files if f.rejects_file
        )
    return Evidence(parts)


def _pg_url_with_password(postgres_url: str, port: int | None = None) -> str:
    url = postgres_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    return url.replace(":5432/", f":{port}/", 1) if port else url


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- CSV over FTP, FTPS and SFTP -------------------------------------------------------------------

CSV_CASES = [
    ("ftp_server", "good"),
    ("ftps_server", "good"),
    ("sftp_server", "good"),
    ("ftp_server", "wrong-password"),
    ("sftp_server", "wrong-password"),
    ("ftp_server", "database-down"),
]


@pytest.mark.parametrize(("server_fixture", "path"), CSV_CASES, ids=[f"{s[:-7]}-{p}" for s, p in CSV_CASES])
def test_csv_jobs_never_show_a_secret(
    request: pytest.FixtureRequest,
    postgres_url: str,
    everything_logged: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    server_fixture: str,
    path: str,
) -> None:
    server: LocalFtp | LocalSftp = request.getfixturevalue(server_fixture)
    assert server.password == FTP_PASSWORD
    root = make_folders(server.root)
    (root / "in" / "a.csv").write_text(
        products_csv(1, 3) + "P9;Bad;C1;V9;Bad;not-a-price\n", encoding="utf-8"
    )
    password = WRONG_FTP_PASSWORD if path == "wrong-password" else FTP_PASSWORD
    hub_url = _pg_url_with_password(postgres_url, _closed_port() if path == "database-down" else None)
    job = csv_job(save_ftp_block(server, password=password), save_hub(hub_url))

    from flows.import_csv_from_ftp import import_csv_from_ftp

    state: State = import_csv_from_ftp(job, return_state=True)

    if path == "good":
        assert status_of(state) == "PARTIAL"
    else:
        assert state.is_failed()
    evidence = _collect(state, everything_logged, capfd, None if path == "database-down" else hub_url)
    assert evidence.leaks() == []
    if path == "database-down":  # the failure is explained, with the URL's password masked
        assert (
            "Cannot reach the hub database postgresql+psycopg://postgres:***@127.0.0.1:"
            in evidence.parts["state"]
        )
        assert "Connection refused" in evidence.parts["state"]


# -- REST API --------------------------------------------------------------------------------------

AUTH_CHECKS: dict[str, Callable[[Request], bool]] = {
    "api_key": lambda r: r.headers.get("X-API-Key") == API_KEY,
    "bearer": lambda r: r.headers.get("Authorization") == f"Bearer {BEARER}",
    "basic": lambda r: r.authorization is not None and r.authorization.password == BASIC_PASSWORD,
    "oauth2_client_credentials": lambda r: r.headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}",
}


def _api_block(httpserver: HTTPServer, auth: str) -> str:
    fields: dict[str, Any] = {"base_url": httpserver.url_for("/"), "auth": auth, "timeout_seconds": 5}
    credentials: dict[str, dict[str, Any]] = {
        "api_key": {"api_key": SecretStr(API_KEY)},
        "bearer": {"bearer_token": SecretStr(BEARER)},
        "basic": {"username": "hub", "password": SecretStr(BASIC_PASSWORD)},
        "oauth2_client_credentials": {
            "token_url": httpserver.url_for("/token"),
            "client_id": "hub",
            "client_secret": SecretStr(CLIENT_SECRET),
        },
    }
    fields |= credentials[auth]
    name = f"api-{uuid.uuid4().hex[:8]}"
    ApiConnection(**fields).save(name, overwrite=True)
    return name


def _serve(httpserver: HTTPServer, auth: str, path: str) -> None:
    def token(request: Request) -> Response:
        if (
            path == "token-refused"
            or request.authorization is None
            or request.authorization.password != CLIENT_SECRET
        ):
            # A careless server echoes what it was sent: the Basic header, the secret raw and percent-encoded.
            body = {
                "authorization": request.headers.get("Authorization"),
                "echo": urlencode({"secret": request.authorization and request.authorization.password}),
                "error": "invalid_client",
                "detail": f"bad secret {request.authorization and request.authorization.password}",
            }
            return Response(json.dumps(body), status=401, content_type="application/json")
        return Response(
            json.dumps({"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600}),
            content_type="application/json",
        )

    def products(request: Request) -> Response:
        if path == "refused" or not AUTH_CHECKS[auth](request):
            # A careless server echoes the credential it refused, in its body (JSON-escaped and
            # percent-encoded) and a header.
            echoed = json.dumps(dict(request.headers))
            query = urlencode(
                {k: v for k, v in request.headers.items() if k in ("Authorization", "X-Api-Key")}
            )
            return Response(f"denied: {query} {echoed}", status=401, headers={"X-Echo": echoed[:500]})
        if path == "server-error":
            return Response(f"internal error for {json.dumps(dict(request.headers))}", status=500)
        # A 2xx body that is not JSON (a login page, a body cut short) showing the credential it was sent.
        credential = json.dumps(
            {k: v for k, v in request.headers.items() if k in ("Authorization", "X-Api-Key")}
        )
        if path == "html-echo":
            return Response(f"<html>welcome {credential}</html>", content_type="text/html")
        if path == "broken-json-echo":
            return Response(f'{{"items": [{credential}', content_type="application/json")
        items = [{"id": "P1", "name": "Chair"}, {"id": "P2", "name": "Table"}, {"id": "P3", "name": None}]
        return Response(json.dumps({"items": items}), content_type="application/json")

    httpserver.expect_request("/token", method="POST").respond_with_handler(token)
    httpserver.expect_request("/products").respond_with_handler(products)


API_CASES = [
    *(pytest.param(auth, "good", id=f"{auth}-good") for auth in AUTH_CHECKS),
    *(pytest.param(auth, "refused", id=f"{auth}-refused") for auth in AUTH_CHECKS),
    pytest.param("oauth2_client_credentials", "token-refused", id="oauth2-token-refused"),
    pytest.param("bearer", "server-error", id="bearer-server-error"),
    # A 2xx body that is not JSON is quoted in the error: the credential it echoes must be masked.
    *(
        pytest.param(auth, echo, id=f"{auth}-{echo}")
        for auth in ("api_key", "basic")
        for echo in ("html-echo", "broken-json-echo")
    ),
]


@pytest.mark.parametrize(("auth", "path"), API_CASES)
def test_api_jobs_never_show_a_secret(
    httpserver: HTTPServer,
    postgres_url: str,
    everything_logged: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    auth: str,
    path: str,
) -> None:
    _serve(httpserver, auth, path)
    hub_url = _pg_url_with_password(postgres_url)
    job = ApiImportJob.model_validate(
        {
            "name": f"secret-{uuid.uuid4().hex[:8]}",
            "connection": _api_block(httpserver, auth),
            "entity": "products",
            "calls": [
                {
                    "name": "list",
                    "path": "products",
                    "pattern": {"kind": "default", "content_path": "$.items"},
                }
            ],
            "mapping": {"$.id": "productExternalId", "$.name": "productNames"},
            "target": save_hub(hub_url),
            "http": {"transport_initial_wait_seconds": 0.01, "timeout_seconds": 5},
            "reject_threshold_percent": 100,
        }
    )

    state: State = import_json_from_api(job, return_state=True)

    if path == "good":
        assert state.is_completed(), state.message
    else:
        assert state.is_failed()
    evidence = _collect(state, everything_logged, capfd, hub_url)
    assert evidence.leaks() == []


# -- CLI: python -m deployments blocks ----------------------------------------------------------------


def test_the_blocks_command_never_shows_a_secret(
    tmp_path: Path, postgres_url: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from deployments.blocks import main

    for name in [n for n in os.environ if n.startswith("DATAHUB_")]:
        monkeypatch.delenv(name)
    suffix = uuid.uuid4().hex[:8]
    local = {
        f"ftp-{suffix}": {"type": "ftp-connection", "host": "127.0.0.1", "username": "importer",
                          "password": WRONG_FTP_PASSWORD},
        f"key-{suffix}": {"type": "api-connection", "base_url": "https://api.example.com/", "auth": "api_key",
                          "api_key": API_KEY},
        f"basic-{suffix}": {"type": "api-connection", "base_url": "https://api.example.com/", "auth": "basic",
                            "username": "hub", "password": BASIC_PASSWORD},
        f"oauth-{suffix}": {"type": "api-connection", "base_url": "https://api.example.com/",
                            "auth": "oauth2_client_credentials", "token_url": "https://login.example.com/t",
                            "client_id": "hub", "client_secret": CLIENT_SECRET},
        f"bad-{suffix}": {"type": "api-connection", "base_url": "https://api.example.com/", "auth": "bogus",
                          "bearer_token": BEARER},
        f"db-{suffix}": {"type": "hub-database", "url": _pg_url_with_password(postgres_url)},
    }  # fmt: skip
    local_file = tmp_path / "blocks.local.yaml"
    local_file.write_text(json.dumps(local), encoding="utf-8")  # JSON is YAML

    assert main(local_file) == 1  # the `bogus` block is invalid

    out, err = capfd.readouterr()
    assert f"saved   Hub Database 'db-{suffix}': postgresql+psycopg://postgres:***@127.0.0.1:5432/" in out
    assert Evidence({"stdout": out, "stderr": err}).leaks() == []


# -- Each echo on its own, at the HTTP boundary ----------------------------------------------------


def test_a_token_endpoint_echoing_the_basic_header_is_masked(httpserver: HTTPServer) -> None:
    def token(request: Request) -> Response:
        echo = {"error": "invalid_client", "authorization": request.headers.get("Authorization")}
        return Response(json.dumps(echo), status=401, content_type="application/json")

    httpserver.expect_request("/token", method="POST").respond_with_handler(token)
    connection = ApiConnection(
        base_url=httpserver.url_for("/"),
        auth="oauth2_client_credentials",
        token_url=httpserver.url_for("/token"),
        client_id="hub",
        client_secret=SecretStr(CLIENT_SECRET),
    )
    with open_client(connection) as client, pytest.raises(SourceRejectedError) as raised:
        send(client, "GET", "products")
    assert "invalid_client" in str(raised.value)
    assert Evidence({"exception": str(raised.value)}).leaks() == []


def test_a_percent_encoded_api_key_echoed_by_the_server_is_masked(httpserver: HTTPServer) -> None:
    def products(request: Request) -> Response:
        return Response(f"denied: {urlencode({'key': request.headers.get('X-API-Key')})}", status=401)

    httpserver.expect_request("/products").respond_with_handler(products)
    connection = ApiConnection(base_url=httpserver.url_for("/"), auth="api_key", api_key=SecretStr(API_KEY))
    with open_client(connection) as client, pytest.raises(SourceRejectedError) as raised:
        send(client, "GET", "products")
    assert "denied: key=***" in str(raised.value)
    assert Evidence({"exception": str(raised.value)}).leaks() == []
