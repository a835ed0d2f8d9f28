"""Helpers of the fault suite: build CSV jobs, save their blocks, read a hub's tables back.

Not a conftest: `tests/faults/` is shared with the API fault tests, so these are plain functions
and fixtures imported by the modules that use them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prefect.client.schemas.objects import State
from pydantic import SecretStr

from blocks.database import DatabaseConnection
from flows.import_csv_from_ftp import CsvImportJob, import_csv_from_ftp
from tasks.run.report import ImportReport
from tests.fixtures_servers import LocalFtp, LocalSftp, make_block
from tests.flows.hub import run_for_report

PRODUCTS_HEADER = (
    "Product External Id;Product Names;Product Classification Category Id;Variant External Id;"
    "Variant Names;Variant Price"
)
FOLDERS = ("in", "out", "failed")


def products_csv(first: int, count: int, *, price: str = "10.50") -> str:
    """Return a products file of `count` products, one variant each, numbered from `first`."""
    lines = [PRODUCTS_HEADER]
    lines += [f"P{n};Product {n};C1;V{n};Variant {n};{price}" for n in range(first, first + count)]
    return "\n".join(lines) + "\n"


def make_folders(root: Path, names: Iterable[str] = FOLDERS) -> Path:
    """Create the job's folders under a server's root; return the root."""
    for folder in names:
        (root / folder).mkdir(parents=True, exist_ok=True)
    return root


def save_ftp_block(server: LocalFtp | LocalSftp, **overrides: Any) -> str:
    """Save a connection block for `server` under a fresh name; return the name."""
    name = f"{server.protocol}-{uuid.uuid4().hex[:8]}"
    make_block(server, **overrides).save(name, overwrite=True)
    return name


def save_hub(url: str) -> str:
    """Save a Hub Database block for `url` under a fresh name; return the name."""
    name = f"hub-{uuid.uuid4().hex[:8]}"
    DatabaseConnection(url=SecretStr(url)).save(name, overwrite=True)
    return name


def csv_job(connection: str, target: str, **overrides: Any) -> CsvImportJob:
    """A bulk products job reading `in`, moving to `out` / `failed`, with no settle wait."""
    job: dict[str, Any] = {
        "name": f"fault-{uuid.uuid4().hex[:8]}",
        "connection": connection,
        "entity": "products",
        "source": {
            "kind": "folder",
            "inbound_dir": "in",
            "outbound_dir": "out",
            "failed_dir": "failed",
            "settle_seconds": 0,
        },
        "csv": {"delimiter": ";"},
        "target": target,
        "reject_threshold_percent": 50,
    }
    return CsvImportJob.model_validate(job | overrides)


def run_csv(job: CsvImportJob) -> tuple[State, ImportReport]:
    """Run the CSV flow in this process; return its state and report."""
    return run_for_report(import_csv_from_ftp, job)


def table(url: str, query: str) -> list[tuple[Any, ...]]:
    """Return the rows `query` reads from the database at `url`."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(query).all()]
    finally:
        engine.dispose()


# The content of the products tables, audit columns left out: what "the same as one clean run" compares.
CONTENT_QUERIES = (
    'SELECT "productExternalId", "productNames", "productClassificationCategoryId" FROM products ORDER BY 1',
    'SELECT "variantExternalId", "productExternalId", "variantNames", "variantPrice" FROM variants ORDER BY 1',
)


def content(url: str) -> list[list[tuple[Any, ...]]]:
    """Return the products and variants a hub holds (no audit columns)."""
    return [table(url, query) for query in CONTENT_QUERIES]


def files_in(root: Path, folder: str) -> list[str]:
    """Return the names of the files in `root / folder`, sorted."""
    return sorted(p.name for p in (root / folder).iterdir() if p.is_file())
