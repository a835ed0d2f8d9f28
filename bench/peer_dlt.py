"""The same benchmark work done with dlt, the tool users would otherwise pick (the `bench` extra).

- CSV upsert: a polars resource reads the products file in batches, keeps the same 14 columns with
  the same types, and loads them with `write_disposition="merge"` and the variant id as primary key
  (one table: dlt has no parent/child split; ours writes `products` and `variants`). SQLite goes
  through dlt's SQLAlchemy destination with `create_primary_keys=True` (without it dlt's merge on
  SQLite is quadratic); PostgreSQL through dlt's `postgres` destination.
- REST paging: dlt's `rest_api` source with a `page_number` paginator reading `paging.totalPages`,
  records projected onto the same 14 fields, merged on the variant id into SQLite.

Every function runs in the measured child process (see `bench.run`) and returns the seconds of
`pipeline.run` alone (imports and the pipeline's set-up excluded).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

PIPELINES = Path(__file__).resolve().parents[1] / ".state" / "bench" / "dlt"
DATASET = "bench_dlt"

# CSV header -> field name and type, the same 14 columns our job maps.
CSV_COLUMNS = {
    "Product External Id": ("productExternalId", "text"),
    "Product Names": ("productNames", "text"),
    "Product Brand": ("productBrand", "text"),
    "Product Classification Category Id": ("productClassificationCategoryId", "text"),
    "Deleted Product": ("deletedProduct", "boolean"),
    "Variant External Id": ("variantExternalId", "text"),
    "Variant Names": ("variantNames", "text"),
    "Variant External Sku": ("variantExternalSku", "text"),
    "Variant Ean": ("variantEan", "text"),
    "Variant Price": ("variantPrice", "decimal"),
    "Variant Weight": ("variantWeight", "decimal"),
    "Variant Available From": ("variantAvailableFrom", "date"),
    "Variant Updated At": ("variantUpdatedAt", "datetime"),
    "Inactive Variant": ("inactiveVariant", "boolean"),
}


def version() -> str:
    """Return dlt's version, or why it cannot be imported."""
    try:
        import dlt  # type: ignore[import-not-found]
    except ImportError as exc:
        return f"not installed ({exc}); run `./dev bench`, which installs the `bench` extra"
    return str(dlt.__version__)


def reset(name: str) -> None:
    """Forget the pipeline `name` (its local state); the caller resets the database."""
    shutil.rmtree(PIPELINES / name, ignore_errors=True)


def _destination(target: str, sqlite_path: Path, postgres_url: str) -> Any:
    from dlt.destinations import postgres, sqlalchemy  # type: ignore[import-not-found]

    if target == "sqlite":
        return sqlalchemy(credentials=f"sqlite:///{sqlite_path}", create_primary_keys=True)
    return postgres(credentials=postgres_url)


def _typed(frame: Any) -> Any:
    import polars as pl

    expressions = []
    for header, (name, kind) in CSV_COLUMNS.items():
        text = pl.col(header).str.strip_chars()
        match kind:
            case "boolean":
                value = text.str.to_uppercase() == "TRUE"
            case "decimal":
                value = text.cast(pl.Float64, strict=False)
            case "date":
                value = text.str.to_date("%d/%m/%Y", strict=False)
            case "datetime":
                value = text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_zone="UTC")
            case _:
                value = pl.col(header)
        expressions.append(value.alias(name))
    return frame.select(expressions)


def csv_upsert(path: Path, target: str, *, sqlite_path: Path, postgres_url: str) -> dict[str, Any]:
    """Merge the CSV file into `target` with dlt; return the seconds of `pipeline.run`."""
    import dlt  # type: ignore[import-not-found]
    import polars as pl

    @dlt.resource(name="variants", write_disposition="merge", primary_key="variantExternalId")  # type: ignore[untyped-decorator]
    def variants() -> Any:
        frames = pl.scan_csv(path, separator=";", infer_schema=False).select(list(CSV_COLUMNS))
        for batch in frames.collect_batches(chunk_size=100_000):
            yield _typed(batch).to_arrow()

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_csv_{target}",
        pipelines_dir=str(PIPELINES),
        destination=_destination(target, sqlite_path, postgres_url),
        dataset_name=DATASET,
    )
    started = time.perf_counter()
    info = pipeline.run(variants())
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    return {"seconds": seconds}


def rest_paging(
    base_url: str, dataset: str, page_size: int, *, sqlite_path: Path, api_mapping: dict[str, str]
) -> dict[str, Any]:
    """Page through `dataset` with dlt's rest_api source into SQLite; return seconds and pages."""
    import dlt  # type: ignore[import-not-found]
    from dlt.sources.rest_api import rest_api_source  # type: ignore[import-not-found]

    paths = [
        (jsonpath.removeprefix("$.").replace("[*]", "").split("."), field)
        for jsonpath, field in api_mapping.items()
    ]

    def project(record: dict[str, Any]) -> dict[str, Any]:
        row = {}
        for steps, field in paths:
            value: Any = record
            for step in steps:
                value = value.get(step) if isinstance(value, dict) else None
            row[field] = "||".join(value) if isinstance(value, list) else value
        return row

    source = rest_api_source(
        {
            "client": {
                "base_url": base_url,
                "paginator": {
                    "type": "page_number",
                    "page_param": "pageNumber",
                    "base_page": 1,
                    "total_path": "paging.totalPages",
                },
            },
            "resources": [
                {
                    "name": "variants",
                    "endpoint": {
                        "path": dataset,
                        "params": {"pageSize": page_size},
                        "data_selector": "elements",
                    },
                    "write_disposition": "merge",
                    "primary_key": "variantExternalId",
                    "processing_steps": [{"map": project}],
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_rest_{dataset}_{page_size}",
        pipelines_dir=str(PIPELINES),
        destination=_destination("sqlite", sqlite_path, ""),
        dataset_name=DATASET,
    )
    started = time.perf_counter()
    info = pipeline.run(source)
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    return {"seconds": seconds}
