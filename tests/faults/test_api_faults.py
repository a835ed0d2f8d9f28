"""API faults (part of #7): what a broken, hostile or overloaded API does to a call, against real
servers on loopback. Each fault must end in a clear error (or a warning) quickly, never in a hang,
a loop or a half-loaded database. Deadlines and waits are small so each test takes a second or two.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.schemas.objects import State
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from blocks.api import ApiConnection
from flows.import_json_from_api import ApiImportJob, import_json_from_api
from tasks.api.http import RetryPolicy, decode_json, download, open_client, secret_mask, send
from tasks.api.paging import PageNumberPaging, walk_pages
from tasks.errors import BadFileError, SourceRejectedError, SourceUnavailableError
from tasks.run.report import ImportReport
from tests.faults.harness import save_hub, table
from tests.flows.hub import run_for_report, status_of

API_KEY = "fault-API-key-31337"
QUICK = RetryPolicy(
    max_attempts=20, initial_wait=0.01, max_wait=0.05, retry_after_cap=5.0, deadline_seconds=5
)
PAGING: dict[str, Any] = {
    "kind": "paging",
    "page_number_param": "page",
    "page_size_param": "size",
    "page_size": 2,
    "first_page": 1,
    "total_pages_path": "$.paging.totalPages",
    "content_path": "$.elements",
}


@pytest.fixture
def threaded() -> Iterator[HTTPServer]:
    """A server answering in parallel: a trickling answer must not block the next test's requests."""
    server = HTTPServer(host="localhost", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def connection(server: HTTPServer, **overrides: Any) -> ApiConnection:
    settings: dict[str, Any] = {
        "base_url": server.url_for("/"),
        "auth": "api_key",
        "api_key": SecretStr(API_KEY),
        "timeout_seconds": 5,
    }
    return ApiConnection.model_validate(settings | overrides)


def product(n: int) -> dict[str, Any]:
    return {"id": f"P{n:04d}", "name": f"product {n}", "category": "C1"}


def pages_handler(records: int, *, total_pages: int | None = None) -> Any:
    """Serve `records` products two a page, announcing `total_pages` (default: the true number)."""

    def handler(request: Request) -> Response:
        number, size = int(request.args["page"]), int(request.args["size"])
        start = (number - 1) * size
        elements = [product(n) for n in range(start, min(start + size, records))]
        pages = -(-records // size) if total_pages is None else total_pages
        body = {"paging": {"totalPages": pages}, "elements": elements}
        return Response(json.dumps(body), content_type="application/json")

    return handler


def run_paging_job(
    server: HTTPServer,
    hub_url: str,
    pattern: dict[str, Any] | None = None,
    calls: list[dict[str, Any]] | None = None,
    **paging: Any,
) -> tuple[State, ImportReport]:
    name = f"api-{uuid.uuid4().hex[:8]}"
    connection(server).save(name, overwrite=True)
    job = ApiImportJob.model_validate(
        {
            "name": f"fault-{uuid.uuid4().hex[:8]}",
            "connection": name,
            "entity": "products",
            "calls": calls
            or [{"name": "products", "path": "products", "pattern": pattern or PAGING | paging}],
            "mapping": {
                "$.id": "productExternalId",
                "$.name": "productNames",
                "$.category": "productClassificationCategoryId",
            },
            "target": save_hub(hub_url),
            "http": {
                "transport_initial_wait_seconds": 0.01,
                "timeout_seconds": 5,
                "call_deadline_seconds": 10,
            },
        }
    )
    return run_for_report(import_json_from_api, job)


# --- bodies that are not what they claim ------------------------------------------------------------


@pytest.mark.usefixtures("prefect_server")
def test_a_malformed_page_fails_the_run_and_loads_nothing(httpserver: HTTPServer, sqlite_url: str) -> None:
    good = pages_handler(6)

    def broken_second_page(request: Request) -> Response:
        if request.args["page"] == "2":
            return Response(
                '{"paging": {"totalPages": 3}, "elements": [{"id": "P1"', content_type="application/json"
            )
        return good(request)

    httpserver.expect_request("/products").respond_with_handler(broken_second_page)
    state, report = run_paging_job(httpserver, sqlite_url, concurrency=1)
    assert state.is_failed()
    assert "answered malformed JSON" in report.error
    assert f"GET {httpserver.url_for('/products')} " in report.error  # the URL, without its query string
    assert "page=" not in report.error
    # Nothing loads until every page is in: page 1 was not loaded alone.
    assert table(sqlite_url, "SELECT status, rows_read FROM datahub_runs") == [("FAILED", 0)]


@pytest.mark.usefixtures("prefect_server")
def test_an_html_error_page_with_status_200_fails_the_run_clearly(
    httpserver: HTTPServer, sqlite_url: str
) -> None:
    httpserver.expect_request("/products").respond_with_data(
        "<!DOCTYPE html><html><body><h1>Maintenance</h1></body></html>", content_type="text/html"
    )
    state, report = run_paging_job(httpserver, sqlite_url)
    assert state.is_failed()
    assert "answered an HTML page (content-type 'text/html'), not JSON" in report.error
    assert "Maintenance" in report.error
    assert "`base_url`" in report.error


# --- too big, too slow, going round in circles ------------------------------------------------------


def test_an_endless_body_is_stopped_by_the_size_cap(threaded: HTTPServer, tmp_path: Path) -> None:
    def endless(request: Request) -> Response:
        return Response((b"[" + b"1," * 32_768 for _ in iter(int, 1)), content_type="application/json")

    threaded.expect_request("/endless").respond_with_handler(endless)
    started = time.monotonic()
    with open_client(connection(threaded)) as client:
        with pytest.raises(BadFileError, match=r"answered more than 1,000,000 bytes; refused"):
            send(client, "GET", "endless", max_bytes=1_000_000, policy=QUICK)
        target = tmp_path / "file.csv"
        with pytest.raises(BadFileError, match=r"answered more than 1,000,000 bytes; refused"):
            download(client, "endless", target, max_bytes=1_000_000, policy=QUICK)
    assert not target.exists()  # no half file left behind
    assert time.monotonic() - started < 5


def test_a_trickling_body_is_stopped_by_the_call_deadline(threaded: HTTPServer) -> None:
    def trickle(request: Request) -> Response:
        def drip() -> Iterator[bytes]:
            yield b'{"elements": ['
            while True:  # a byte every 50 ms: no single read ever times out
                time.sleep(0.05)
                yield b" "

        return Response(drip(), content_type="application/json")

    threaded.expect_request("/trickle").respond_with_handler(trickle)
    policy = RetryPolicy(max_attempts=3, initial_wait=0.01, deadline_seconds=1.0)
    started = time.monotonic()
    with (
        open_client(connection(threaded, timeout_seconds=5)) as client,
        pytest.raises(
            SourceUnavailableError, match=r"still sending its body when the call's deadline passed"
        ),
    ):
        send(client, "GET", "trickle", policy=policy)
    assert time.monotonic() - started < 3  # the deadline (1 s), not the 5 s read timeout, nor forever


def test_a_redirect_loop_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    with (
        open_client(connection(httpserver)) as client,
        pytest.raises(SourceRejectedError, match=r"TooManyRedirects.*Check the call's path or URL"),
    ):
        send(client, "GET", "a", policy=QUICK)
    assert 2 <= len(httpserver.log) <= 30  # httpx's redirect cap, and no retries on top of it


@pytest.mark.parametrize("total", [None, 1000])
def test_the_same_page_forever_is_stopped_by_the_loop_guard(
    httpserver: HTTPServer, total: int | None
) -> None:
    body: dict[str, Any] = {"elements": [product(1), product(2)]}
    if total is not None:
        body["paging"] = {"totalPages": total}
    httpserver.expect_request("/products").respond_with_json(body)
    paging = PageNumberPaging.model_validate({k: v for k, v in PAGING.items() if k != "kind"})
    with open_client(connection(httpserver)) as client:
        walk = walk_pages(
            lambda params: decode_json(send(client, "GET", "products", params=params), secret_mask(client)),
            paging,
        )
        with pytest.raises(SourceRejectedError, match=r"Pages 1 and 2 returned the same records"):
            list(walk)
    assert len(httpserver.log) <= 1 + 2 * paging.concurrency  # stopped at once, not after 1,000 pages


@pytest.mark.usefixtures("prefect_server")
def test_total_pages_larger_than_the_data_stops_at_the_empty_page_and_warns(
    httpserver: HTTPServer, sqlite_url: str
) -> None:
    httpserver.expect_request("/products").respond_with_handler(pages_handler(5, total_pages=50))
    state, report = run_paging_job(httpserver, sqlite_url)
    assert status_of(state) == "SUCCESS", report.error
    assert report.total("inserted") == 5
    assert report.warnings == [
        "The API reported 50 pages but page 4 was empty: stopped after 3 pages of data."
    ]
    assert len(httpserver.log) < 15  # not 50


@pytest.mark.usefixtures("prefect_server")
def test_total_pages_smaller_than_the_data_stops_at_the_total_and_warns(
    httpserver: HTTPServer, sqlite_url: str
) -> None:
    httpserver.expect_request("/products").respond_with_handler(pages_handler(10, total_pages=2))
    state, report = run_paging_job(httpserver, sqlite_url)
    assert status_of(state) == "SUCCESS", report.error
    assert report.total("inserted") == 4
    assert report.warnings == [
        "The API reported 2 pages but the last one was full and more records exist: `totalPages` is "
        "smaller than the data; stopped at page 2."
    ]


# --- throttling --------------------------------------------------------------------------------------


def test_a_429_storm_backs_off_then_fails_clearly_at_the_deadline(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/items").respond_with_data(
        "too many requests", status=429, headers={"Retry-After": "0.2"}
    )
    policy = RetryPolicy(max_attempts=20, initial_wait=0.01, retry_after_cap=5.0, deadline_seconds=1.0)
    started = time.monotonic()
    with open_client(connection(httpserver)) as client, pytest.raises(SourceUnavailableError) as caught:
        send(client, "GET", "items", policy=policy)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "429" in message
    assert "throttling" in message
    assert "The call's deadline leaves no time for another attempt." in message
    assert 3 <= len(httpserver.log) <= 6  # honoured Retry-After (0.2 s) rather than hammering
    assert elapsed < 2
    assert API_KEY not in message


# --- issue 15: content paths, pages repeated past the end, totals that are not numbers --------------


def repeating_handler(records: int, *, total_pages: bool = False, total_records: bool = False) -> Any:
    """Serve `records` products two a page; every page past the end repeats the last page (no empty page)."""

    def handler(request: Request) -> Response:
        number, size = int(request.args["page"]), int(request.args["size"])
        last = max(1, -(-records // size))
        start = (min(number, last) - 1) * size
        body: dict[str, Any] = {"elements": [product(n) for n in range(start, min(start + size, records))]}
        paging: dict[str, Any] = {}
        if total_pages:
            paging["totalPages"] = last
        if total_records:
            paging["totalRecords"] = records
        body["paging"] = paging
        return Response(json.dumps(body), content_type="application/json")

    return handler


def walk_server(server: HTTPServer, **settings: Any) -> Any:
    """Walk the server's pages with PAGING changed by `settings`; return the walk and its pages."""
    fields = {k: v for k, v in (PAGING | settings).items() if k != "kind"}
    paging = PageNumberPaging.model_validate(fields)
    with open_client(connection(server)) as client:
        walk = walk_pages(
            lambda params: decode_json(send(client, "GET", "products", params=params), secret_mask(client)),
            paging,
        )
        pages = list(walk)
    return walk, pages


@pytest.mark.usefixtures("prefect_server")
def test_a_content_path_that_matches_nothing_fails_naming_the_path_and_the_keys(
    httpserver: HTTPServer, sqlite_url: str
) -> None:
    httpserver.expect_request("/products").respond_with_handler(pages_handler(4))
    state, report = run_paging_job(httpserver, sqlite_url, content_path="$.item")
    assert state.name == "Failed"
    assert "`$.item`" in str(report.error)
    assert "elements, paging" in str(report.error)


ONE_RESPONSE = {"status": "AVAILABLE", "file": "/export.json", "elements": [product(1), product(2)]}
SINGLE_RESPONSE_CALLS = {
    "default": [
        {"name": "products", "path": "products", "pattern": {"kind": "default", "content_path": "$.item"}}
    ],
    "retry": [
        {
            "name": "products",
            "path": "products",
            "pattern": {
                "kind": "retry",
                "condition_path": "$.status",
                "value": "AVAILABLE",
                "interval_seconds": 0,
                "content_path": "$.item",
            },
        }
    ],
    "download": [
        {"name": "export", "path": "products"},
        {
            "name": "file",
            "pattern": {
                "kind": "download",
                "url_from": "$.file",
                "format": {"kind": "json", "content_path": "$.item"},
            },
        },
    ],
}


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("kind", sorted(SINGLE_RESPONSE_CALLS))
def test_a_content_path_that_matches_nothing_in_a_single_response_fails_too(
    httpserver: HTTPServer, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("DATAHUB_DOWNLOAD_ALLOW_PRIVATE", "1")  # the file is served from loopback
    httpserver.expect_request("/products").respond_with_json(ONE_RESPONSE)
    httpserver.expect_request("/export.json").respond_with_json(ONE_RESPONSE)
    state, report = run_paging_job(httpserver, sqlite_url, calls=SINGLE_RESPONSE_CALLS[kind])
    assert state.is_failed()
    assert "`$.item` matches nothing" in str(report.error)
    assert "elements, file, status" in str(report.error)
    setting = "pattern.format" if kind == "download" else "pattern"
    assert f"`{setting}.empty_is_ok`" in str(report.error)


@pytest.mark.usefixtures("prefect_server")
def test_a_single_response_without_its_content_path_is_empty_when_the_call_says_empty_is_ok(
    httpserver: HTTPServer, sqlite_url: str
) -> None:
    httpserver.expect_request("/products").respond_with_json({"status": "AVAILABLE"})
    pattern = {"kind": "default", "content_path": "$.elements", "empty_is_ok": True}
    state, report = run_paging_job(httpserver, sqlite_url, pattern)
    assert state.is_completed(), report.error
    assert report.status == "SKIPPED"
    assert report.total("rows_read") == 0


def test_a_missing_content_path_is_an_empty_page_when_the_call_says_empty_is_ok(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/products").respond_with_json({"paging": {"totalPages": 0}})
    walk, pages = walk_server(httpserver, empty_is_ok=True)
    assert pages == []
    assert walk.records == 0
    assert walk.warnings == []


def test_an_empty_list_at_the_content_path_is_a_legitimate_empty_page(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_json({"paging": {"totalPages": 0}, "elements": []})
    walk, pages = walk_server(httpserver)
    assert pages == []
    assert walk.warnings == []


@pytest.mark.parametrize("records", [5, 6])
@pytest.mark.usefixtures("prefect_server")
def test_pages_repeated_past_the_end_end_the_data_with_a_note(
    httpserver: HTTPServer, sqlite_url: str, records: int
) -> None:
    httpserver.expect_request("/products").respond_with_handler(repeating_handler(records))
    state, report = run_paging_job(httpserver, sqlite_url, total_pages_path=None)
    assert status_of(state) == "SUCCESS", report.error
    assert report.total("inserted") == records
    assert report.warnings == [
        "Page 4 repeated the records of page 3: taken as the end of the data (the API repeats its last "
        "page past the end)."
    ]


def test_total_records_reached_ends_the_data_without_a_total_of_pages(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_handler(repeating_handler(4, total_records=True))
    walk, pages = walk_server(httpserver, total_pages_path=None, total_records_path="$.paging.totalRecords")
    assert [len(page.records) for page in pages] == [2, 2]
    assert walk.warnings == []
    assert len(httpserver.log) == 2  # no probe past the end


def test_the_loop_guard_on_the_first_pages_says_which_case_it_is(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_handler(repeating_handler(2))
    with pytest.raises(SourceRejectedError) as failure:
        walk_server(httpserver, total_pages_path=None)
    message = str(failure.value)
    assert "Pages 1 and 2 returned the same records" in message
    assert "ignores the page number" in message
    assert "`paging.page_number_param` ('page')" in message
    assert "only one page" in message
    assert "`paging.total_records_path`" in message


def test_the_probe_past_a_full_last_page_that_repeats_it_gives_no_warning(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/products").respond_with_handler(repeating_handler(6, total_pages=True))
    for concurrency in (1, 4):
        walk, pages = walk_server(httpserver, concurrency=concurrency)
        assert sum(len(page.records) for page in pages) == 6
        assert walk.warnings == []


def test_a_body_nested_too_deep_is_a_bad_file_error(httpserver: HTTPServer) -> None:
    depth = 100_000
    httpserver.expect_request("/products").respond_with_data(
        "[" * depth + "]" * depth, content_type="application/json"
    )
    with pytest.raises(BadFileError, match=r"nested deeper than .* levels"):
        walk_server(httpserver)


@pytest.mark.parametrize("total", ["Infinity", "-Infinity", "NaN", "2.5", "1e400", "-3", "true", "[3]"])
def test_a_total_that_is_not_a_whole_number_is_a_bad_file_error(httpserver: HTTPServer, total: str) -> None:
    body = '{"paging": {"totalPages": ' + total + '}, "elements": [{"id": "P1"}, {"id": "P2"}]}'
    httpserver.expect_request("/products").respond_with_data(body, content_type="application/json")
    with pytest.raises(BadFileError, match=r"`\$\.paging\.totalPages` gave .* not a whole number"):
        walk_server(httpserver)


# --- issue 15 finding 10: offset and cursor paginators ----------------------------------------------

OFFSET: dict[str, Any] = {
    "kind": "offset",
    "offset_param": "offset",
    "limit_param": "limit",
    "limit": 3,
    "content_path": "$.items",
}
CURSOR: dict[str, Any] = {
    "kind": "cursor",
    "cursor_path": "$.next_cursor",
    "cursor_param": "cursor",
    "content_path": "$.items",
}


def offset_handler(records: int, *, with_total: bool) -> Any:
    def handler(request: Request) -> Response:
        offset, limit = int(request.args["offset"]), int(request.args["limit"])
        body: dict[str, Any] = {"items": [product(n) for n in range(offset, min(offset + limit, records))]}
        if with_total:
            body["total"] = records
        return Response(json.dumps(body), content_type="application/json")

    return handler


def cursor_handler(records: int, *, end: Any = None) -> Any:
    """Serve `records` three at a time; the cursor is the next start as text; the last page has `end`."""

    def handler(request: Request) -> Response:
        start = int(request.args.get("cursor", "0"))
        following = start + 3
        body = {
            "items": [product(n) for n in range(start, min(following, records))],
            "next_cursor": str(following) if following < records else end,
        }
        if body["next_cursor"] is ...:
            del body["next_cursor"]
        return Response(json.dumps(body), content_type="application/json")

    return handler


@pytest.mark.parametrize("with_total", [True, False])
@pytest.mark.usefixtures("prefect_server")
def test_offset_paging_imports_every_record_in_order(
    httpserver: HTTPServer, sqlite_url: str, with_total: bool
) -> None:
    httpserver.expect_request("/products").respond_with_handler(offset_handler(7, with_total=with_total))
    pattern = OFFSET | ({"total_records_path": "$.total"} if with_total else {})
    state, report = run_paging_job(httpserver, sqlite_url, pattern)
    assert status_of(state) == "SUCCESS", report.error
    assert report.total("inserted") == 7
    assert report.warnings == []
    offsets = [int(request.args["offset"]) for request, _ in httpserver.log]
    assert offsets == ([0, 3, 6] if with_total else [0, 3, 6, 9])  # no total: stops at the empty page
    assert {request.args["limit"] for request, _ in httpserver.log} == {"3"}


@pytest.mark.parametrize("end", [None, "", ...], ids=["null", "empty", "missing"])
@pytest.mark.usefixtures("prefect_server")
def test_cursor_paging_follows_the_cursor_until_it_ends(
    httpserver: HTTPServer, sqlite_url: str, end: Any
) -> None:
    httpserver.expect_request("/products").respond_with_handler(cursor_handler(7, end=end))
    state, report = run_paging_job(httpserver, sqlite_url, CURSOR)
    assert status_of(state) == "SUCCESS", report.error
    assert report.total("inserted") == 7
    assert report.warnings == []
    assert [request.args.get("cursor") for request, _ in httpserver.log] == [None, "3", "6"]


@pytest.mark.usefixtures("prefect_server")
def test_a_cursor_api_that_ignores_the_cursor_is_stopped_by_the_loop_guard(
    httpserver: HTTPServer, sqlite_url: str
) -> None:
    body = {"items": [product(1), product(2)], "next_cursor": "abc"}
    httpserver.expect_request("/products").respond_with_json(body)
    state, report = run_paging_job(httpserver, sqlite_url, CURSOR)
    assert state.name == "Failed"
    assert "`pattern.cursor_param` ('cursor')" in str(report.error)
    assert len(httpserver.log) <= 3


@pytest.mark.usefixtures("prefect_server")
def test_page_number_is_the_kind_and_paging_its_alias(httpserver: HTTPServer, sqlite_url: str) -> None:
    httpserver.expect_request("/products").respond_with_handler(pages_handler(5))
    state, report = run_paging_job(httpserver, sqlite_url, PAGING | {"kind": "page_number"})
    assert status_of(state) == "SUCCESS", report.error
    assert report.total("inserted") == 5


# --- issue 15 finding 10: next-page links ----------------------------------------------------------


def link_handler(server: HTTPServer, records: int, *, header: bool, host: str | None = None) -> Any:
    """Serve `records` three a page; the next page's URL is in the body (`$.links.next`) or the Link header."""

    def handler(request: Request) -> Response:
        number = int(request.args.get("page", "1"))
        start = (number - 1) * 3
        body: dict[str, Any] = {"items": [product(n) for n in range(start, min(start + 3, records))]}
        following = None
        if start + 3 < records:
            following = f"/products?page={number + 1}&tag=x"
            if host is not None:
                following = f"http://{host}{following}"
            elif header:
                following = server.url_for(following)  # absolute in the header; relative in the body
        headers = {}
        if header and following is not None:
            headers["Link"] = f'<{following}>; rel="next", <{server.url_for("/products")}>; rel="first"'
        elif following is not None:
            body["links"] = {"next": following}
        return Response(json.dumps(body), content_type="application/json", headers=headers)

    return handler


LINK: dict[str, Any] = {"kind": "link", "content_path": "$.items"}


@pytest.mark.parametrize("header", [False, True], ids=["body", "link-header"])
@pytest.mark.usefixtures("prefect_server")
def test_link_paging_follows_the_next_url(httpserver: HTTPServer, sqlite_url: str, header: bool) -> None:
    httpserver.expect_request("/products").respond_with_handler(link_handler(httpserver, 7, header=header))
    pattern = LINK if header else LINK | {"next_url_path": "$.links.next"}
    state, report = run_paging_job(httpserver, sqlite_url, pattern)
    assert status_of(state) == "SUCCESS", report.error
    assert report.total("inserted") == 7
    assert [request.args.get("page") for request, _ in httpserver.log] == [None, "2", "3"]


@pytest.mark.usefixtures("prefect_server")
def test_a_next_url_on_another_host_is_not_followed(httpserver: HTTPServer, sqlite_url: str) -> None:
    handler = link_handler(httpserver, 7, header=False, host="elsewhere.invalid:8080")
    httpserver.expect_request("/products").respond_with_handler(handler)
    state, report = run_paging_job(httpserver, sqlite_url, LINK | {"next_url_path": "$.links.next"})
    assert state.name == "Failed"
    assert "'elsewhere.invalid'" in str(report.error)
    assert "`trusted_hosts`" in str(report.error)
    assert len(httpserver.log) == 1
