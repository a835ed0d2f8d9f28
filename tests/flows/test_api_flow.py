"""The API import flow end to end: a real HTTP server on loopback (pytest-httpserver), the Prefect
test server, real SQLite and PostgreSQL hub databases. The seed's two worked examples are here."""

from __future__ import annotations

import gzip
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import State
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from blocks.api import ApiConnection
from blocks.database import DatabaseConnection
from flows.import_json_from_api import ApiImportJob, import_json_from_api, main
from tasks.api.calls import iso_utc
from tasks.run.report import ImportReport, render_markdown, render_text
from tests.flows.hub import rows, run_for_report, status_of

pytestmark = pytest.mark.usefixtures("prefect_server")

API_KEY = "k3y-API-secret-9876"
PRODUCTS = 2399
FAST_HTTP = {"transport_initial_wait_seconds": 0.01, "timeout_seconds": 10}
PRODUCT_MAPPING = {
    "$.productId": "productExternalId",
    "$.name": "productNames",
    "$.nomenclatures[0].nomenclatureId": "productClassificationCategoryId",
    "$.eans[*]": "productTags",
}


@pytest.fixture(autouse=True)
def _downloads_from_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's allow for private addresses: these tests' servers are on loopback.
    monkeypatch.setenv("DATAHUB_DOWNLOAD_ALLOW_PRIVATE", "1")


def _product(n: int) -> dict[str, Any]:
    # The seed's response element, shortened.
    return {
        "productId": f"{n:06d}",
        "internalRef": f"{n:06d}",
        "name": f"red cotton shirt {n}",
        "brand": "Clothes & Co",
        "isEnable": True,
        "eans": ["0442301152930", f"{n:06d}"],
        "nomenclatures": [{"nomenclatureId": "0001-0001-0028-0010", "type": "CL", "name": "Clothing"}],
        "imagesUrls": None,
    }


@pytest.fixture
def api_block(httpserver: HTTPServer) -> str:
    name = f"api-{uuid.uuid4().hex[:8]}"
    ApiConnection(base_url=httpserver.url_for("/"), auth="api_key", api_key=SecretStr(API_KEY)).save(
        name, overwrite=True
    )
    return name


def _hub(url: str) -> str:
    name = f"hub-{uuid.uuid4().hex[:8]}"
    DatabaseConnection(url=SecretStr(url)).save(name, overwrite=True)
    return name


def _job(connection: str, target: str, calls: list[dict[str, Any]], **overrides: Any) -> ApiImportJob:
    job: dict[str, Any] = {
        "name": f"api-test-{uuid.uuid4().hex[:8]}",
        "connection": connection,
        "entity": "products",
        "calls": calls,
        "mapping": PRODUCT_MAPPING,
        "target": target,
        "http": FAST_HTTP,
    }
    return ApiImportJob.model_validate(job | overrides)


def _run(job: ApiImportJob) -> tuple[State, ImportReport]:
    return run_for_report(import_json_from_api, job)


def _artifact_text(key: str) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=1
        )
    return json.dumps([a.model_dump(mode="json") for a in found])


def _paging_handler(request: Request) -> Response:
    assert request.headers.get("X-API-Key") == API_KEY
    number, size = int(request.args["pageNumber"]), int(request.args["pageSize"])
    start = (number - 1) * size  # the seed's first page is 1
    elements = [_product(n) for n in range(start, min(start + size, PRODUCTS))]
    pages = -(-PRODUCTS // size)
    body = {
        "paging": {"pageNumber": number, "pageSize": size, "totalPages": pages, "totalRecords": PRODUCTS},
        "elements": elements,
    }
    return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged, Prefect's own (non-propagating) loggers included."""
    caplog.set_level(logging.INFO)
    prefect_logger = logging.getLogger("prefect")
    prefect_logger.addHandler(caplog.handler)
    yield caplog
    prefect_logger.removeHandler(caplog.handler)


def test_seed_paging_example_loads_2399_products(
    httpserver: HTTPServer, api_block: str, database_url: str, captured_logs: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/products").respond_with_handler(_paging_handler)
    paging = {
        "kind": "paging",
        "page_number_param": "pageNumber",
        "page_size_param": "pageSize",
        "total_pages_path": "$.paging.totalPages",
        "first_page": 1,
        "page_size": 1,
        "content_path": "$.elements",
    }
    job = _job(
        api_block, _hub(database_url), [{"name": "list-products", "path": "products", "pattern": paging}]
    )
    state, report = _run(job)

    assert status_of(state) == "SUCCESS", report.error or report.files
    assert report.pages == PRODUCTS
    assert (report.total("rows_read"), report.total("inserted"), report.total("rejected")) == (
        PRODUCTS,
        PRODUCTS,
        0,
    )
    assert report.warnings == []
    assert rows(database_url, "SELECT COUNT(*) FROM products") == [(PRODUCTS,)]
    [(name, category, tags)] = rows(
        database_url,
        'SELECT "productNames", "productClassificationCategoryId", "productTags" FROM products '
        "WHERE \"productExternalId\" = '000820'",
    )
    assert (name, category) == ("red cotton shirt 820", "0001-0001-0028-0010")
    assert (json.loads(tags) if isinstance(tags, str) else tags) == ["0442301152930", "000820"]
    history = rows(database_url, f"SELECT kind, status, rows_read FROM datahub_runs WHERE job = '{job.name}'")
    assert history == [("json-api", "SUCCESS", PRODUCTS)]
    # (e) the API key went to the server but shows up nowhere on our side.
    key = job.name  # the artifact key derived from the job name
    seen = (
        render_text(report)
        + render_markdown(report)
        + report.model_dump_json()
        + _artifact_text(f"{key}-summary")
    )
    assert API_KEY not in seen
    assert API_KEY not in captured_logs.text
    assert "list-products" in captured_logs.text  # the logs were captured
    # (f) one progress artifact: pages of the API's totalPages, at 100 % once done.
    progress = json.loads(_artifact_text(f"{key}-progress"))[0]
    assert (progress["type"], progress["data"]) == ("progress", 100.0)
    assert progress["description"].startswith(
        f"SUCCESS: {PRODUCTS:,} pages, rows read {PRODUCTS:,}, inserted {PRODUCTS:,}, updated 0, unchanged 0, "
        f"rejected 0. page {PRODUCTS:,} of {PRODUCTS:,}, {PRODUCTS:,} rows, "
    )


def _offers_server(httpserver: HTTPServer, csv_text: str) -> dict[str, int]:
    counts = {"generate": 0, "status": 0}

    def generate(request: Request) -> Response:
        counts["generate"] += 1
        body = {
            "invocationId": "799be90d-5528-4f8b-a651-687e73a7ce8e",
            "statusFile": "PENDING",
            "urlFile": "",
        }
        return Response(json.dumps(body), content_type="application/json")

    def status(request: Request) -> Response:
        counts["status"] += 1
        ready = counts["status"] % 2 == 0  # PENDING, then AVAILABLE, on every run
        body = {
            "invocationId": "799be90d-5528-4f8b-a651-687e73a7ce8e",
            "statusFile": "AVAILABLE" if ready else "PENDING",
            "urlFile": httpserver.url_for("/files/offers.csv") if ready else "",
        }
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/offers/generate", method="POST").respond_with_handler(generate)
    httpserver.expect_request(
        "/offers/invocations/799be90d-5528-4f8b-a651-687e73a7ce8e"
    ).respond_with_handler(status)
    httpserver.expect_request("/files/offers.csv").respond_with_data(csv_text, content_type="text/csv")
    return counts


HYBRID_CALLS: list[dict[str, Any]] = [
    {
        "name": "generate",
        "method": "POST",
        "path": "offers/generate",
        "body": {"format": "CSV"},
        "capture": {"invocationId": "$.invocationId"},
    },
    {
        "name": "wait-for-file",
        "path": "offers/invocations/{id}",
        "path_variables": {"id": "${invocationId}"},
        "pattern": {
            "kind": "retry",
            "max_attempts": 10,
            "interval_seconds": 0.05,
            "expected_status": 200,
            "condition_path": "statusFile",
            "value": "AVAILABLE",
        },
    },
    {
        "name": "download",
        "pattern": {
            "kind": "download",
            "url_from": "$.urlFile",
            "format": {"kind": "csv", "csv": {"delimiter": ";"}},
        },
    },
]
OFFERS_CSV = "Stock External Id;Stock Variant Id;Supplier External Id;Stock Number\nS1;V1;SUP1;5\nS2;V2;SUP1;0\nS3;V3;SUP2;12\n"


def test_seed_hybrid_offers_example_polls_downloads_and_skips_the_same_file(
    httpserver: HTTPServer, api_block: str, sqlite_url: str
) -> None:
    counts = _offers_server(httpserver, OFFERS_CSV)
    job = _job(api_block, _hub(sqlite_url), HYBRID_CALLS, entity="offers", mapping=None)
    state, report = _run(job)

    assert status_of(state) == "SUCCESS", report.error or report.files
    assert counts == {"generate": 1, "status": 2}  # PENDING, then AVAILABLE
    assert report.retries == 1
    assert [(f.status, f.inserted) for f in report.files] == [("SUCCESS", 3)]
    assert report.files[0].path.endswith("/files/offers.csv")
    assert rows(sqlite_url, 'SELECT "stockExternalId", "stockNumber" FROM offer_stocks ORDER BY 1') == [
        ("S1", 5),
        ("S2", 0),
        ("S3", 12),
    ]
    # (d) the captured invocationId went into the second call's path.
    polled = [r.path for r, _ in httpserver.log if "invocations" in r.path]
    assert polled == ["/offers/invocations/799be90d-5528-4f8b-a651-687e73a7ce8e"] * 2
    generated = [r for r, _ in httpserver.log if r.path == "/offers/generate"]
    assert json.loads(generated[0].data) == {"format": "CSV"}

    again_state, again = _run(job)
    assert status_of(again_state) == "SKIPPED"
    assert [f.status for f in again.files] == ["SKIPPED"]
    assert "Already imported" in again.files[0].message
    assert rows(sqlite_url, "SELECT COUNT(*) FROM datahub_ledger")[0][0] == 1


def test_last_job_execution_minus_duration_first_and_later_run(
    httpserver: HTTPServer, api_block: str, sqlite_url: str
) -> None:
    answers = iter([[_product(1), _product(2)], []])
    httpserver.expect_request("/changes").respond_with_handler(
        lambda request: Response(json.dumps({"items": next(answers)}), content_type="application/json")
    )
    calls = [
        {
            "name": "changes",
            "path": "changes",
            "query": {"since": "lastJobExecutionMinusDuration(PT1H)", "kind": "products"},
            "pattern": {"kind": "default", "content_path": "$.items"},
        }
    ]
    job = _job(api_block, _hub(sqlite_url), calls, initial_since="2026-01-01T00:00:00Z")
    first_state, first = _run(job)
    assert status_of(first_state) == "SUCCESS", first.error
    assert first.total("inserted") == 2

    second_state, second = _run(job)
    assert status_of(second_state) == "SKIPPED"  # the last call returned no records
    assert second.files[0].message == "The last call returned no records."
    sinces = [r.args["since"] for r, _ in httpserver.log]
    assert sinces == ["2026-01-01T00:00:00Z", iso_utc(first.started_at - timedelta(hours=1))]
    assert all(r.args["kind"] == "products" for r, _ in httpserver.log)


def test_refused_call_fails_the_run_without_showing_the_api_key(
    httpserver: HTTPServer, api_block: str, postgres_url: str, captured_logs: pytest.LogCaptureFixture
) -> None:
    def refuse(request: Request) -> Response:
        return Response(f"key {request.headers.get('X-API-Key')} may not read this", status=403)

    httpserver.expect_request("/products").respond_with_handler(refuse)
    job = _job(api_block, _hub(postgres_url), [{"name": "list", "path": "products", "query": {"token": "q"}}])
    state, report = _run(job)

    assert state.is_failed()
    assert "403" in report.error
    assert "products" in report.error
    assert "token=" not in report.error  # no query string in messages
    assert len(httpserver.log) == 1  # a 403 is not retried
    shown = render_text(report) + report.model_dump_json() + _artifact_text(f"{job.name}-summary")
    assert API_KEY not in shown
    assert API_KEY not in captured_logs.text
    assert rows(postgres_url, f"SELECT status FROM datahub_runs WHERE job = '{job.name}'") == [("FAILED",)]
    # An expected failure is one line in the run's log: what was refused, no Python traceback.
    failed = [
        r for r in captured_logs.records if "Task run failed with exception: SourceRejectedError" in r.message
    ]
    assert failed, captured_logs.text
    assert all(record.exc_info is None for record in failed)
    assert "Traceback (most recent call last)" not in captured_logs.text


def test_polling_that_never_matches_fails_with_the_last_value_seen(
    httpserver: HTTPServer, api_block: str, sqlite_url: str
) -> None:
    httpserver.expect_request("/status").respond_with_json({"object": {"status": "PENDING"}})
    calls = [
        {
            "name": "wait",
            "path": "status",
            "pattern": {
                "kind": "retry",
                "max_attempts": 3,
                "interval_seconds": 0.01,
                "condition_path": "$.object.status",
                "value": "DONE",
            },
        }
    ]
    state, report = _run(_job(api_block, _hub(sqlite_url), calls))
    assert state.is_failed()
    assert len(httpserver.log) == 3
    assert "after 3 attempt(s)" in report.error
    assert "'PENDING'" in report.error
    assert "max_attempts" in report.error


# --- every method, transport rules and credentials, end to end -------------------------------------


@pytest.fixture
def other_host() -> Iterator[HTTPServer]:
    """A second server on another host name (127.0.0.1, while `httpserver` is `localhost`)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def _items(*ids: str) -> Response:
    return Response(json.dumps({"items": [_product(int(i)) for i in ids]}), content_type="application/json")


def test_every_method_in_one_chain_with_captured_values(
    httpserver: HTTPServer, api_block: str, sqlite_url: str
) -> None:
    seen: list[tuple[str, str, Any]] = []

    def record(request: Request) -> Response:
        assert request.headers.get("X-API-Key") == API_KEY
        seen.append((request.method, request.path, json.loads(request.data) if request.data else None))
        if request.method == "POST":
            return Response(json.dumps({"basket": {"id": "b 7/1"}}), content_type="application/json")
        if request.method == "DELETE":
            return Response(status=204)
        if request.method == "GET":
            return _items("1", "2")
        return Response(json.dumps({"ok": True}), content_type="application/json")

    for method in ("POST", "PUT", "PATCH", "DELETE", "GET"):
        httpserver.expect_request(re.compile("^/baskets.*"), method=method).respond_with_handler(record)
    calls = [
        {
            "name": "create",
            "method": "POST",
            "path": "baskets",
            "body": {"lines": [1, 2]},
            "capture": {"basket": "$.basket.id"},
        },
        {
            "name": "replace",
            "method": "PUT",
            "path": "baskets/{id}",
            "path_variables": {"id": "${basket}"},
            "body": {"id": "${basket}", "lines": [3]},
        },
        {
            "name": "touch",
            "method": "PATCH",
            "path": "baskets/{id}",
            "path_variables": {"id": "${basket}"},
            "body": {"ok": "$.ok"},
        },
        {"name": "drop", "method": "DELETE", "path": "baskets/{id}", "path_variables": {"id": "${basket}"}},
        {
            "name": "list",
            "method": "GET",
            "path": "baskets/{id}/items",
            "path_variables": {"id": "${basket}"},
            "pattern": {"kind": "default", "content_path": "$.items"},
        },
    ]
    state, report = _run(_job(api_block, _hub(sqlite_url), calls))

    assert status_of(state) == "SUCCESS", report.error
    assert seen == [
        ("POST", "/baskets", {"lines": [1, 2]}),
        ("PUT", "/baskets/b 7/1", {"id": "b 7/1", "lines": [3]}),  # sent percent-encoded as b%207%2F1
        ("PATCH", "/baskets/b 7/1", {"ok": True}),  # `$.ok` of the PUT's answer, type kept
        ("DELETE", "/baskets/b 7/1", None),
        ("GET", "/baskets/b 7/1/items", None),
    ]
    assert all("/b%207%2F1" in r.environ["RAW_URI"] for r, _ in httpserver.log[1:])
    assert report.total("inserted") == 2


def test_429_with_retry_after_then_success_in_a_run(
    httpserver: HTTPServer, api_block: str, sqlite_url: str
) -> None:
    httpserver.expect_ordered_request("/items").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_ordered_request("/items").respond_with_handler(lambda r: _items("5"))
    calls = [{"name": "items", "path": "items", "pattern": {"kind": "default", "content_path": "$.items"}}]
    state, report = _run(_job(api_block, _hub(sqlite_url), calls))
    assert status_of(state) == "SUCCESS", report.error
    assert len(httpserver.log) == 2
    assert report.total("inserted") == 1


def test_503_every_time_fails_the_run_after_the_attempts(
    httpserver: HTTPServer, api_block: str, sqlite_url: str
) -> None:
    httpserver.expect_request("/items").respond_with_data("down for maintenance", status=503)
    calls = [{"name": "items", "path": "items"}]
    http = FAST_HTTP | {"transport_attempts": 3}
    state, report = _run(_job(api_block, _hub(sqlite_url), calls, http=http))
    assert state.is_failed()
    assert len(httpserver.log) == 3
    assert "GET http://localhost" in report.error
    assert "503" in report.error
    assert "Gave up after 3 attempt(s)" in report.error
    assert "down for maintenance" in report.error
    assert rows(sqlite_url, "SELECT status FROM datahub_runs") == [("FAILED",)]


def test_401_is_not_retried_in_a_run(httpserver: HTTPServer, api_block: str, sqlite_url: str) -> None:
    httpserver.expect_request("/items").respond_with_data("bad key", status=401)
    state, report = _run(_job(api_block, _hub(sqlite_url), [{"name": "items", "path": "items"}]))
    assert state.is_failed()
    assert len(httpserver.log) == 1
    assert "401" in report.error
    assert f"credentials of block {api_block!r}" in report.error


def test_a_post_is_not_sent_again_after_a_read_timeout(
    httpserver: HTTPServer, api_block: str, sqlite_url: str
) -> None:
    received: list[str] = []

    def slow(request: Request) -> Response:
        received.append(request.method)  # counted on arrival: the log only has answered requests
        time.sleep(1.0)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/orders", method="POST").respond_with_handler(slow)
    calls = [{"name": "create", "method": "POST", "path": "orders", "body": {"n": 1}}]
    http = FAST_HTTP | {"timeout_seconds": 0.3}
    state, report = _run(_job(api_block, _hub(sqlite_url), calls, http=http))
    assert state.is_failed()
    assert received == ["POST"]
    for _ in range(40):  # let the slow answer finish, so the next test starts on a quiet server
        if httpserver.log:
            break
        time.sleep(0.05)
    assert len(httpserver.log) == 1
    assert "ReadTimeout" in report.error
    assert "Not sent again" in report.error


@pytest.mark.parametrize("auth", ["api_key", "bearer"])
@pytest.mark.parametrize("trusted", [False, True])
def test_a_download_on_another_host_gets_no_credentials_unless_trusted(
    httpserver: HTTPServer,
    other_host: HTTPServer,
    sqlite_url: str,
    auth: str,
    trusted: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not trusted:  # a host the worker lets downloads reach, without the block trusting it
        monkeypatch.setenv("DATAHUB_DOWNLOAD_HOSTS", f"127.0.0.1:{other_host.port}")
    secret = SecretStr(API_KEY)
    block = ApiConnection(
        base_url=httpserver.url_for("/"),
        auth=auth,  # type: ignore[arg-type]
        api_key=secret if auth == "api_key" else None,
        bearer_token=secret if auth == "bearer" else None,
        trusted_hosts=[f"127.0.0.1:{other_host.port}"] if trusted else [],
    )
    name = f"api-{uuid.uuid4().hex[:8]}"
    block.save(name, overwrite=True)
    file_url = other_host.url_for("/exports/offers.csv")
    httpserver.expect_request("/export").respond_with_json({"urlFile": file_url})
    other_host.expect_request("/exports/offers.csv").respond_with_data(OFFERS_CSV, content_type="text/csv")
    calls = [
        {"name": "export", "path": "export"},
        {
            "name": "download",
            "pattern": {
                "kind": "download",
                "url_from": "$.urlFile",
                "format": {"kind": "csv", "csv": {"delimiter": ";"}},
            },
        },
    ]
    state, report = _run(_job(name, _hub(sqlite_url), calls, entity="offers", mapping=None))

    assert status_of(state) == "SUCCESS", report.error
    [(api_request, _)] = httpserver.log
    [(file_request, _)] = other_host.log
    assert API_KEY in str(api_request.headers)  # the API's own host gets the credentials
    sent = str(file_request.headers)
    assert (API_KEY in sent) is trusted
    if not trusted:
        assert "Authorization" not in file_request.headers
        assert "X-API-Key" not in file_request.headers
    assert report.files[0].sha256 is not None


# --- paging: order under concurrency, export, sizes -------------------------------------------------


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    """A server answering requests in parallel, so concurrent pages really overlap."""
    server = HTTPServer(host="localhost", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


SEED_PAGING: dict[str, Any] = {
    "kind": "paging",
    "page_number_param": "pageNumber",
    "page_size_param": "pageSize",
    "total_pages_path": "$.paging.totalPages",
    "first_page": 1,
    "content_path": "$.elements",
}


def test_concurrent_pages_keep_record_order_and_can_be_exported(
    threaded_server: HTTPServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAHUB_EXPORT_ROOT", str(tmp_path))  # the worker's root exports may go under
    # 40 pages of 5; product 7 appears again on page 30 with another name: the later one must win,
    # which only holds if pages are loaded in order even when the early ones answer last.
    in_flight = {"now": 0, "most": 0}
    lock = threading.Lock()

    def page(request: Request) -> Response:
        number, size = int(request.args["pageNumber"]), int(request.args["pageSize"])
        with lock:
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])
        time.sleep(0.05 if number % 3 == 1 else 0.0)
        with lock:
            in_flight["now"] -= 1
        elements = [_product(n) for n in range((number - 1) * size, number * size)]
        if number == 30:
            elements[0] = _product(7) | {"name": "renamed on page 30"}
        body = {"paging": {"totalPages": 40, "totalRecords": 200}, "elements": elements}
        return Response(json.dumps(body), content_type="application/json")

    threaded_server.expect_request("/products").respond_with_handler(page)
    ApiConnection(base_url=threaded_server.url_for("/")).save(name := f"api-{uuid.uuid4().hex[:8]}")
    paging = SEED_PAGING | {"page_size": 5, "concurrency": 4, "export_pages_to": str(tmp_path / "exports")}
    job = _job(name, _hub(sqlite_url), [{"name": "products", "path": "products", "pattern": paging}])
    state, report = _run(job)

    assert status_of(state) == "SUCCESS", report.error
    assert report.pages == 40
    assert in_flight["most"] > 1
    assert rows(sqlite_url, 'SELECT "productNames" FROM products WHERE "productExternalId" = \'000007\'') == [
        ("renamed on page 30",)
    ]
    assert report.total("rows_read") == 200
    [exported] = list((tmp_path / "exports").glob(f"{job.name}-products-*.ndjson.gz"))
    with gzip.open(exported, "rt", encoding="utf-8") as lines:
        pages = [json.loads(line) for line in lines]
    assert len(pages) == 40
    assert [p["elements"][0]["productId"] for p in pages[:3]] == ["000000", "000005", "000010"]


# --- child records ----------------------------------------------------------------------------------


def _order(n: int, lines: int) -> dict[str, Any]:
    return {
        "id": f"O{n}",
        "account": "ACC1",
        "supplier": "SUP1",
        "status": "ORDER_CREATED",
        "orderLines": [
            {"lineId": f"L{k}", "sku": f"V{n}-{k}", "quantity": k + 1, "price": {"net": 9.5}}
            for k in range(lines)
        ],
    }


def test_orders_and_their_order_lines_load_as_child_records(
    httpserver: HTTPServer, api_block: str, database_url: str
) -> None:
    body = {"elements": [_order(1, 2), _order(2, 1), _order(3, 3), _order(4, 0)]}
    httpserver.expect_request("/orders").respond_with_json(body)
    calls = [
        {"name": "orders", "path": "orders", "pattern": {"kind": "default", "content_path": "$.elements"}}
    ]
    mapping = {
        "$.id": "orderExternalId",
        "$.account": "accountExternalId",
        "$.supplier": "supplierExternalId",
        "$.status": "orderStatus",
    }
    children = {
        "path": "$.orderLines",
        "mapping": {
            "$.lineId": "orderLineExternalId",
            "$.sku": "variantExternalId",
            "$.quantity": "orderLineQuantity",
            "$.price.net": "netUnitPrice",
        },
    }
    job = _job(api_block, _hub(database_url), calls, entity="orders", mapping=mapping, children=children)
    state, report = _run(job)

    assert status_of(state) == "SUCCESS", report.error or report.files
    assert rows(database_url, 'SELECT "orderExternalId", "orderStatus" FROM orders ORDER BY 1') == [
        ("O1", "ORDER_CREATED"),
        ("O2", "ORDER_CREATED"),
        ("O3", "ORDER_CREATED"),
    ]
    assert report.warnings == [
        "1 record(s) had no items in `$.orderLines` and were not loaded (records 4 of orders): each row "
        "needs its child key."
    ]
    lines = rows(
        database_url,
        'SELECT "orderExternalId", "orderLineExternalId", "variantExternalId", "orderLineQuantity" '
        "FROM order_lines ORDER BY 1, 2",
    )
    assert lines == [
        ("O1", "L0", "V1-0", 1),
        ("O1", "L1", "V1-1", 2),
        ("O2", "L0", "V2-0", 1),
        ("O3", "L0", "V3-0", 1),
        ("O3", "L1", "V3-1", 2),
        ("O3", "L2", "V3-2", 3),
    ]


# --- python -m flows.import_json_from_api --check job.yaml ------------------------------------------


def _job_file(tmp_path: Path, job: ApiImportJob) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"job": job.model_dump(mode="json")}))
    return str(path)


def _key_checking(request: Request) -> Response:
    if request.headers.get("X-API-Key") != API_KEY:
        return Response("unknown key", status=401)
    return _items("1")


def test_check_sends_the_first_get_and_proves_the_credentials(
    httpserver: HTTPServer,
    api_block: str,
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    httpserver.expect_request("/products").respond_with_handler(_key_checking)
    paging = SEED_PAGING | {"page_size": 50}
    job = _job(api_block, _hub(sqlite_url), [{"name": "list", "path": "products", "pattern": paging}])
    assert main(["--check", _job_file(tmp_path, job)]) == 0
    out = capsys.readouterr().out
    assert "answered 200 with JSON: base URL, credentials and path OK" in out
    assert f"{api_block}: connection OK" in out
    [(request, _)] = httpserver.log
    assert request.args.to_dict() == {"pageNumber": "1", "pageSize": "50"}
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # nothing ran: no hub database even


def test_check_reports_refused_credentials_and_an_unreachable_api(
    httpserver: HTTPServer, sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    httpserver.expect_request("/products").respond_with_handler(_key_checking)
    wrong = f"api-{uuid.uuid4().hex[:8]}"
    ApiConnection(base_url=httpserver.url_for("/"), auth="api_key", api_key=SecretStr("wrong-key-123")).save(
        wrong
    )
    job = _job(wrong, _hub(sqlite_url), [{"name": "list", "path": "products"}])
    assert main(["--check", _job_file(tmp_path, job)]) == 1
    out = capsys.readouterr().out
    assert "problem: GET http://localhost" in out
    assert "401" in out
    assert f"Check the credentials of block {wrong!r}" in out
    assert "wrong-key-123" not in out
    assert len(httpserver.log) == 1  # a 401 is not retried

    down = f"api-{uuid.uuid4().hex[:8]}"
    ApiConnection(base_url="http://127.0.0.1:9/", timeout_seconds=2).save(down)  # the discard port: refused
    post_first = [{"name": "create", "method": "POST", "path": "exports"}]
    assert main(["--check", _job_file(tmp_path, _job(down, _hub(sqlite_url), post_first))]) == 1
    assert "problem: GET http://127.0.0.1:9/ failed: ConnectError" in capsys.readouterr().out

    up = f"api-{uuid.uuid4().hex[:8]}"
    ApiConnection(base_url=httpserver.url_for("/")).save(up)
    httpserver.expect_request("/").respond_with_data("hello")
    assert main(["--check", _job_file(tmp_path, _job(up, _hub(sqlite_url), post_first))]) == 0
    out = capsys.readouterr().out
    assert "the API is reachable. The credentials were not proved" in out
    assert not [r for r, _ in httpserver.log if r.method == "POST"]
