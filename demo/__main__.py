"""The quick-start demo: real imports, end to end, on embedded defaults.

Starts a local FTP server holding the sample CSV files of `demo/data`, saves the connection blocks,
runs the CSV import flow in Prefect's ephemeral mode into an embedded SQLite hub database, and
prints what each run did: a bulk products import (two files, a few bad rows), an offers import with
custom fields, then the same products files uploaded again, which the ledger skips (and still moves
out of inbound, beside the first copies, under a timestamped name); then a REST API job pages
through a local sample API in the seed's shape (`paging` + `elements`) with an API key.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr

from blocks.api import ApiConnection
from blocks.database import DatabaseConnection, state_dir
from blocks.ftp import FtpConnection
from demo.api_server import local_api_server
from demo.ftp_server import local_ftp_server
from flows.import_csv_from_ftp import CsvImportJob, import_csv_from_ftp
from flows.import_json_from_api import ApiImportJob, import_json_from_api
from tasks.run.report import ImportReport, counts_text, run_job

DATA = Path(__file__).parent / "data"
DEMO_PASSWORD = "demo-only-password"  # a throwaway server on 127.0.0.1, gone when the demo ends
DEMO_API_KEY = "demo-only-api-key"


def _jobs() -> list[CsvImportJob]:
    products = {
        "name": "demo-products",
        "connection": "demo-ftp",
        "entity": "products",
        "source": {
            "kind": "folder",
            "inbound_dir": "products/inbound",
            "outbound_dir": "products/outbound",
            "failed_dir": "products/failed",
            "settle_seconds": 0.5,
        },
        "csv": {"delimiter": ";"},
        "target": "demo-hub",
        "reject_threshold_percent": 50,
    }
    offers = {
        "name": "demo-offers",
        "connection": "demo-ftp",
        "entity": "offers",
        "source": {"kind": "file", "file_path": "offers/offers.csv", "outbound_dir": "offers/done"},
        "csv": {"delimiter": ","},
        "target": "demo-hub",
        "reject_threshold_percent": 50,
    }
    return [CsvImportJob.model_validate(job) for job in (products, offers, products)]


def _prepare_ftp_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for folder in ("products/inbound", "products/outbound", "products/failed", "offers/done"):
        (root / folder).mkdir(parents=True)
    for csv_file in sorted((DATA / "products").glob("*.csv")):
        shutil.copy(csv_file, root / "products" / "inbound" / csv_file.name)
    shutil.copy(DATA / "offers" / "offers.csv", root / "offers" / "offers.csv")


def _drop_products_again(root: Path) -> None:
    for csv_file in sorted((DATA / "products").glob("*.csv")):
        shutil.copy(csv_file, root / "products" / "inbound" / csv_file.name)


def main() -> int:
    """Run the demo; return 0 when every run ended as expected."""
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    demo_dir = state_dir() / "demo"
    database_file = demo_dir / "hub.db"
    database_file.unlink(missing_ok=True)
    _prepare_ftp_root(demo_dir / "ftp")
    with local_ftp_server(demo_dir / "ftp", username="demo", password=DEMO_PASSWORD) as ftp:
        print(f"Local FTP server on ftp://{ftp.host}:{ftp.port}/ serving {ftp.root}")
        FtpConnection(
            protocol="ftp",
            host=ftp.host,
            port=ftp.port,
            username=ftp.username,
            password=SecretStr(DEMO_PASSWORD),
        ).save("demo-ftp", overwrite=True)
        DatabaseConnection(url=SecretStr(f"sqlite:///{database_file}")).save("demo-hub", overwrite=True)
        products, offers, products_again = _jobs()
        reports = [_run(import_csv_from_ftp, products), _run(import_csv_from_ftp, offers)]
        _drop_products_again(ftp.root)  # the same files uploaded twice: the ledger knows them
        reports.append(_run(import_csv_from_ftp, products_again))
    with local_api_server(DATA / "api" / "products.json", api_key=DEMO_API_KEY) as api:
        print(f"\nLocal REST API on {api.base_url} (the seed's paging shape)")
        ApiConnection(base_url=api.base_url, auth="api_key", api_key=SecretStr(DEMO_API_KEY)).save(
            "demo-api", overwrite=True
        )
        reports.append(_run(import_json_from_api, _api_job()))
    print(f"\nHub database: {database_file}")
    _print_tables(database_file)
    print("\nRuns (the full reports are in the flow logs above):")
    for report in reports:
        print(f"  {report.job:18} {report.status:8} {counts_text(report)}")
    statuses = [report.status for report in reports]
    expected = ["PARTIAL", "PARTIAL", "SKIPPED", "PARTIAL"]
    print(f"\nRun statuses: {statuses} (expected {expected})")
    return 0 if statuses == expected else 1


def _api_job() -> ApiImportJob:
    paging = {
        "kind": "paging",
        "page_number_param": "pageNumber",
        "page_size_param": "pageSize",
        "total_pages_path": "$.paging.totalPages",
        "first_page": 1,
        "page_size": 2,
        "content_path": "$.elements",
    }
    return ApiImportJob.model_validate(
        {
            "name": "demo-api-products",
            "connection": "demo-api",
            "entity": "products",
            "calls": [{"name": "list-products", "method": "GET", "path": "products", "pattern": paging}],
            "mapping": {
                "$.productId": "productExternalId",
                "$.name": "productNames",
                "$.brand": "productBrand",
                "$.classificationId": "productClassificationCategoryId",
                "$.eans[*]": "productTags",
                "$.variant.id": "variantExternalId",
                "$.variant.name": "variantNames",
                "$.variant.price": "variantPrice",
            },
            "target": "demo-hub",
            "reject_threshold_percent": 50,
        }
    )


def _run(flow: Callable[..., Any], job: CsvImportJob | ApiImportJob) -> ImportReport:
    state, report = run_job(flow, job)
    if report is None:
        raise SystemExit(f"{job.name}: the flow ended {state.name} without a report: {state.message}")
    return report  # the flow has logged the full report already


def _print_tables(database_file: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{database_file}")
    with engine.connect() as conn:
        for table in (
            "products",
            "variants",
            "offer_stocks",
            "offer_prices",
            "datahub_ledger",
            "datahub_runs",
        ):
            count = conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one()
            print(f"  {table}: {count} rows")
        sample = conn.exec_driver_sql(
            'SELECT "stockExternalId", "customFields" FROM offer_stocks LIMIT 2'
        ).all()
        print(f"  offer_stocks custom fields, e.g. {sample}")
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
