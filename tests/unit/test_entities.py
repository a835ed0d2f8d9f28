"""Sanity of the entity catalogue: every key, parent link, rule and standard header holds together."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.hub import catalogue_markdown
from tasks.hub.entities import CUSTOM_FIELD_PREFIX, ENTITIES, Entity, EntityName, TableSpec, entity

ALL = [pytest.param(catalogue, id=name) for name, catalogue in ENTITIES.items()]
TABLES = [
    pytest.param(catalogue, table, id=f"{catalogue.name}.{table.name}")
    for catalogue in ENTITIES.values()
    for table in catalogue.tables
]


def test_the_domain_entities_exist() -> None:
    assert {"products", "variants", "offers", "orders", "suppliers", "accounts", "customer_users"} <= set(
        ENTITIES
    )


def test_entity_names_match_the_literal_type() -> None:
    assert set(EntityName.__args__) == set(ENTITIES)
    assert all(entity(name).name == name for name in ENTITIES)


@pytest.mark.parametrize(("catalogue", "table"), TABLES)
def test_table_key_is_made_of_required_fields(catalogue: Entity, table: TableSpec) -> None:
    assert table.key
    for name in table.key:
        assert name in table.by_name, f"{table.name} key {name} is not one of its fields"
        assert table.field(name).required
        assert table.field(name).type == "text"


@pytest.mark.parametrize(("catalogue", "table"), TABLES)
def test_field_names_are_unique_within_a_table(catalogue: Entity, table: TableSpec) -> None:
    names = [spec.name for spec in table.fields]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("catalogue", "table"), TABLES)
def test_rules_are_sane(catalogue: Entity, table: TableSpec) -> None:
    for spec in table.fields:
        if spec.enum:
            assert spec.type in ("text", "list"), spec.name
            assert len(set(spec.enum)) == len(spec.enum), spec.name
            assert all(value and value == value.strip() for value in spec.enum), spec.name
            # Text enums match case-insensitively: two values may not differ by case only.
            assert len({value.upper() for value in spec.enum}) == len(spec.enum), spec.name
        if spec.max_length is not None:
            assert spec.type == "text", spec.name
            assert spec.max_length > 0, spec.name
        assert not spec.name.startswith(CUSTOM_FIELD_PREFIX), spec.name


@pytest.mark.parametrize("catalogue", ALL)
def test_child_tables_hang_on_the_root_key(catalogue: Entity) -> None:
    root = catalogue.root
    if len(catalogue.tables) > 1:
        assert root.parent_key == ()
    for child in catalogue.tables[1:]:
        assert child.parent_key, f"{child.name} has no parent key"
        assert child.parent_key == root.key, f"{child.name} parent key {child.parent_key} is not {root.key}"
        for name in child.parent_key:
            assert name in child.by_name
            assert name in root.by_name
            assert child.field(name).type == root.field(name).type


@pytest.mark.parametrize("catalogue", ALL)
def test_standard_headers_round_trip(catalogue: Entity) -> None:
    mapping = catalogue.standard_mapping()
    assert len(mapping) == len(catalogue.field_names), "two fields share a standard header"
    for name in catalogue.field_names:
        header = catalogue.tables_of(name)[0].field(name).csv_header
        assert mapping[header] == name
        assert not header.startswith(CUSTOM_FIELD_PREFIX)


@pytest.mark.parametrize("catalogue", ALL)
def test_a_shared_field_has_one_header_and_one_type(catalogue: Entity) -> None:
    for name in catalogue.field_names:
        specs = [table.field(name) for table in catalogue.tables_of(name)]
        assert len({(spec.type, spec.csv_header) for spec in specs}) == 1, name


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("productExternalId", "Product External Id"),
        ("stockExternalId", "Stock External Id"),
        ("variantPrice", "Variant Price"),
        ("customerUserEmail", "Customer User Email"),
    ],
)
def test_title_case_headers(name: str, header: str) -> None:
    specs = [spec for catalogue in ENTITIES.values() for table in catalogue.tables for spec in table.fields]
    assert {spec.csv_header for spec in specs if spec.name == name} == {header}


def test_products_and_offers_layouts() -> None:
    products, offers, orders = entity("products"), entity("offers"), entity("orders")
    assert [table.name for table in products.tables] == ["products", "variants"]
    assert [table.name for table in offers.tables] == ["offer_stocks", "offer_prices"]
    assert [table.name for table in orders.tables] == ["orders", "order_lines"]
    assert orders.tables[1].key == ("orderExternalId", "orderLineExternalId")
    assert (offers.custom_fields, orders.custom_fields) == (True, True)
    assert not products.custom_fields  # products and variants use attributes instead
    assert products.root.field("productNames").required
    assert offers.root.field("stockNumber").type == "integer"
    assert offers.tables[1].field("pricePerItem").type == "decimal"


def test_docs_entities_md_is_the_catalogue_as_generated() -> None:
    written = (Path(__file__).resolve().parents[2] / "docs" / "entities.md").read_text(encoding="utf-8")
    assert written == catalogue_markdown(), (
        "docs/entities.md is out of date: ./dev python -m deployments entities > docs/entities.md"
    )
    assert "| `productNames` | Product Names | text | yes |  | 255 |" in written
