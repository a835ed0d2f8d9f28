"""Mapping a file's columns onto entity fields, and validating every cell into canonical text."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tasks.csv.reader import LINE, RECORD
from tasks.errors import BadFileError
from tasks.hub.entities import CUSTOM_FIELDS_COLUMN, entity
from tasks.hub.mapping import (
    REJECT_SCHEMA,
    CellFormats,
    MappingPlan,
    field_problems,
    near_misses,
    plan_mapping,
    validate_batch,
)
from tasks.run import ignored_text

DEFAULT = CellFormats()


def batch(columns: dict[str, list[str | None]], lines: list[int] | None = None) -> pl.DataFrame:
    """A batch as `iter_batches` yields it: text columns plus record and line numbers."""
    height = len(next(iter(columns.values())))
    return pl.DataFrame(
        {
            RECORD: list(range(1, height + 1)),
            **columns,
            LINE: lines or list(range(2, height + 2)),
        },
        schema={RECORD: pl.Int64, **dict.fromkeys(columns, pl.String), LINE: pl.Int64},
    )


def one_cell(
    entity_name: str, field: str, cell: str | None, formats: CellFormats = DEFAULT
) -> tuple[str, str | None]:
    """Validate one cell of `field`; return ("value", canonical text) or ("reject", code)."""
    catalogue = entity(entity_name)
    plan = plan_mapping(
        catalogue, {"Key": catalogue.root.key[0], "Cell": field}, ["Key", "Cell"], name="t.csv"
    )
    result = validate_batch(batch({"Key": ["K1"], "Cell": [cell]}), plan, formats)
    if result.rejected_records:
        assert result.rows.height == 0
        assert result.rejects["column"].to_list() == ["Cell"]
        return "reject", result.rejects["code"].item()
    return "value", result.rows[field].item()


CELLS = [
    # text, enums (case-insensitive, normalised to the catalogue's spelling), lengths
    pytest.param("suppliers", "status", "active", DEFAULT, ("value", "ACTIVE"), id="enum-lower-case"),
    pytest.param(
        "suppliers", "status", " Closed ", DEFAULT, ("value", "CLOSED"), id="enum-mixed-case-padded"
    ),
    pytest.param("suppliers", "status", "OPEN", DEFAULT, ("reject", "F-E-008"), id="enum-unknown"),
    pytest.param(
        "suppliers", "supplierName", "x" * 255, DEFAULT, ("value", "x" * 255), id="text-at-max-length"
    ),
    pytest.param("suppliers", "supplierName", "x" * 256, DEFAULT, ("reject", "F-E-010"), id="text-too-long"),
    pytest.param(
        "suppliers", "description", " keep  spaces ", DEFAULT, ("value", " keep  spaces "), id="text-raw"
    ),
    # integers
    pytest.param("offers", "stockNumber", "42", DEFAULT, ("value", "42"), id="integer"),
    pytest.param("offers", "stockNumber", " +7 ", DEFAULT, ("value", "7"), id="integer-plus-sign"),
    pytest.param("offers", "stockNumber", "-3", DEFAULT, ("value", "-3"), id="integer-negative"),
    pytest.param("offers", "stockNumber", "1.5", DEFAULT, ("reject", "F-E-012"), id="integer-with-decimals"),
    pytest.param("offers", "stockNumber", "12abc", DEFAULT, ("reject", "F-E-012"), id="integer-with-letters"),
    pytest.param(
        "offers",
        "stockNumber",
        "99999999999999999999",
        DEFAULT,
        ("reject", "F-E-012"),
        id="integer-over-64-bits",
    ),
    # decimals
    pytest.param("variants", "variantPrice", "12.50", DEFAULT, ("value", "12.50"), id="decimal-point"),
    pytest.param("variants", "variantPrice", "-.5", DEFAULT, ("value", "-.5"), id="decimal-leading-point"),
    pytest.param("variants", "variantPrice", "12", DEFAULT, ("value", "12"), id="decimal-integer"),
    pytest.param(
        "variants", "variantPrice", "12,50", DEFAULT, ("reject", "F-E-012"), id="decimal-comma-by-default"
    ),
    pytest.param(
        "variants", "variantPrice", "1 000", DEFAULT, ("reject", "F-E-012"), id="decimal-thousands-space"
    ),
    pytest.param(
        "variants",
        "variantPrice",
        "12,50",
        CellFormats(decimal_separator=","),
        ("value", "12.50"),
        id="decimal-comma-override",
    ),
    pytest.param(
        "variants",
        "variantPrice",
        "1.234,5",
        CellFormats(decimal_separator=","),
        ("reject", "F-E-012"),
        id="decimal-comma-override-with-thousands",
    ),
    # booleans
    pytest.param("variants", "deletedVariant", "TRUE", DEFAULT, ("value", "1"), id="boolean-true"),
    pytest.param(
        "variants", "deletedVariant", "false", DEFAULT, ("value", "0"), id="boolean-false-lower-case"
    ),
    pytest.param("variants", "deletedVariant", "maybe", DEFAULT, ("reject", "F-E-009"), id="boolean-maybe"),
    pytest.param("variants", "deletedVariant", "1", DEFAULT, ("reject", "F-E-009"), id="boolean-digit"),
    pytest.param(
        "variants",
        "deletedVariant",
        "oui",
        CellFormats(true_values=["OUI"], false_values=["NON"]),
        ("value", "1"),
        id="boolean-override",
    ),
    # dates
    pytest.param(
        "variants", "variantAvailableFrom", "23/11/2026", DEFAULT, ("value", "2026-11-23"), id="date-dmy"
    ),
    pytest.param(
        "variants", "variantAvailableFrom", "2026-11-23", DEFAULT, ("value", "2026-11-23"), id="date-iso"
    ),
    pytest.param(
        "variants", "variantAvailableFrom", "31/02/2026", DEFAULT, ("reject", "F-E-012"), id="date-31-feb"
    ),
    pytest.param(
        "variants", "variantAvailableFrom", "11/23/2026", DEFAULT, ("reject", "F-E-012"), id="date-mdy"
    ),
    pytest.param("variants", "variantAvailableFrom", "soon", DEFAULT, ("reject", "F-E-012"), id="date-text"),
    pytest.param(
        "variants",
        "variantAvailableFrom",
        "11/23/2026",
        CellFormats(date_formats=["%m/%d/%Y"]),
        ("value", "2026-11-23"),
        id="date-format-override",
    ),
    pytest.param(
        "variants",
        "variantAvailableFrom",
        "23/11/2026",
        CellFormats(date_formats=["%m/%d/%Y"]),
        ("reject", "F-E-012"),
        id="date-format-override-replaces-default",
    ),
    # datetimes, stored in UTC
    pytest.param(
        "variants",
        "variantUpdatedAt",
        "2026-11-23T10:15:00Z",
        DEFAULT,
        ("value", "2026-11-23T10:15:00.000000+00:00"),
        id="datetime-zulu",
    ),
    pytest.param(
        "variants",
        "variantUpdatedAt",
        "2026-11-23T10:15:00.5+02:00",
        DEFAULT,
        ("value", "2026-11-23T08:15:00.500000+00:00"),
        id="datetime-offset",
    ),
    pytest.param(
        "variants",
        "variantUpdatedAt",
        "2026-11-23 10:15:00",
        DEFAULT,
        ("value", "2026-11-23T10:15:00.000000+00:00"),
        id="datetime-naive-is-utc",
    ),
    pytest.param(
        "variants", "variantUpdatedAt", "23/11/2026", DEFAULT, ("reject", "F-E-012"), id="datetime-date"
    ),
    # lists
    pytest.param(
        "variants", "variantEan", "a||b||", DEFAULT, ("value", '["a","b"]'), id="list-trailing-separator"
    ),
    pytest.param("variants", "variantEan", " a || b ", DEFAULT, ("value", '["a","b"]'), id="list-padded"),
    pytest.param(
        "variants", "variantEan", 'say "x"', DEFAULT, ("value", '["say \\"x\\""]'), id="list-json-escaped"
    ),
    pytest.param(
        "variants",
        "variantEan",
        "a;b",
        CellFormats(list_separator=";"),
        ("value", '["a","b"]'),
        id="list-override",
    ),
    pytest.param(
        "customer_users",
        "customerUserGroups",
        "FOC_Admin||FOC_User",
        DEFAULT,
        ("value", '["FOC_Admin","FOC_User"]'),
        id="list-enum",
    ),
    pytest.param(
        "customer_users",
        "customerUserGroups",
        "FOC_Admin||Boss",
        DEFAULT,
        ("reject", "F-E-008"),
        id="list-enum-unknown",
    ),
    # blanks
    pytest.param("variants", "variantNames", "", DEFAULT, ("reject", "F-E-001"), id="blank-required"),
    pytest.param("variants", "variantNames", "   ", DEFAULT, ("reject", "F-E-001"), id="whitespace-required"),
    pytest.param("variants", "variantNames", None, DEFAULT, ("reject", "F-E-001"), id="null-required"),
    pytest.param("variants", "variantDescriptions", "", DEFAULT, ("value", None), id="blank-optional-text"),
    pytest.param("variants", "variantPrice", " ", DEFAULT, ("value", None), id="blank-optional-decimal"),
    pytest.param("variants", "deletedVariant", None, DEFAULT, ("value", None), id="blank-optional-boolean"),
    pytest.param("variants", "variantEan", "", DEFAULT, ("value", None), id="blank-optional-list"),
]


@pytest.mark.parametrize(("entity_name", "field", "cell", "formats", "expected"), CELLS)
def test_cell_is_converted_or_rejected(
    entity_name: str, field: str, cell: str | None, formats: CellFormats, expected: tuple[str, str | None]
) -> None:
    assert one_cell(entity_name, field, cell, formats) == expected


def variants_plan(header: list[str]) -> MappingPlan:
    mapping = {
        "Id": "variantExternalId",
        "Product": "productExternalId",
        "Name": "variantNames",
        "Price": "variantPrice",
        "From": "variantAvailableFrom",
        "Deleted": "deletedVariant",
    }
    return plan_mapping(
        entity("variants"), {k: v for k, v in mapping.items() if k in header}, header, name="v.csv"
    )


def test_rejects_carry_record_line_column_value_code_and_message() -> None:
    header = ["Id", "Product", "Name", "Price", "From", "Deleted"]
    rows = batch(
        {
            "Id": ["V1", "V2", "V3", "V4"],
            "Product": ["P1", "P1", "P1", "P1"],
            "Name": ["Shirt", "", "Hat", "Cap"],
            "Price": ["9.90", "abc", "1", "2"],
            "From": ["01/02/2026", "01/02/2026", "31/02/2026", ""],
            "Deleted": ["FALSE", "TRUE", "TRUE", "yes"],
        },
        lines=[2, 3, 7, 8],  # record 2 holds a cell of several lines
    )
    result = validate_batch(rows, variants_plan(header), DEFAULT)

    assert result.rows.columns == [
        RECORD,
        LINE,
        "variantExternalId",
        "productExternalId",
        "variantNames",
        "variantPrice",
        "variantAvailableFrom",
        "deletedVariant",
    ]
    assert result.rows.to_dicts() == [
        {
            RECORD: 1,
            LINE: 2,
            "variantExternalId": "V1",
            "productExternalId": "P1",
            "variantNames": "Shirt",
            "variantPrice": "9.90",
            "variantAvailableFrom": "2026-02-01",
            "deletedVariant": "0",
        }
    ]
    # Record 2 breaks two rules: two reject lines, one rejected record.
    assert result.rejected_records == 3
    assert result.rejects.schema == pl.Schema(REJECT_SCHEMA)
    assert result.rejects.to_dicts() == [
        {
            "record": 2,
            "line": 3,
            "column": "Name",
            "value": "",
            "code": "F-E-001",
            "message": "Required field `variantNames` is missing or blank.",
        },
        {
            "record": 2,
            "line": 3,
            "column": "Price",
            "value": "abc",
            "code": "F-E-012",
            "message": "`variantPrice` does not respect the format DECIMAL (with `.` as decimal separator).",
        },
        {
            "record": 3,
            "line": 7,
            "column": "From",
            "value": "31/02/2026",
            "code": "F-E-012",
            "message": "`variantAvailableFrom` does not respect the format DATE (%d/%m/%Y or %Y-%m-%d).",
        },
        {
            "record": 4,
            "line": 8,
            "column": "Deleted",
            "value": "yes",
            "code": "F-E-009",
            "message": "`deletedVariant` expects a boolean: TRUE or FALSE.",
        },
    ]


REJECT_MESSAGES = [
    pytest.param(
        "suppliers",
        "status",
        "OPEN",
        "Unexpected value for `status`; it must be one of ACTIVE, SUSPENDED, CLOSED.",
        id="F-E-008",
    ),
    pytest.param(
        "suppliers",
        "supplierName",
        "x" * 300,
        "Size limit exceeded: `supplierName` must be at most 255 characters.",
        id="F-E-010",
    ),
    pytest.param(
        "offers",
        "stockNumber",
        "1.5",
        "`stockNumber` does not respect the format INTEGER (digits only).",
        id="F-E-012",
    ),
    pytest.param(
        "variants",
        "variantUpdatedAt",
        "noon",
        "`variantUpdatedAt` does not respect the format DATETIME (ISO 8601, e.g. 2026-11-23T10:15:00Z).",
        id="F-E-012-datetime",
    ),
]


@pytest.mark.parametrize(("entity_name", "field", "cell", "message"), REJECT_MESSAGES)
def test_reject_message_names_the_field_and_the_rule(
    entity_name: str, field: str, cell: str, message: str
) -> None:
    catalogue = entity(entity_name)
    plan = plan_mapping(
        catalogue, {"Key": catalogue.root.key[0], "Cell": field}, ["Key", "Cell"], name="t.csv"
    )
    result = validate_batch(batch({"Key": ["K1"], "Cell": [cell]}), plan, DEFAULT)
    assert result.rejects["message"].to_list() == [message]
    assert result.rejects["value"].to_list() == [cell]


def test_blank_key_is_rejected_as_missing() -> None:
    plan = plan_mapping(entity("suppliers"), None, ["Supplier External Id", "Supplier Name"], name="s.csv")
    result = validate_batch(
        batch({"Supplier External Id": [" ", "S2"], "Supplier Name": ["A", "B"]}), plan, DEFAULT
    )
    assert result.rows["supplierExternalId"].to_list() == ["S2"]
    assert result.rejects.select("record", "column", "code").rows() == [
        (1, "Supplier External Id", "F-E-001")
    ]


def test_custom_fields_become_a_json_merge_patch() -> None:
    header = ["Supplier External Id", "CF_warehouse", "CF_taxCode"]
    plan = plan_mapping(entity("suppliers"), None, header, name="s.csv")
    assert plan.custom_columns == ("CF_warehouse", "CF_taxCode")
    rows = batch(
        {"Supplier External Id": ["S1", "S2"], "CF_warehouse": ["Lyon 1", ""], "CF_taxCode": [None, "T5"]}
    )
    result = validate_batch(rows, plan, DEFAULT)
    documents = [json.loads(text) for text in result.rows[CUSTOM_FIELDS_COLUMN]]
    assert documents == [{"warehouse": "Lyon 1", "taxCode": None}, {"warehouse": None, "taxCode": "T5"}]


def test_a_nul_byte_in_a_custom_field_rejects_that_row_only() -> None:
    # PostgreSQL's JSON cannot hold \u0000: left in, the row would fail the whole file there.
    plan = plan_mapping(entity("offers"), None, ["Stock External Id", "CF_note", "CF_other"], name="o.csv")
    rows = batch(
        {
            "Stock External Id": ["S1", "S2", "S3"],
            "CF_note": ["ok", "a\x00b", None],
            "CF_other": ["x", "y", "z"],
        }
    )
    result = validate_batch(rows, plan, DEFAULT)
    assert result.rows["stockExternalId"].to_list() == ["S1", "S3"]
    assert result.rejected_records == 1
    assert result.rejects.to_dicts() == [
        {
            "record": 2,
            "line": 3,
            "column": "CF_note",
            "value": "a\x00b",
            "code": "CSV-E-003",
            "message": "Custom field `CF_note` holds a NUL byte (\\x00), which no text column stores; remove it.",
        }
    ]


def test_nul_bytes_in_mapped_and_custom_cells_are_each_rejected() -> None:
    plan = plan_mapping(
        entity("suppliers"), None, ["Supplier External Id", "Supplier Name", "CF_x"], name="s.csv"
    )
    rows = batch({"Supplier External Id": ["S1"], "Supplier Name": ["A\x00"], "CF_x": ["\x00"]})
    result = validate_batch(rows, plan, DEFAULT)
    assert result.rows.height == 0
    assert result.rejects.select("column", "code").rows() == [
        ("Supplier Name", "CSV-E-003"),
        ("CF_x", "CSV-E-003"),
    ]


# -- plan_mapping ---------------------------------------------------------------------------------------


def test_standard_headers_are_picked_without_a_mapping() -> None:
    header = ["Supplier External Id", "Supplier Name", "Status", "Unknown Column", "Deleted"]
    plan = plan_mapping(entity("suppliers"), None, header, name="s.csv")
    assert [(m.column, m.spec.name) for m in plan.fields] == [
        ("Supplier External Id", "supplierExternalId"),
        ("Supplier Name", "supplierName"),
        ("Status", "status"),
        ("Deleted", "deleted"),
    ]
    assert plan.ignored_columns == ("Unknown Column",)
    assert [table.name for table in plan.tables] == ["suppliers"]


def test_explicit_mapping_with_absent_columns_is_refused() -> None:
    mapping = {"id": "supplierExternalId", "nom": "supplierName", "etat": "status"}
    with pytest.raises(BadFileError) as caught:
        plan_mapping(entity("suppliers"), mapping, ["id", "name"], name="s.csv")
    assert str(caught.value) == (
        "s.csv: mapped column(s) ['nom', 'etat'] are not in the file's header ['id', 'name']. "
        "Fix the `mapping` of the job, or the header of the file."
    )


def test_explicit_mapping_ignores_standard_headers() -> None:
    plan = plan_mapping(
        entity("suppliers"), {"id": "supplierExternalId"}, ["id", "Supplier Name"], name="s.csv"
    )
    assert [m.spec.name for m in plan.fields] == ["supplierExternalId"]
    assert plan.ignored_columns == ("Supplier Name",)


def test_products_file_without_variant_columns_loads_products_only() -> None:
    header = ["Product External Id", "Product Names", "Product Classification Category Id"]
    plan = plan_mapping(entity("products"), None, header, name="p.csv")
    assert [table.name for table in plan.tables] == ["products"]
    assert plan.row_table.name == "products"


def test_products_file_with_variant_key_loads_both_tables() -> None:
    header = ["Product External Id", "Product Names", "Variant External Id", "Variant Names"]
    plan = plan_mapping(entity("products"), None, header, name="p.csv")
    assert [table.name for table in plan.tables] == ["products", "variants"]
    assert plan.row_table.name == "variants"
    assert plan.fields_of(plan.tables[0]) == ["productExternalId", "productNames"]
    assert plan.fields_of(plan.tables[1]) == ["variantExternalId", "productExternalId", "variantNames"]
    required = {m.spec.name: m.required_here for m in plan.fields}
    # A product's own required fields may be blank on its later rows; the variant's may not.
    assert required == {
        "productExternalId": True,
        "productNames": False,
        "variantExternalId": True,
        "variantNames": True,
    }


def test_child_fields_without_the_child_key_are_refused() -> None:
    header = ["Product External Id", "Product Names", "Variant Names", "Variant Price"]
    with pytest.raises(BadFileError) as caught:
        plan_mapping(entity("products"), None, header, name="p.csv")
    assert str(caught.value) == (
        "p.csv: fields of variants ['variantNames', 'variantPrice'] are mapped but its key "
        "['variantExternalId'] is not. Map the key too, or drop those columns."
    )


def test_file_without_the_key_column_is_refused() -> None:
    with pytest.raises(BadFileError) as caught:
        plan_mapping(entity("suppliers"), None, ["Supplier Name"], name="s.csv")
    assert str(caught.value) == (
        "s.csv: no column is mapped onto the key ['supplierExternalId'] of suppliers. Add the column "
        "(standard header: ['Supplier External Id']) or map it in the job's `mapping`."
    )


def test_custom_field_columns_are_ignored_where_the_entity_has_none() -> None:
    header = ["Product External Id", "CF_colour", "Product Names"]
    plan = plan_mapping(entity("products"), None, header, name="p.csv")
    assert plan.custom_columns == ()
    assert plan.ignored_columns == ("CF_colour",)


# -- field_problems --------------------------------------------------------------------------------------


def test_correct_mapping_has_no_problems() -> None:
    assert field_problems(entity("suppliers"), {"id": "supplierExternalId", "name": "supplierName"}) == []


def test_unknown_field_lists_the_valid_ones() -> None:
    problems = field_problems(entity("suppliers"), {"id": "supplierExternalId", "nom": "supplierNom"})
    valid = ", ".join(entity("suppliers").field_names)
    assert problems == [
        f"column 'nom' is mapped to `supplierNom`, which suppliers does not have; valid fields: {valid}"
    ]
    assert "supplierName" in valid


def test_field_mapped_twice_is_a_problem() -> None:
    problems = field_problems(
        entity("suppliers"), {"id": "supplierExternalId", "name": "supplierName", "label": "supplierName"}
    )
    assert problems == ["fields ['supplierName'] are mapped from more than one column; map each field once"]


def test_unmapped_key_is_a_problem() -> None:
    problems = field_problems(entity("orders"), {"ref": "orderReference"})
    assert problems == ["the key ['orderExternalId'] of orders is not mapped; map a column onto it"]


# -- property: validation never raises and never drops a row ---------------------------------------------

TYPED_FIELDS = {
    "Pack": ("offers", "quantityPerPack"),
    "Price": ("variants", "variantPrice"),
    "Deleted": ("variants", "deletedVariant"),
    "From": ("variants", "variantAvailableFrom"),
    "Updated": ("variants", "variantUpdatedAt"),
}
# What polars' `str.strip_chars()` strips (Rust's `char::is_whitespace`, Unicode White_Space); Python's
# `str.strip()` also strips the separators U+001C-U+001F, which the mapping keeps as content.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
ANY_CELL = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.text(alphabet="0123456789+-.,eE /:TZ", max_size=20),
    st.sampled_from(["TRUE", "false", "31/02/2026", "2026-02-28", "1e999", "--1", "+", ".", "9" * 40]),
)


@settings(max_examples=50, deadline=None)
@example(column="Price", cells=["\x1f", " \x1c "])  # not blank for polars, though blank for str.strip()
@given(column=st.sampled_from(sorted(TYPED_FIELDS)), cells=st.lists(ANY_CELL, min_size=1, max_size=30))
def test_every_row_is_either_valid_or_rejected(column: str, cells: list[str | None]) -> None:
    entity_name, field = TYPED_FIELDS[column]
    catalogue = entity(entity_name)
    plan = plan_mapping(
        catalogue, {"Key": catalogue.root.key[0], column: field}, ["Key", column], name="t.csv"
    )
    rows = batch({"Key": [f"K{n}" for n in range(len(cells))], column: cells})

    result = validate_batch(rows, plan, DEFAULT)

    assert result.rows.height + result.rejected_records == rows.height
    assert result.rejects["record"].n_unique() == result.rejected_records
    assert set(result.rows[RECORD]).isdisjoint(result.rejects["record"])
    for cell, rejected in zip(
        cells, [n + 1 in set(result.rejects["record"]) for n in range(len(cells))], strict=True
    ):
        if cell is None or not cell.strip(WHITE_SPACE):
            assert not rejected  # blank optional cells load as null


def test_an_ignored_column_that_nearly_is_a_standard_header_is_named_with_it() -> None:
    header = ["Product External Id", "Product Name", "product brand", "Colour", "Variant External Id"]
    plan = plan_mapping(entity("products"), None, header, name="in/a.csv")
    assert plan.ignored_columns == ("Product Name", "product brand", "Colour")
    # Case aside, "product brand" is the standard header of productBrand: not mapped, so a near miss too.
    assert near_misses(plan) == {"Product Name": "Product Names", "product brand": "Product Brand"}
    assert ignored_text(plan.ignored_columns, near_misses(plan)) == (
        "Product Name (did you mean Product Names?), product brand (did you mean Product Brand?), Colour"
    )


def test_a_standard_header_left_out_of_an_explicit_mapping_is_no_near_miss_of_itself() -> None:
    # It printed "Product Brand (did you mean Product Brand?)" for every file of a bulk run.
    mapping = {"Product External Id": "productExternalId", "Product Names": "productNames"}
    header = ["Product External Id", "Product Names", "Product Brand", "Product Brnad"]
    plan = plan_mapping(entity("products"), mapping, header, name="in/a.csv")
    assert plan.ignored_columns == ("Product Brand", "Product Brnad")
    assert near_misses(plan) == {"Product Brnad": "Product Brand"}


def test_a_mapped_fields_header_is_no_near_miss() -> None:
    plan = plan_mapping(
        entity("products"), None, ["Product External Id", "Product Names", "Product Namez"], name="in/a.csv"
    )
    assert near_misses(plan) == {}  # productNames is mapped already: the extra column is just ignored
