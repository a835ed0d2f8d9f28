"""`python -m deployments preview`: a real first file over FTP and a real first page over HTTP,
mapped and validated, and nothing written (hub database untouched, file still in inbound, no POST)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from blocks.api import ApiConnection
from blocks.database import DatabaseConnection
from deployments.__main__ import main
from deployments.manifest import load_deployments
from tests.fixtures_servers import LocalFtp, make_block

pytestmark = pytest.mark.usefixtures("prefect_server")

API_KEY = "k3y-preview-secret-42"
PRODUCTS_CSV = (
    "Product External Id;Product Names;Product Classification Category Id;Variant External Id;"
    "Variant Names;Variant Price\n"
    "P1;Chair;C1;V1;Chair oak;10.50\n"
    "P2;Table;C2;V2;Table;ten\n"
    "P3;Lamp;C3;V3;Lamp;7\n"
)


def _deployment_job(name: str, **overrides: Any) -> dict[str, Any]:
    [deployment] = [d for d in load_deployments() if d.name == name]
    return {**deployment.parameters["job"], **overrides}


def _job_file(tmp_path: Path, job: dict[str, Any]) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"job": job}, sort_keys=False), encoding="utf-8")
    return path


def _hub_block(tmp_path: Path) -> tuple[str, Path]:
    name = f"hub-{uuid.uuid4().hex[:8]}"
    database = tmp_path / "hub.db"
    DatabaseConnection(url=SecretStr(f"sqlite:///{database}")).save(name, overwrite=True)
    return name, database


def _ftp_block(server: LocalFtp) -> str:
    name = f"ftp-{uuid.uuid4().hex[:8]}"
    make_block(server).save(name, overwrite=True)
    return name


def _api_block(httpserver: HTTPServer) -> str:
    name = f"api-{uuid.uuid4().hex[:8]}"
    ApiConnection(base_url=httpserver.url_for("/"), auth="api_key", api_key=SecretStr(API_KEY)).save(
        name, overwrite=True
    )
    return name


def test_csv_preview_maps_and_validates_the_first_file_and_writes_nothing(
    tmp_path: Path, ftp_server: LocalFtp, capsys: pytest.CaptureFixture[str]
) -> None:
    inbound = ftp_server.root / "products/inbound"
    inbound.mkdir(parents=True)
    (ftp_server.root / "products/outbound").mkdir(parents=True)
    (inbound / "products-1.csv").write_text(PRODUCTS_CSV, encoding="utf-8")
    hub, database = _hub_block(tmp_path)
    job = _deployment_job("products-from-erp-ftp", connection=_ftp_block(ftp_server), target=hub)

    code = main(
        ["preview", "import-csv-from-ftp/products-from-erp-ftp", "--job-file", str(_job_file(tmp_path, job))]
    )
    out = capsys.readouterr().out

    assert code == 0, out
    assert "Read: products/inbound/products-1.csv (" in out
    assert "the oldest of 1 matching file(s) in products/inbound" in out
    assert "Variant Price -> variantPrice" in out
    assert "First 3 record(s): 2 ok, 1 rejected" in out
    lines = out.splitlines()
    assert any(line.split()[:3] == ["1", "2", "ok"] and "10.50" in line for line in lines)
    assert any(line.split()[:4] == ["2", "3", "rejected", "P2"] for line in lines)
    assert any("Variant Price" in line and "ten" in line and "F-E-012" in line for line in lines)
    # Nothing written: no hub database, the file still in inbound, nothing moved.
    assert not database.exists()
    assert (inbound / "products-1.csv").read_text(encoding="utf-8") == PRODUCTS_CSV
    assert list((ftp_server.root / "products/outbound").iterdir()) == []


def test_csv_preview_rows_limit_and_a_missing_single_file(
    tmp_path: Path, ftp_server: LocalFtp, capsys: pytest.CaptureFixture[str]
) -> None:
    (ftp_server.root / "products").mkdir()
    (ftp_server.root / "products/one.csv").write_text(PRODUCTS_CSV, encoding="utf-8")
    connection = _ftp_block(ftp_server)
    source = {"kind": "file", "file_path": "products/one.csv"}
    job = _deployment_job("products-from-erp-ftp", connection=connection, source=source)

    assert (
        main(["preview", "products-from-erp-ftp", "--job-file", str(_job_file(tmp_path, job)), "--rows", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "First 1 record(s): 1 ok, 0 rejected" in out
    assert "Rejects:" not in out

    gone = _deployment_job(
        "products-from-erp-ftp", connection=connection, source=source | {"file_path": "x.csv"}
    )
    assert main(["preview", "products-from-erp-ftp", "--job-file", str(_job_file(tmp_path, gone))]) == 0
    assert "x.csv is not on ftp://importer@127.0.0.1:" in capsys.readouterr().out


def _product(n: int, price: Any = 10) -> dict[str, Any]:
    return {
        "productId": f"P{n}",
        "name": f"shirt {n}",
        "brand": "Clothes & Co",
        "eans": ["0442301152930", f"{n:06d}"],
        "nomenclatures": [{"nomenclatureId": "CL-1"}],
        "variant": {"id": f"V{n}", "price": price},
    }


def test_api_preview_reads_only_the_first_page(
    tmp_path: Path, httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    products = [_product(1), _product(2, "twelve"), _product(3), _product(4), _product(5)]

    def page(request: Request) -> Response:
        assert request.headers.get("X-API-Key") == API_KEY
        number, size = int(request.args["pageNumber"]), int(request.args["pageSize"])
        body = {
            "paging": {"pageNumber": number, "pageSize": size, "totalPages": 3, "totalRecords": 5},
            "elements": products[(number - 1) * size : number * size],
        }
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/products").respond_with_handler(page)
    hub, database = _hub_block(tmp_path)
    job = _deployment_job("products-from-pim-api", connection=_api_block(httpserver), target=hub)
    job["calls"][0]["pattern"]["page_size"] = 2
    job["mapping"] = job["mapping"] | {"$.variant.id": "variantExternalId", "$.variant.price": "variantPrice"}

    code = main(["preview", "products-from-pim-api", "--job-file", str(_job_file(tmp_path, job))])
    out = capsys.readouterr().out

    assert code == 0, out
    requests = [(r.method, r.path, dict(r.args)) for r, _ in httpserver.log]
    assert requests == [
        (
            "GET",
            "/products",
            {"updatedSince": "2026-01-01T00:00:00Z", "pageNumber": "1", "pageSize": "2"},
        )
    ]
    assert "GET products (page 1 only) (call 'list-products')" in out
    assert "only page 1 was read; the API reports 3 page(s) of 2" in out
    assert "First 2 record(s): 1 ok, 1 rejected" in out
    assert any(
        "$.variant.price" not in line and "twelve" in line and "F-E-012" in line for line in out.splitlines()
    )
    assert '["0442301152930","000001"]' in out  # `$.eans[*]`, as a run would store it
    assert API_KEY not in out
    assert not database.exists()


OFFERS_CSV = (
    "Stock External Id;Stock Variant Id;Supplier External Id;Stock Number\nS1;V1;SUP1;5\nS2;V2;SUP1;many\n"
)


def _offers_api(httpserver: HTTPServer) -> None:
    def generate(request: Request) -> Response:
        body = {"invocationId": "inv-1", "statusFile": "PENDING", "urlFile": ""}
        return Response(json.dumps(body), content_type="application/json")

    ready = {"polls": 0}

    def status(request: Request) -> Response:
        ready["polls"] += 1
        available = ready["polls"] >= 2
        body = {
            "invocationId": "inv-1",
            "statusFile": "AVAILABLE" if available else "PENDING",
            "urlFile": httpserver.url_for("/files/offers.csv") if available else "",
        }
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/offers/generate", method="POST").respond_with_handler(generate)
    httpserver.expect_request("/offers/invocations/inv-1").respond_with_handler(status)
    httpserver.expect_request("/files/offers.csv").respond_with_data(OFFERS_CSV, content_type="text/csv")


def _offers_job(tmp_path: Path, httpserver: HTTPServer) -> tuple[Path, Path]:
    hub, database = _hub_block(tmp_path)
    job = _deployment_job("offers-from-erp-api", connection=_api_block(httpserver), target=hub)
    job["calls"][1]["pattern"]["interval_seconds"] = 0.05
    return _job_file(tmp_path, job), database


def test_api_preview_stops_before_a_call_that_could_change_data(
    tmp_path: Path, httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _offers_api(httpserver)
    job_file, database = _offers_job(tmp_path, httpserver)

    assert main(["preview", "offers-from-erp-api", "--job-file", str(job_file)]) == 0
    out = capsys.readouterr().out

    assert httpserver.log == []  # not even the first request: it is the POST
    assert "Stopped before call 'generate' (POST offers/generate)" in out
    assert "--allow-writes" in out
    assert "First " not in out
    assert not database.exists()


def test_api_preview_with_allow_writes_runs_the_chain_and_previews_the_downloaded_csv(
    tmp_path: Path,
    httpserver: HTTPServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATAHUB_DOWNLOAD_ALLOW_PRIVATE", "1")  # the test API serves its file from loopback
    _offers_api(httpserver)
    job_file, database = _offers_job(tmp_path, httpserver)

    code = main(["preview", "offers-from-erp-api", "--job-file", str(job_file), "--allow-writes"])
    out = capsys.readouterr().out

    assert code == 0, out
    assert [(r.method, r.path) for r, _ in httpserver.log] == [
        ("POST", "/offers/generate"),
        ("GET", "/offers/invocations/inv-1"),
        ("GET", "/offers/invocations/inv-1"),
        ("GET", "/files/offers.csv"),
    ]
    assert "GET offers/invocations/{id} (call 'wait-for-file', 2 poll(s))" in out
    assert "/files/offers.csv (" in out
    assert "First 2 record(s): 1 ok, 1 rejected" in out
    assert any("Stock Number" in line and "many" in line and "F-E-012" in line for line in out.splitlines())
    assert not database.exists()


def test_preview_of_an_unknown_deployment_or_block_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["preview", "no-such-deployment"]) == 2
    assert "no deployment 'no-such-deployment'" in capsys.readouterr().err
    job = _deployment_job("products-from-pim-api", connection=f"absent-{uuid.uuid4().hex[:6]}")
    assert main(["preview", "products-from-pim-api", "--job-file", str(_job_file(tmp_path, job))]) == 1
    assert "Preview of products-from-pim-api failed" in capsys.readouterr().err


def test_api_preview_maps_child_records_as_a_run_does(
    tmp_path: Path, httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [{"lineId": "L1", "sku": "V1", "quantity": 2}, {"lineId": "L2", "sku": "V2", "quantity": "two"}]
    order = {"id": "O1", "account": "A1", "supplier": "S1", "status": "ORDER_CREATED", "orderLines": lines}
    httpserver.expect_request("/orders").respond_with_json({"elements": [order]})
    hub, database = _hub_block(tmp_path)
    job = _deployment_job("products-from-pim-api", connection=_api_block(httpserver), target=hub)
    job.update(
        entity="orders",
        calls=[
            {"name": "orders", "path": "orders", "pattern": {"kind": "default", "content_path": "$.elements"}}
        ],
        mapping={
            "$.id": "orderExternalId",
            "$.account": "accountExternalId",
            "$.supplier": "supplierExternalId",
            "$.status": "orderStatus",
        },
        children={
            "path": "$.orderLines",
            "mapping": {
                "$.lineId": "orderLineExternalId",
                "$.sku": "variantExternalId",
                "$.quantity": "orderLineQuantity",
            },
        },
    )

    code = main(["preview", "products-from-pim-api", "--job-file", str(_job_file(tmp_path, job))])
    out = capsys.readouterr().out

    assert code == 0, out
    assert "$.orderLines[*].lineId -> orderLineExternalId" in out
    assert "First 2 record(s): 1 ok, 1 rejected" in out  # one row per order line, as a run loads them
    assert any("L2" in line or "two" in line for line in out.splitlines() if "rejected" in line)
    assert not database.exists()
