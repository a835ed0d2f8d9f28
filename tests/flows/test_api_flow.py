"""The API import flow end to end: a real HTTP server on loopback (pytest-httpserver), the Prefect
test server, real SQLite and PostgreSQL hub databases. The seed's two worked examples are here."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import State
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from blocks.api import ApiConnection
from blocks.database import DatabaseConnection
from flows.import_json_from_api import ApiImportJob, import_json_from_api
from tasks.calls import iso_utc
from tasks.report import ImportReport, render_markdown, render_text
from tests.flows.hub import rows, run_for_report

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

    assert state.name == "Completed", report.error or report.files
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
        "path_variables": {"id": "{{invocationId}}"},
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

    assert state.name == "Completed", report.error or report.files
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
    assert again_state.name == "Skipped"
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
    assert first_state.name == "Completed", first.error
    assert first.total("inserted") == 2

    second_state, second = _run(job)
    assert second_state.name == "Skipped"  # the last call returned no records
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
