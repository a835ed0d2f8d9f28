"""One CSV file loaded into a real hub database (SQLite and PostgreSQL): upserts, rejects, atomicity."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
import sqlalchemy as sa

from tasks.csv.load import import_csv_file
from tasks.csv.reader import CsvFormat, Encoding
from tasks.hub import rejected_files, stored_rejects
from tasks.hub.ledger import find_loaded
from tasks.hub.load import LoadSettings, SourceFile
from tasks.hub.mapping import CellFormats
from tasks.hub.rejects import REJECTS_KEPT_PER_FILE
from tasks.hub.schema import ledger
from tasks.run.report import REJECT_SAMPLE, FileReport, Reject, duplicates_text

JOB = "test-job"


@dataclass
class Hub:
    """Load files into the test's hub database and read its tables back."""

    engine: sa.Engine
    folder: Path

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def load(
        self,
        text: str,
        entity: str,
        *,
        name: str = "in.csv",
        mapping: dict[str, str] | None = None,
        threshold: float = 50.0,
        batch_rows: int = 200_000,
        encoding: Encoding = "utf-8",
        delimiter: Literal[",", ";"] = ",",
        force: bool = True,
    ) -> tuple[FileReport, list[Reject]]:
        path = self.folder / name
        path.write_text(text, encoding=encoding, newline="")
        data = path.read_bytes()
        source = SourceFile(f"/in/{name}", path, len(data), None, hashlib.sha256(data).hexdigest())
        settings = LoadSettings(
            job=JOB,
            run_id="run-1",
            entity=entity,
            mapping=mapping,
            formats=CellFormats(),
            reject_threshold_percent=threshold,
            # These tests load the same content again on purpose (the merge is what they check): as a
            # job's `force` would. Without it the load's own transaction skips a content already loaded.
            force=force,
        )
        return import_csv_file(
            self.engine,
            source,
            CsvFormat(delimiter=delimiter, encoding=encoding, batch_rows=batch_rows),
            settings,
            rejects_dir=self.folder / "rejects",
            logger=logging.getLogger("test"),
        )

    def rows(self, table: str, *columns: str) -> list[dict[str, Any]]:
        """Return the table's rows ordered by their first column, with JSON documents decoded."""
        names = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        order = "1" if len(columns) == 1 else "1, 2"
        with self.engine.connect() as conn:
            found = conn.exec_driver_sql(f'SELECT {names} FROM "{table}" ORDER BY {order}').mappings().all()
        return [{k: self._decode(k, v) for k, v in row.items()} for row in found]

    def _decode(self, column: str, value: Any) -> Any:
        if column == "customFields" and isinstance(value, str):
            return json.loads(value)
        return value

    def stamps(self, table: str, key: str) -> dict[str, Any]:
        return {row[key]: row["_updated_at"] for row in self.rows(table, key, "_updated_at")}

    def table_exists(self, table: str) -> bool:
        with self.engine.connect() as conn:
            return sa.inspect(conn).has_table(table)

    def ledger_entries(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(sa.select(ledger).order_by(ledger.c.id)).mappings()]


@pytest.fixture
def hub(engine: sa.Engine, tmp_path: Path) -> Hub:
    return Hub(engine, tmp_path)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rejects_file(report: FileReport) -> list[list[str]]:
    assert report.rejects_file is not None
    with Path(report.rejects_file).open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


VARIANTS = (
    "Variant External Id,Product External Id,Variant Names,Variant Price,Variant Available From,"
    "Variant Updated At,Deleted Variant,Variant Ean\n"
    "V1,P1,Shirt,12.50,23/11/2026,2026-11-23T10:15:00+01:00,TRUE,a||b||\n"
    'V2,P1,"Hat, red",0.99,2026-01-31,,false,\n'
    "V3,P2,Cap,,,,,123\n"
)


def test_first_load_inserts_typed_rows(hub: Hub) -> None:
    report, rejects = hub.load(VARIANTS, "variants")

    assert (report.status, report.message, rejects) == ("SUCCESS", "", [])
    assert (report.rows_read, report.inserted, report.updated, report.unchanged) == (3, 3, 0, 0)
    assert (report.rejected, report.duplicates, report.rejects_file) == (0, 0, None)
    assert report.tables["variants"].inserted == 3
    rows = hub.rows(
        "variants",
        "variantExternalId",
        "variantNames",
        "variantPrice",
        "variantAvailableFrom",
        "variantUpdatedAt",
        "deletedVariant",
        "variantEan",
        "variantDescriptions",
    )
    assert [row["variantNames"] for row in rows] == ["Shirt", "Hat, red", "Cap"]
    assert [row["variantDescriptions"] for row in rows] == [None, None, None]
    if hub.dialect == "postgresql":
        assert [row["variantPrice"] for row in rows] == [Decimal("12.50"), Decimal("0.99"), None]
        assert [row["variantAvailableFrom"] for row in rows] == [date(2026, 11, 23), date(2026, 1, 31), None]
        assert rows[0]["variantUpdatedAt"] == datetime.fromisoformat("2026-11-23T09:15:00+00:00")
        assert [row["deletedVariant"] for row in rows] == [True, False, None]
        assert [row["variantEan"] for row in rows] == [["a", "b"], None, ["123"]]
    else:
        assert [row["variantPrice"] for row in rows] == [12.5, 0.99, None]
        assert [row["variantAvailableFrom"] for row in rows] == ["2026-11-23", "2026-01-31", None]
        assert rows[0]["variantUpdatedAt"] == "2026-11-23T09:15:00.000000+00:00"
        assert [row["deletedVariant"] for row in rows] == [1, 0, None]
        assert [json.loads(row["variantEan"]) if row["variantEan"] else None for row in rows] == [
            ["a", "b"],
            None,
            ["123"],
        ]


def test_the_load_skips_a_content_the_job_loaded_already_unless_forced(hub: Hub) -> None:
    hub.load(VARIANTS, "variants", name="first.csv")

    report, _ = hub.load(VARIANTS, "variants", name="again.csv", force=False)

    assert report.status == "SKIPPED"
    assert "same content as /in/first.csv" in report.message
    assert (report.rows_read, report.inserted, report.updated, report.unchanged) == (0, 0, 0, 0)


def test_reloading_the_same_file_changes_nothing(hub: Hub) -> None:
    hub.load(VARIANTS, "variants")
    before, stamps = hub.rows("variants"), hub.stamps("variants", "variantExternalId")

    report, _ = hub.load(VARIANTS, "variants")

    assert (report.status, report.inserted, report.updated, report.unchanged) == ("SUCCESS", 0, 0, 3)
    assert hub.rows("variants") == before
    assert hub.stamps("variants", "variantExternalId") == stamps


def test_changed_file_updates_only_the_changed_rows(hub: Hub) -> None:
    hub.load(VARIANTS, "variants")
    stamps = hub.stamps("variants", "variantExternalId")

    report, _ = hub.load(VARIANTS.replace("Cap,,,,,123", "Cap,3.5,,,,123"), "variants")

    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 2)
    after = hub.stamps("variants", "variantExternalId")
    assert (after["V1"], after["V2"]) == (stamps["V1"], stamps["V2"])
    assert after["V3"] != stamps["V3"]
    assert [row["variantPrice"] for row in hub.rows("variants", "variantExternalId", "variantPrice")][
        2
    ] == 3.5


def test_text_is_stored_exactly(hub: Hub) -> None:
    tricky = 'a \\N b "q" \n\ttab, é € \\ end'
    quoted = '"' + tricky.replace('"', '""') + '"'
    report, _ = hub.load(
        f'Supplier External Id,Supplier Name,Description\nS1,Acme,{quoted}\nS2,\\N,\\N\nS3," padded ",""\n',
        "suppliers",
    )

    assert (report.status, report.inserted) == ("SUCCESS", 3)
    assert hub.rows("suppliers", "supplierExternalId", "supplierName", "description") == [
        {"supplierExternalId": "S1", "supplierName": "Acme", "description": tricky},
        {"supplierExternalId": "S2", "supplierName": "\\N", "description": "\\N"},
        {"supplierExternalId": "S3", "supplierName": " padded ", "description": None},
    ]


def test_windows_1252_semicolon_file_loads(hub: Hub) -> None:
    report, _ = hub.load(
        "Supplier External Id;Supplier Name\nS1;Été € œ\n",
        "suppliers",
        encoding="windows-1252",
        delimiter=";",
    )

    assert (report.status, report.inserted) == ("SUCCESS", 1)
    assert hub.rows("suppliers", "supplierName") == [{"supplierName": "Été € œ"}]
    assert sorted(p.name for p in hub.folder.glob("in.csv*")) == ["in.csv"]  # the UTF-8 copy is removed


def test_header_only_file_succeeds_with_nothing_to_load(hub: Hub) -> None:
    report, _ = hub.load("Supplier External Id,Supplier Name\n", "suppliers")

    assert (report.status, report.rows_read, report.inserted) == ("SUCCESS", 0, 0)
    assert report.message == "The file has a header and no data rows."
    assert hub.rows("suppliers") == []
    assert len(hub.ledger_entries()) == 1


def test_empty_cell_in_a_mapped_optional_field_clears_it(hub: Hub) -> None:
    hub.load("Supplier External Id,Supplier Name,Description\nS1,Acme,Tools\nS2,Bolt,Nuts\n", "suppliers")

    report, _ = hub.load("Supplier External Id,Description\nS1,\nS2,Nuts\n", "suppliers")

    assert (report.updated, report.unchanged) == (1, 1)
    assert hub.rows("suppliers", "supplierExternalId", "supplierName", "description") == [
        {"supplierExternalId": "S1", "supplierName": "Acme", "description": None},
        {"supplierExternalId": "S2", "supplierName": "Bolt", "description": "Nuts"},
    ]


OFFERS = (
    "Stock External Id,Stock Variant Id,Supplier External Id,Stock Number,Currency,"
    "Offer Price External Id,Price Per Item,Price Type\n"
    "S1,V1,SUP1,10,EUR,OP1,9.99,PUBLIC\n"
    "S2,V2,SUP1,0,EUR,OP2,5,account\n"
)
OFFER_UPDATE = "Stock External Id,Stock Number,Offer Price External Id,Price Per Item\nS1,7,OP1,8.50\n"


def test_update_only_offers_file_keeps_the_unmapped_columns(hub: Hub) -> None:
    hub.load(OFFERS, "offers")

    report, rejects = hub.load(OFFER_UPDATE, "offers")

    assert (report.status, rejects) == ("SUCCESS", [])
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 0)
    assert report.tables["offer_stocks"].updated == 1
    assert hub.rows(
        "offer_stocks", "stockExternalId", "stockVariantId", "supplierExternalId", "stockNumber", "currency"
    )[0] == {
        "stockExternalId": "S1",
        "stockVariantId": "V1",
        "supplierExternalId": "SUP1",
        "stockNumber": 7,
        "currency": "EUR",
    }
    prices = hub.rows("offer_prices", "offerPriceExternalId", "stockExternalId", "pricePerItem", "priceType")
    assert [
        (p["offerPriceExternalId"], p["stockExternalId"], float(p["pricePerItem"]), p["priceType"])
        for p in prices
    ] == [
        ("OP1", "S1", 8.5, "PUBLIC"),
        ("OP2", "S2", 5.0, "ACCOUNT"),
    ]


def test_update_only_file_cannot_create_a_new_key(hub: Hub) -> None:
    hub.load(OFFERS, "offers")

    report, rejects = hub.load(OFFER_UPDATE + "S9,4,OP9,1.00\n", "offers")

    assert (report.status, report.rows_read, report.rejected) == ("PARTIAL", 2, 1)
    assert (report.tables["offer_stocks"].updated, report.tables["offer_stocks"].inserted) == (1, 0)
    assert report.tables["offer_prices"].inserted == 0
    assert [(r.record, r.line, r.code) for r in rejects] == [(2, 3, "F-E-001"), (2, 3, "F-E-001")]
    messages = {r.message for r in rejects}
    assert messages == {
        "New offer_stocks key S9 cannot be created: required field(s) stockVariantId, supplierExternalId "
        "missing or blank.",
        "Its offer_stocks S9 was rejected, so this row cannot load.",
    }
    assert {r.column for r in rejects} == {"stockVariantId", "Stock External Id"}
    assert [row["stockExternalId"] for row in hub.rows("offer_stocks", "stockExternalId")] == ["S1", "S2"]
    assert [row["offerPriceExternalId"] for row in hub.rows("offer_prices", "offerPriceExternalId")] == [
        "OP1",
        "OP2",
    ]
    assert len(rejects_file(report)) == 1 + 2


def test_custom_fields_are_merged_per_key(hub: Hub) -> None:
    base = "Stock External Id,Stock Variant Id,Supplier External Id,Stock Number"
    hub.load(f"{base},CF_tax,CF_wh\nS1,V1,SUP,1,20,Lyon\nS2,V2,SUP,1,5.5,\n", "offers")
    assert [row["customFields"] for row in hub.rows("offer_stocks", "stockExternalId", "customFields")] == [
        {"tax": "20", "wh": "Lyon"},
        {"tax": "5.5"},
    ]

    # An empty cell deletes that custom field; other custom fields of the key stay.
    report, _ = hub.load("Stock External Id,CF_tax,CF_code\nS1,,T1\nS2,5.5,\n", "offers", name="cf.csv")
    assert (report.updated, report.unchanged) == (1, 1)
    assert [row["customFields"] for row in hub.rows("offer_stocks", "stockExternalId", "customFields")] == [
        {"wh": "Lyon", "code": "T1"},
        {"tax": "5.5"},
    ]

    # Without CF columns, custom fields are kept whole; re-running the same file changes nothing.
    report, _ = hub.load("Stock External Id,Stock Number\nS1,2\nS2,1\n", "offers", name="plain.csv")
    assert (report.updated, report.unchanged) == (1, 1)
    report, _ = hub.load("Stock External Id,CF_tax,CF_code\nS1,,T1\nS2,5.5,\n", "offers", name="cf.csv")
    assert (report.updated, report.unchanged) == (0, 2)
    assert [row["customFields"] for row in hub.rows("offer_stocks", "stockExternalId", "customFields")] == [
        {"wh": "Lyon", "code": "T1"},
        {"tax": "5.5"},
    ]


def test_duplicate_keys_in_one_file_last_row_wins(hub: Hub) -> None:
    report, _ = hub.load(
        "Supplier External Id,Supplier Name,Status\nS1,First,ACTIVE\nS2,Other,\nS1,Last,closed\n", "suppliers"
    )

    assert (report.rows_read, report.inserted, report.duplicates) == (3, 2, 1)
    assert duplicates_text(report) == "S1 (records 1, 3; record 3 kept)"
    assert hub.rows("suppliers", "supplierExternalId", "supplierName", "status") == [
        {"supplierExternalId": "S1", "supplierName": "Last", "status": "CLOSED"},
        {"supplierExternalId": "S2", "supplierName": "Other", "status": None},
    ]


def test_duplicate_keys_collapse_across_batches(hub: Hub) -> None:
    lines = ["Supplier External Id,Supplier Name"] + [f"S{n % 1_200},name {n}" for n in range(2_400)]
    report, _ = hub.load("\n".join(lines) + "\n", "suppliers", batch_rows=1_000)

    assert (report.rows_read, report.inserted, report.duplicates) == (2_400, 1_200, 1_200)
    # Each batch repeats no key of its own: across batches only the count is known.
    assert duplicates_text(report) == "1,200 repeated row(s), the last of each key kept"
    names = {row["supplierExternalId"]: row["supplierName"] for row in hub.rows("suppliers")}
    assert (names["S0"], names["S1199"]) == ("name 1200", "name 2399")


PRODUCTS = (
    "Product External Id,Product Names,Product Classification Category Id,Product Brand,"
    "Variant External Id,Variant Names\n"
    "P1,Shirt,CLS1,Acme,V1,Shirt S\n"
    "P1,,,,V2,Shirt M\n"
    "P2,Hat,CLS2,,V3,Hat one size\n"
    "P1,,,,V4,Shirt L\n"
)


def test_products_repeated_per_variant_keep_their_fields(hub: Hub) -> None:
    report, rejects = hub.load(PRODUCTS, "products")

    assert (report.status, rejects) == ("SUCCESS", [])
    assert (report.rows_read, report.inserted, report.duplicates) == (4, 4, 0)
    assert (report.tables["products"].inserted, report.tables["variants"].inserted) == (2, 4)
    assert hub.rows(
        "products", "productExternalId", "productNames", "productClassificationCategoryId", "productBrand"
    ) == [
        {
            "productExternalId": "P1",
            "productNames": "Shirt",
            "productClassificationCategoryId": "CLS1",
            "productBrand": "Acme",
        },
        {
            "productExternalId": "P2",
            "productNames": "Hat",
            "productClassificationCategoryId": "CLS2",
            "productBrand": None,
        },
    ]
    assert [(v["variantExternalId"], v["productExternalId"]) for v in hub.rows("variants")] == [
        ("V1", "P1"),
        ("V2", "P1"),
        ("V3", "P2"),
        ("V4", "P1"),
    ]

    # A later file adding a variant to P1 with blank product fields does not clear P1's required fields.
    report, _ = hub.load(
        "Product External Id,Product Names,Product Classification Category Id,Variant External Id,Variant Names\n"
        "P1,,,V5,Shirt XL\n",
        "products",
        name="more.csv",
    )
    assert (report.status, report.inserted) == ("SUCCESS", 1)
    assert report.tables["products"].unchanged == 1
    assert hub.rows("products", "productExternalId", "productNames")[0] == {
        "productExternalId": "P1",
        "productNames": "Shirt",
    }


def test_new_product_without_its_required_fields_rejects_its_variants(hub: Hub) -> None:
    report, rejects = hub.load(
        "Product External Id,Product Names,Product Classification Category Id,Variant External Id,Variant Names\n"
        "P1,Shirt,CLS1,V1,Shirt S\n"
        "P9,,,V9,Orphan\n",
        "products",
    )

    assert (report.status, report.rejected) == ("PARTIAL", 1)
    assert {(r.record, r.code) for r in rejects} == {(2, "F-E-001")}
    assert [p["productExternalId"] for p in hub.rows("products")] == ["P1"]
    assert [v["variantExternalId"] for v in hub.rows("variants")] == ["V1"]


def test_orders_carry_their_lines(hub: Hub) -> None:
    report, rejects = hub.load(
        "Order External Id,Account External Id,Supplier External Id,Order Status,Order Line External Id,"
        "Order Line Quantity,Net Unit Price,CF_channel\n"
        "O1,A1,SUP1,order_created,L1,2,10.00,web\n"
        "O1,A1,SUP1,ORDER_CREATED,L2,1,5.50,\n"  # a repeated order row leaves its custom field blank
        "O2,A2,SUP1,SHIPPED,L1,3,1.25,\n",
        "orders",
    )

    assert (report.status, rejects) == ("SUCCESS", [])
    assert (report.tables["orders"].inserted, report.tables["order_lines"].inserted) == (2, 3)
    assert (report.inserted, report.duplicates) == (3, 0)
    assert hub.rows("orders", "orderExternalId", "accountExternalId", "orderStatus", "customFields") == [
        {
            "orderExternalId": "O1",
            "accountExternalId": "A1",
            "orderStatus": "ORDER_CREATED",
            "customFields": {"channel": "web"},
        },
        {"orderExternalId": "O2", "accountExternalId": "A2", "orderStatus": "SHIPPED", "customFields": None},
    ]
    lines = hub.rows(
        "order_lines", "orderExternalId", "orderLineExternalId", "orderLineQuantity", "netUnitPrice"
    )
    assert [
        (ln["orderExternalId"], ln["orderLineExternalId"], ln["orderLineQuantity"], float(ln["netUnitPrice"]))
        for ln in lines
    ] == [
        ("O1", "L1", 2, 10.0),
        ("O1", "L2", 1, 5.5),
        ("O2", "L1", 3, 1.25),
    ]


def test_blank_required_field_is_rejected_with_its_place(hub: Hub) -> None:
    text = 'Supplier External Id,Supplier Name,Description\nS1,Acme,"two\nlines"\nS2,,x\nS3,Corp,\n'

    report, rejects = hub.load(text, "suppliers")

    assert (report.status, report.rows_read, report.inserted, report.rejected) == ("PARTIAL", 3, 2, 1)
    assert rejects == [
        Reject(
            file="/in/in.csv",
            record=2,
            line=4,
            column="Supplier Name",
            value=None,
            code="F-E-001",
            message="Required field `supplierName` is missing or blank.",
        )
    ]
    assert rejects_file(report) == [
        ["record", "line", "column", "value", "code", "message"],
        ["2", "4", "Supplier Name", "", "F-E-001", "Required field `supplierName` is missing or blank."],
    ]
    assert [row["supplierExternalId"] for row in hub.rows("suppliers")] == ["S1", "S3"]


def test_integer_too_large_for_the_database_is_a_reject(hub: Hub) -> None:
    report, rejects = hub.load(
        "Stock External Id,Stock Variant Id,Supplier External Id,Stock Number\n"
        "S1,V1,SUP,99999999999999999999\nS2,V2,SUP,3\n",
        "offers",
    )

    assert (report.status, report.inserted) == ("PARTIAL", 1)
    assert [(r.record, r.column, r.code) for r in rejects] == [(1, "Stock Number", "F-E-012")]


def test_threshold_exceeded_loads_nothing(hub: Hub) -> None:
    first = "Supplier External Id,Supplier Name\nS1,Acme\n"
    hub.load(first, "suppliers", name="first.csv")
    before, stamps = hub.rows("suppliers"), hub.stamps("suppliers", "supplierExternalId")
    bad = "Supplier External Id,Supplier Name,Status\nS1,Renamed,ACTIVE\nS2,New,OPEN\nS3,,ACTIVE\n"

    report, rejects = hub.load(bad, "suppliers", name="bad.csv", threshold=10.0)

    assert report.status == "FAILED"
    assert report.message == (
        "2 of 3 rows rejected (66.7 %), over the job's `reject_threshold_percent` of 10 %: nothing from "
        "this file was loaded. Fix the rejected rows (see the rejects), or raise the threshold."
    )
    assert [(r.record, r.code) for r in rejects] == [(2, "F-E-008"), (3, "F-E-001")]
    with hub.engine.connect() as conn:  # rolled back, and its rejects kept in the hub all the same
        assert [(f.file, f.status, f.rejected, f.stored) for f in rejected_files(conn, "run-1")] == [
            ("/in/bad.csv", "FAILED", 2, 2)
        ]
        assert [
            (r["record"], r["line"], r["column"], r["value"], r["code"])
            for r in stored_rejects(conn, "run-1")
        ] == [
            (2, 3, "Status", "OPEN", "F-E-008"),
            (3, 4, "Supplier Name", None, "F-E-001"),
        ]
    assert hub.rows("suppliers") == before
    assert hub.stamps("suppliers", "supplierExternalId") == stamps
    with hub.engine.connect() as conn:
        assert find_loaded(conn, JOB, sha256=sha(bad)) is None
        assert find_loaded(conn, JOB, sha256=sha(first)) is not None
    assert len(hub.ledger_entries()) == 1


def test_threshold_exceeded_on_a_first_load_creates_no_rows(hub: Hub) -> None:
    report, _ = hub.load("Supplier External Id,Supplier Name\nS1,\nS2,\nS3,Ok\n", "suppliers", threshold=10.0)

    assert report.status == "FAILED"
    assert not hub.table_exists("suppliers") or hub.rows("suppliers") == []
    assert not hub.table_exists("datahub_ledger") or hub.ledger_entries() == []


def test_bad_file_is_failed_and_loads_nothing(hub: Hub) -> None:
    report, rejects = hub.load("Supplier Name\nAcme\n", "suppliers")

    assert (report.status, report.rows_read, rejects) == ("FAILED", 0, [])
    assert report.message.startswith("/in/in.csv: no column is mapped onto the key ['supplierExternalId']")
    assert not hub.table_exists("datahub_ledger") or hub.ledger_entries() == []


def test_ledger_gets_one_entry_per_successful_load(hub: Hub) -> None:
    first = "Supplier External Id,Supplier Name\nS1,Acme\n"
    partial = "Supplier External Id,Supplier Name\nS1,Acme\nS2,\nS3,Corp\n"

    hub.load(first, "suppliers", name="a.csv")
    hub.load(partial, "suppliers", name="b.csv")

    entries = hub.ledger_entries()
    assert [(e["job"], e["path"], e["sha256"], e["outcome"], e["run_id"]) for e in entries] == [
        (JOB, "/in/a.csv", sha(first), "SUCCESS", "run-1"),
        (JOB, "/in/b.csv", sha(partial), "PARTIAL", "run-1"),
    ]
    assert entries[1]["size"] == len(partial.encode())
    with hub.engine.connect() as conn:
        found = find_loaded(conn, JOB, sha256=sha(partial))
        assert found is not None
        assert (found.path, found.outcome, found.size) == ("/in/b.csv", "PARTIAL", len(partial.encode()))
        assert find_loaded(conn, "another-job", sha256=sha(first)) is None


def test_rejects_file_holds_every_reject(hub: Hub) -> None:
    lines = ["Variant External Id,Product External Id,Variant Names,Variant Price,Deleted Variant"]
    for n in range(1, 2_501):
        if n % 10 == 0:
            lines.append(f"V{n},P1,Name {n},not-a-price,TRUE")  # one broken rule
        elif n % 250 == 1:
            lines.append(f"V{n},P1,,not-a-price,maybe")  # three broken rules
        else:
            lines.append(f"V{n},P1,Name {n},{n}.5,FALSE")

    report, sample = hub.load("\n".join(lines) + "\n", "variants", batch_rows=1_000)

    assert (report.status, report.rows_read, report.rejected) == ("PARTIAL", 2_500, 260)
    assert report.inserted == 2_240
    written = rejects_file(report)
    assert written[0] == ["record", "line", "column", "value", "code", "message"]
    assert len(written) - 1 == 250 + 10 * 3
    assert len(sample) == REJECT_SAMPLE
    assert [row[:3] for row in written[1:4]] == [
        ["1", "2", "Variant Names"],
        ["1", "2", "Variant Price"],
        ["1", "2", "Deleted Variant"],
    ]
    assert sorted({int(row[0]) for row in written[1:]}) == sorted(
        n for n in range(1, 2_501) if n % 10 == 0 or n % 250 == 1
    )


def test_the_hub_keeps_a_files_first_rejects_and_its_true_count(hub: Hub) -> None:
    bad = REJECTS_KEPT_PER_FILE + 250
    rows = "".join(f"S{n},,ACTIVE\n" for n in range(bad)) + "S-ok,Fine,ACTIVE\n"
    report, _ = hub.load("Supplier External Id,Supplier Name,Status\n" + rows, "suppliers", threshold=100)

    assert (report.status, report.rejected) == ("PARTIAL", bad)
    with hub.engine.connect() as conn:
        (kept,) = rejected_files(conn, "run-1")
        first = stored_rejects(conn, "run-1", limit=2)
    assert (kept.rejected, kept.stored, kept.location) == (bad, REJECTS_KEPT_PER_FILE, report.rejects_file)
    assert [(r["record"], r["value"]) for r in first] == [(1, None), (2, None)]
    assert len(rejects_file(report)) == bad + 1  # the rejects file holds every one (and its header)


def test_a_rejects_file_is_also_written_to_the_workers_storage_location(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    text = "Supplier External Id,Supplier Name,Status\nS1,Acme,ACTIVE\nS2,,ACTIVE\n"
    storage = tmp_path / "storage"
    monkeypatch.setenv("DATAHUB_REJECTS_URL", f"file://{storage}/")
    report, _ = hub.load(text, "suppliers", name="kept.csv")

    assert report.rejects_file is not None
    name = Path(report.rejects_file).name
    assert report.rejects_url == f"file://{storage}/test-job/run-1/{name}"
    stored = storage / "test-job" / "run-1" / name
    assert stored.read_bytes() == Path(report.rejects_file).read_bytes()
    with hub.engine.connect() as conn:
        assert [f.location for f in rejected_files(conn, "run-1")] == [report.rejects_url]

    # A location that cannot be written costs a warning, never the file's load.
    (tmp_path / "not-a-folder").write_text("x", encoding="utf-8")
    monkeypatch.setenv("DATAHUB_REJECTS_URL", str(tmp_path / "not-a-folder"))
    again, _ = hub.load(text, "suppliers", name="again.csv")
    assert (again.status, again.rejects_url) == ("PARTIAL", None)
    assert "Could not write the rejects of /in/again.csv to DATAHUB_REJECTS_URL=" in caplog.text
