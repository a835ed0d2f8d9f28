"""Staging's fast path (PostgreSQL COPY straight into staging) against its merging path, on both databases.

A key seen in an earlier batch must still collapse as before: the row table keeps the last row, a
parent keeps per field its last non-blank value, and the counts say what changed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import sqlalchemy as sa

from tasks.csv.load import import_csv_file
from tasks.csv.reader import CsvFormat
from tasks.hub.load import LoadSettings, SourceFile
from tasks.hub.mapping import CellFormats
from tasks.run.report import FileReport


def _load(engine: sa.Engine, folder: Path, text: str) -> FileReport:
    path = folder / "products.csv"
    path.write_text(text, encoding="utf-8")
    data = path.read_bytes()
    source = SourceFile("/in/products.csv", path, len(data), None, hashlib.sha256(data).hexdigest())
    settings = LoadSettings(
        job="staging-paths",
        run_id="run-1",
        entity="products",
        mapping=None,
        formats=CellFormats(),
        reject_threshold_percent=0,
        force=True,  # the same file loaded again on purpose: the merge is what these tests check
    )
    report, _ = import_csv_file(
        engine,
        source,
        CsvFormat(delimiter=",", batch_rows=1_000),
        settings,
        rejects_dir=folder / "rejects",
        logger=logging.getLogger("test"),
    )
    return report


def _products_file() -> str:
    # 2,500 variants of 500 products. Every product has a variant in each of the three batches of
    # 1,000 rows (so each batch after the first repeats parent keys); only its first row names it.
    # Variant V7 comes again in the last batch, renamed: a row-table key repeated across batches.
    lines = [
        "Product External Id,Product Names,Product Brand,Product Classification Category Id,"
        "Variant External Id,Variant Names"
    ]
    for n in range(2_500):
        product = n % 500
        first = n < 500
        names = f"Product {product},Brand {product},CLS{product}" if first else ",,"
        lines.append(f"P{product},{names},V{n},Variant {n}")
    lines.append("P7,,Brand seven,,V7,Variant seven again")
    return "\n".join(lines) + "\n"


def test_keys_repeated_across_batches_collapse_as_on_the_merging_path(
    engine: sa.Engine, tmp_path: Path
) -> None:
    report = _load(engine, tmp_path, _products_file())

    assert (report.status, report.rows_read, report.rejected, report.duplicates) == ("SUCCESS", 2_501, 0, 1)
    assert (report.inserted, report.updated, report.unchanged) == (2_500, 0, 0)
    assert (report.tables["products"].inserted, report.tables["variants"].inserted) == (500, 2_500)
    with engine.connect() as conn:
        product = conn.exec_driver_sql(
            'SELECT "productNames", "productBrand", "productClassificationCategoryId" FROM products '
            "WHERE \"productExternalId\" = 'P7'"
        ).one()
        variant = conn.exec_driver_sql(
            'SELECT "variantNames" FROM variants WHERE "variantExternalId" = \'V7\''
        ).scalar_one()
        counts = conn.exec_driver_sql("SELECT count(*) FROM products").scalar_one()
    assert tuple(product) == ("Product 7", "Brand seven", "CLS7")
    assert (variant, counts) == ("Variant seven again", 500)


def test_the_same_file_again_changes_nothing(engine: sa.Engine, tmp_path: Path) -> None:
    _load(engine, tmp_path, _products_file())

    again = _load(engine, tmp_path, _products_file())

    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2_500)
    assert (again.tables["products"].updated, again.tables["products"].unchanged) == (0, 500)
