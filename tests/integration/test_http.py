"""The HTTP layer against real servers on loopback: retries, refusals, host-bound credentials, limits."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from blocks.api import ApiConnection
from tasks.api.http import (
    RetryPolicy,
    decode_json,
    download,
    open_client,
    retry_after_seconds,
    secret_mask,
    send,
)
from tasks.errors import BadFileError, SourceRejectedError, SourceUnavailableError

API_KEY = "k3y-SUPER-secret-4242"
FAST = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.05, retry_after_cap=5.0, deadline_seconds=20)


@pytest.fixture
def other_server() -> Iterator[HTTPServer]:
    """A second server on another host name (127.0.0.1, while `httpserver` is `localhost`)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def api_key_connection(httpserver: HTTPServer, **overrides: object) -> ApiConnection:
    settings: dict[str, object] = {
        "base_url": httpserver.url_for("/"),
        "auth": "api_key",
        "api_key": SecretStr(API_KEY),
        "timeout_seconds": 5,
    }
    return ApiConnection.model_validate(settings | overrides)


def received(server: HTTPServer, path: str) -> list[Request]:
    return [request for request, _ in server.log if request.path == path]


def test_429_with_retry_after_then_success(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/items").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_request("/items").respond_with_json({"data": [1]})
    started = time.monotonic()
    with open_client(api_key_connection(httpserver)) as client:
        response = send(client, "GET", "items", policy=FAST)
    assert decode_json(response, secret_mask(client)) == {"data": [1]}
    assert time.monotonic() - started >= 0.9  # waited the second the server asked for
    assert len(received(httpserver, "/items")) == 2


def test_retry_after_is_capped(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/items").respond_with_data(
        "", status=503, headers={"Retry-After": "3600"}
    )
    httpserver.expect_request("/items").respond_with_json([])
    policy = RetryPolicy(initial_wait=0.01, max_wait=0.05, retry_after_cap=0.1)
    started = time.monotonic()
    with open_client(api_key_connection(httpserver)) as client:
        send(client, "GET", "items", policy=policy)
    assert time.monotonic() - started < 2


def test_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_503_every_time_fails_with_a_clear_message(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/items").respond_with_data("<h1>maintenance</h1>" + "x" * 500, status=503)
    with (
        open_client(api_key_connection(httpserver)) as client,
        pytest.raises(SourceUnavailableError) as caught,
    ):
        send(client, "GET", "items", params={"apikey": API_KEY, "page": 2}, policy=FAST)
    message = str(caught.value)
    assert message.startswith(
        f"GET {httpserver.url_for('/items')} answered 503 SERVICE UNAVAILABLE: '<h1>maintenance"
    )
    assert "run the job again later" in message
    assert "Gave up after 4 attempt(s)" in message
    assert "page=2" not in message
    assert "x" * 201 not in message  # the body is truncated
    assert len(received(httpserver, "/items")) == 4


def test_the_call_deadline_stops_the_retries(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/items").respond_with_data("busy", status=503)
    policy = RetryPolicy(max_attempts=50, initial_wait=0.2, max_wait=0.2, deadline_seconds=0.5)
    started = time.monotonic()
    with (
        open_client(api_key_connection(httpserver)) as client,
        pytest.raises(SourceUnavailableError) as caught,
    ):
        send(client, "GET", "items", policy=policy)
    assert time.monotonic() - started < 1.5
    assert "deadline leaves no time for another attempt" in str(caught.value)


def test_401_is_not_retried_and_names_the_block_fix(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/items").respond_with_data(
        '{"error": "bad key"}', status=401, content_type="application/json"
    )
    with open_client(api_key_connection(httpserver)) as client, pytest.raises(SourceRejectedError) as caught:
        send(client, "GET", "items", policy=FAST)
    assert str(caught.value) == (
        f'GET {httpserver.url_for("/items")} answered 401 UNAUTHORIZED: \'{{"error": "bad key"}}\'. '
        "Check the credentials of the connection block (`auth` and its key, token, password or client secret)."
    )
    assert len(received(httpserver, "/items")) == 1


def test_404_names_the_path_fix(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/nope").respond_with_data("not here", status=404)
    with (
        open_client(api_key_connection(httpserver)) as client,
        pytest.raises(SourceRejectedError, match="Check the call's path"),
    ):
        send(client, "DELETE", "nope", policy=FAST)


def test_post_is_not_sent_again_after_a_read_timeout(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/orders", method="POST").respond_with_handler(slow)
    connection = api_key_connection(httpserver, timeout_seconds=0.2)
    with open_client(connection) as client, pytest.raises(SourceUnavailableError) as caught:
        send(client, "POST", "orders", json={"id": 1}, policy=FAST)
    assert "ReadTimeout" in str(caught.value)
    assert "Not sent again: the server may already have acted on this POST" in str(caught.value)
    time.sleep(0.5)  # let the handler finish before counting
    assert len(received(httpserver, "/orders")) == 1


def test_post_is_retried_on_503_but_not_on_500(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/a", method="POST").respond_with_data("", status=503)
    httpserver.expect_request("/a", method="POST").respond_with_json({"ok": True}, status=201)
    httpserver.expect_request("/b", method="PATCH").respond_with_data("boom", status=500)
    with open_client(api_key_connection(httpserver)) as client:
        assert decode_json(send(client, "POST", "a", json={}, policy=FAST), secret_mask(client)) == {
            "ok": True
        }
        with pytest.raises(SourceUnavailableError, match="Not sent again"):
            send(client, "PATCH", "b", json={}, policy=FAST)
    assert len(received(httpserver, "/a")) == 2
    assert len(received(httpserver, "/b")) == 1


def test_get_is_retried_on_500(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/items").respond_with_data("boom", status=500)
    httpserver.expect_request("/items").respond_with_json([1])
    with open_client(api_key_connection(httpserver)) as client:
        assert decode_json(send(client, "GET", "items", policy=FAST), secret_mask(client)) == [1]


def test_connection_refused_is_unavailable(other_server: HTTPServer) -> None:
    url = other_server.url_for("/")
    other_server.stop()
    connection = ApiConnection(base_url=url, timeout_seconds=1)
    with open_client(connection) as client, pytest.raises(SourceUnavailableError, match="ConnectError"):
        send(client, "POST", "x", json={}, policy=FAST)
    other_server.start()


def test_api_key_goes_to_the_base_host_only(httpserver: HTTPServer, other_server: HTTPServer) -> None:
    httpserver.expect_request("/items").respond_with_json([])
    other_server.expect_request("/file.csv").respond_with_data("a;b\n1;2\n")
    with open_client(api_key_connection(httpserver, headers={"Accept-Language": "fr"})) as client:
        send(client, "GET", "items", policy=FAST)
        download = send(client, "GET", other_server.url_for("/file.csv"), policy=FAST)
    assert download.text == "a;b\n1;2\n"
    assert received(httpserver, "/items")[0].headers.get("X-API-Key") == API_KEY
    foreign = received(other_server, "/file.csv")[0]
    assert foreign.headers.get("X-API-Key") is None
    assert foreign.headers.get("Authorization") is None
    assert foreign.headers.get("Accept-Language") == "fr"  # non-secret default headers still go


def test_no_credentials_on_a_cross_host_redirect(httpserver: HTTPServer, other_server: HTTPServer) -> None:
    other_server.expect_request("/file.json").respond_with_json({"ok": True})
    httpserver.expect_request("/download").respond_with_data(
        "", status=302, headers={"Location": other_server.url_for("/file.json")}
    )
    for connection in (
        api_key_connection(httpserver),
        ApiConnection(base_url=httpserver.url_for("/"), auth="bearer", bearer_token=SecretStr(API_KEY)),
    ):
        with open_client(connection) as client:
            assert decode_json(send(client, "GET", "download", policy=FAST), secret_mask(client)) == {
                "ok": True
            }
    for request in received(other_server, "/file.json"):
        assert request.headers.get("X-API-Key") is None
        assert request.headers.get("Authorization") is None
    assert received(httpserver, "/download")[0].headers.get("X-API-Key") == API_KEY
    assert received(httpserver, "/download")[1].headers.get("Authorization") == f"Bearer {API_KEY}"


def test_trusted_host_receives_the_key(httpserver: HTTPServer, other_server: HTTPServer) -> None:
    other_server.expect_request("/file.csv").respond_with_data("x")
    trusted = f"127.0.0.1:{other_server.port}"
    with open_client(api_key_connection(httpserver, trusted_hosts=[trusted])) as client:
        send(client, "GET", other_server.url_for("/file.csv"), policy=FAST)
    assert received(other_server, "/file.csv")[0].headers.get("X-API-Key") == API_KEY


def test_basic_auth(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/me", headers={"Authorization": "Basic dXNlcjpwdw=="}).respond_with_json(
        {"me": 1}
    )
    connection = ApiConnection(
        base_url=httpserver.url_for("/"), auth="basic", username="user", password=SecretStr("pw")
    )
    with open_client(connection) as client:
        assert decode_json(send(client, "GET", "me", policy=FAST), secret_mask(client)) == {"me": 1}


def test_oauth2_token_is_fetched_once_and_reused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token", method="POST").respond_with_json(
        {"access_token": "tok-123", "expires_in": 3600}
    )
    httpserver.expect_request("/api/items", headers={"Authorization": "Bearer tok-123"}).respond_with_json(
        [1]
    )
    connection = ApiConnection(
        base_url=httpserver.url_for("/api/"),
        auth="oauth2_client_credentials",
        token_url=httpserver.url_for("/token"),
        client_id="hub",
        client_secret=SecretStr("client-secret-value"),
        scope="read",
    )
    with open_client(connection) as client:
        for _ in range(3):
            send(client, "GET", "/items", policy=FAST)
    tokens = received(httpserver, "/token")
    assert len(tokens) == 1
    assert tokens[0].form.to_dict() == {"grant_type": "client_credentials", "scope": "read"}
    assert tokens[0].authorization is not None
    assert tokens[0].authorization.username == "hub"
    assert len(received(httpserver, "/api/items")) == 3  # relative to the base URL's path


def test_oauth2_refused_client_credentials(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token").respond_with_json({"error": "invalid_client"}, status=401)
    connection = ApiConnection(
        base_url=httpserver.url_for("/"),
        auth="oauth2_client_credentials",
        token_url=httpserver.url_for("/token"),
        client_id="hub",
        client_secret=SecretStr("client-secret-value"),
    )
    with open_client(connection) as client, pytest.raises(SourceRejectedError) as caught:
        send(client, "GET", "items", policy=FAST)
    assert "Check `token_url`, `client_id`, `client_secret` and `scope` of the connection block" in str(
        caught.value
    )
    assert "client-secret-value" not in str(caught.value)


def test_a_body_over_max_bytes_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data("x" * 10_000)

    def streamed(request: Request) -> Response:
        return Response((b"y" * 1000 for _ in range(10)), content_type="application/json")

    httpserver.expect_request("/stream").respond_with_handler(streamed)
    with open_client(api_key_connection(httpserver)) as client:
        with pytest.raises(
            BadFileError, match=r"answered more than 1,000 bytes \(it announced 10,000\); refused"
        ):
            send(client, "GET", "big", max_bytes=1000, policy=FAST)
        with pytest.raises(
            BadFileError, match=r"answered more than 5,000 bytes; refused. Raise the call's `max_bytes`"
        ):
            send(client, "GET", "stream", max_bytes=5000, policy=FAST)
        assert len(send(client, "GET", "big", max_bytes=10_000, policy=FAST).content) == 10_000


def test_malformed_json_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/broken").respond_with_data('{"a": 1,', content_type="application/json")
    with open_client(api_key_connection(httpserver)) as client:
        response = send(client, "GET", "broken", params={"token": "abc"}, policy=FAST)
    with pytest.raises(BadFileError) as caught:
        decode_json(response, secret_mask(client))
    assert str(caught.value).startswith(f"GET {httpserver.url_for('/broken')} answered malformed JSON (")
    assert "content-type 'application/json'" in str(caught.value)
    assert "abc" not in str(caught.value)


def test_an_html_page_with_status_200_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/login").respond_with_data(
        "<html><body>Sign in</body></html>", content_type="text/html"
    )
    with open_client(api_key_connection(httpserver)) as client:
        response = send(client, "GET", "login", policy=FAST)
    with pytest.raises(BadFileError, match=r"answered an HTML page \(content-type 'text/html'\), not JSON"):
        decode_json(response, secret_mask(client))


def test_gzip_body_is_decoded_once(httpserver: HTTPServer) -> None:
    import gzip

    payload = gzip.compress(json.dumps({"a": [1, 2]}).encode())
    httpserver.expect_request("/gz").respond_with_data(
        payload, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    with open_client(api_key_connection(httpserver)) as client:
        assert decode_json(send(client, "GET", "gz", policy=FAST), secret_mask(client)) == {"a": [1, 2]}


def test_the_api_key_never_shows_in_errors_or_logs(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A hostile or careless server echoes the key; the client also sends it in the query string.
    httpserver.expect_request("/flaky").respond_with_data(f"overloaded for {API_KEY}", status=503)
    httpserver.expect_request("/echo").respond_with_data(f"bad key {API_KEY}", status=403)
    errors: list[str] = []
    with open_client(api_key_connection(httpserver)) as client:
        for path in ("flaky", "echo"):
            with pytest.raises((SourceUnavailableError, SourceRejectedError)) as caught:
                send(client, "GET", path, params={"apikey": API_KEY}, policy=FAST)
            errors.append(str(caught.value))
            errors.append(repr(caught.value.__cause__))
    assert any("Retrying in" in record.getMessage() for record in caplog.records)
    assert "***" in errors[0]
    # werkzeug's access log is the test server's own (it stands for the remote side): not ours to check.
    ours = [record.getMessage() for record in caplog.records if record.name != "werkzeug"]
    for text in [*errors, *ours]:
        assert API_KEY not in text


def test_block_requires_the_fields_of_its_auth_mode() -> None:
    with pytest.raises(ValidationError, match=r"auth 'api_key' needs `api_key`: set it on the block"):
        ApiConnection(base_url="https://api.example.com", auth="api_key")
    with pytest.raises(ValidationError, match="needs `token_url`, `client_id`, `client_secret`"):
        ApiConnection(base_url="https://api.example.com", auth="oauth2_client_credentials")
    with pytest.raises(ValidationError, match="needs `username`, `password`"):
        ApiConnection(base_url="https://api.example.com", auth="basic")
    assert ApiConnection(base_url="https://api.example.com").verify_tls is True


def test_download_streams_to_a_file_with_its_hash(httpserver: HTTPServer, tmp_path: Path) -> None:
    payload = b"Stock External Id;Stock Number\n" + b"S1;5\n" * 50_000
    httpserver.expect_oneshot_request("/files/offers.csv").respond_with_data("busy", status=503)

    def chunked(request: Request) -> Response:
        return Response(
            (payload[i : i + 65_536] for i in range(0, len(payload), 65_536)), content_type="text/csv"
        )

    httpserver.expect_request("/files/offers.csv").respond_with_handler(chunked)
    target = tmp_path / "dl" / "offers.csv"
    with open_client(api_key_connection(httpserver)) as client:
        saved = download(client, "files/offers.csv?sig=abc", target, policy=FAST)
    assert target.read_bytes() == payload
    assert (saved.size, saved.sha256) == (len(payload), hashlib.sha256(payload).hexdigest())
    assert saved.url == httpserver.url_for("/files/offers.csv")  # no query string
    assert len(received(httpserver, "/files/offers.csv")) == 2  # the 503 was retried


def test_a_refused_download_leaves_no_file(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/files/gone.csv").respond_with_data("no such file", status=404)
    target = tmp_path / "gone.csv"
    with (
        open_client(api_key_connection(httpserver)) as client,
        pytest.raises(SourceRejectedError, match=r"answered 404 NOT FOUND: 'no such file'"),
    ):
        download(client, "files/gone.csv", target, policy=FAST)
    assert not target.exists()


def test_an_echoed_basic_authorization_header_is_masked(httpserver: HTTPServer) -> None:
    def echo(request: Request) -> Response:
        return Response(f"refused: {request.headers.get('Authorization')}", status=403)

    httpserver.expect_request("/me").respond_with_handler(echo)
    connection = ApiConnection(
        base_url=httpserver.url_for("/"), auth="basic", username="user", password=SecretStr("s3cret-pw")
    )
    pair = base64.b64encode(b"user:s3cret-pw").decode()
    with open_client(connection) as client, pytest.raises(SourceRejectedError) as caught:
        send(client, "GET", "me", policy=FAST)
    assert "refused: Basic ***" in str(caught.value)
    assert pair not in str(caught.value)
