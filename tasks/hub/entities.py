"""The entity catalogue: what the hub database holds, field by field.

Each entity is data, not code: its tables (the first is the root; later ones are child tables,
because the domain's CSV layouts repeat the parent key on purpose), each table's key, and each
field's type, required-for-creation flag, allowed values and maximum length. Field names are the
domain's API keys (camelCase); ``header`` is the domain's standard CSV header for that field, used
when a job maps no columns explicitly. Sources: ``shared/reference/djust-domain.md`` §5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["text", "integer", "decimal", "boolean", "date", "datetime", "list"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of an entity: its column, type and rules."""

    name: str
    type: FieldType = "text"
    required: bool = False
    enum: tuple[str, ...] = ()
    max_length: int | None = None
    header: str = ""

    @property
    def csv_header(self) -> str:
        """Return the domain's standard CSV header of this field."""
        return self.header or _title_case(self.name)


@dataclass(frozen=True)
class TableSpec:
    """One table of the hub database: its key (the external id) and its fields."""

    name: str
    key: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    parent_key: tuple[str, ...] = ()

    def field(self, name: str) -> FieldSpec:
        """Return the field called `name`."""
        return self.by_name[name]

    @property
    def by_name(self) -> dict[str, FieldSpec]:
        """Return the fields by name."""
        return {spec.name: spec for spec in self.fields}


@dataclass(frozen=True)
class Entity:
    """An importable entity: one or more tables, the first being the root."""

    name: str
    title: str
    tables: tuple[TableSpec, ...]
    custom_fields: bool = False
    notes: str = ""
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> TableSpec:
        """Return the root table, the one keyed by the entity's external id."""
        return self.tables[0]

    @property
    def field_names(self) -> list[str]:
        """Return every field of every table, root first, without repeats."""
        names: list[str] = []
        for table in self.tables:
            names.extend(spec.name for spec in table.fields if spec.name not in names)
        return names

    def tables_of(self, field_name: str) -> list[TableSpec]:
        """Return the tables that hold `field_name` (a key may sit in a parent and its child)."""
        return [table for table in self.tables if field_name in table.by_name]

    def standard_mapping(self) -> dict[str, str]:
        """Return the domain's standard CSV header of every field, mapped onto that field."""
        mapping: dict[str, str] = {}
        for table in self.tables:
            for spec in table.fields:
                mapping.setdefault(spec.csv_header, spec.name)
        return mapping


def _title_case(name: str) -> str:
    words: list[str] = []
    current = ""
    for char in name:
        if char.isupper() and current:
            words.append(current)
            current = char
        else:
            current += char
    words.append(current)
    return " ".join(word[:1].upper() + word[1:] for word in words)


def _f(name: str, type_: FieldType = "text", **rules: object) -> FieldSpec:
    return FieldSpec(name, type_, **rules)  # type: ignore[arg-type]


def _key(name: str, header: str = "") -> FieldSpec:
    return FieldSpec(name, "text", required=True, max_length=255, header=header)


_ORDER_STATUSES = (
    "DRAFT_ORDER",
    "DRAFT_ORDER_ON_HOLD",
    "ORDER_DRAFT_ON_HOLD",
    "ORDER_CREATED",
    "BLOCKED_BY_POLICY",
    "BLOCKED_BY_PAYMENT",
    "WAITING_CUSTOMER_APPROVAL",
    "WAITING_SUPPLIER_APPROVAL",
    "DECLINED_BY_CUSTOMER",
    "DECLINED_BY_SUPPLIER",
    "ACCEPTED_BY_SUPPLIER",
    "SHIPPED",
    "DELIVERED",
    "COMPLETED",
    "CANCELED",
)
_ATTRIBUTE_TYPES = (
    "TEXT",
    "LONG_TEXT",
    "COLOR",
    "LIST_METRIC",
    "LIST_TEXT",
    "LIST_COLOR",
    "DATE",
    "METRIC",
    "NUMBER",
)
_UNIT_TYPES = (
    "WEIGHT_METRIC",
    "VOLUME_METRIC",
    "LENGTH_METRIC",
    "AREA_METRIC",
    "WEIGHT_IMPERIAL",
    "VOLUME_IMPERIAL",
    "LENGTH_IMPERIAL",
    "AREA_IMPERIAL",
)

PRODUCTS = TableSpec(
    "products",
    key=("productExternalId",),
    fields=(
        _key("productExternalId"),
        _f("productNames", required=True, max_length=255),
        _f("productDescriptions", max_length=10_000),
        _f("productBrand", max_length=255),
        _f("productClassificationCategoryId", required=True, max_length=255),
        _f("productUnit", max_length=50),
        _f("productTags", "list"),
        _f("deletedProduct", "boolean"),
        _f("inactiveProduct", "boolean"),
        _f("storeExternalIds", "list"),
    ),
)
VARIANTS = TableSpec(
    "variants",
    key=("variantExternalId",),
    parent_key=("productExternalId",),
    fields=(
        _key("variantExternalId"),
        _key("productExternalId"),
        _f("variantNames", required=True, max_length=255),
        _f("variantDescriptions", max_length=10_000),
        _f("variantExternalSku", max_length=255),
        _f("variantEan", "list"),
        _f("variantMpn", max_length=255),
        _f("variantMainImageUrl", max_length=2048),
        _f("variantAdditionalImageLinks", "list"),
        _f("variantPrice", "decimal", header="Variant Price"),
        _f("variantWeight", "decimal"),
        _f("variantAvailableFrom", "date"),
        _f("variantUpdatedAt", "datetime"),
        _f("deletedVariant", "boolean"),
        _f("inactiveVariant", "boolean"),
    ),
)
OFFER_STOCKS = TableSpec(
    "offer_stocks",
    key=("stockExternalId",),
    fields=(
        _key("stockExternalId"),
        _f("stockVariantId", required=True, max_length=255),
        _f("supplierExternalId", required=True, max_length=255),
        _f("stockNumber", "integer", required=True),
        _f("quantityPerPack", "integer"),
        _f("currency", max_length=3),
        _f("leadTimeToShip", "integer"),
        _f("salesUnit", max_length=50),
        _f("deletedStock", "boolean"),
        _f("inactiveStock", "boolean"),
    ),
)
OFFER_PRICES = TableSpec(
    "offer_prices",
    key=("offerPriceExternalId",),
    parent_key=("stockExternalId",),
    fields=(
        _key("offerPriceExternalId"),
        _key("stockExternalId"),
        _f("priceType", enum=("PUBLIC", "GROUP", "ACCOUNT")),
        _f("priceTargetExternalId", max_length=255),
        _f("soldBy", enum=("ITEM", "PACK")),
        _f("pricePerItem", "decimal", required=True),
        _f("minQuantity", "integer"),
        _f("priceValidFrom", "date"),
        _f("priceValidTo", "date"),
        _f("deletedPrice", "boolean"),
    ),
)
ORDERS = TableSpec(
    "orders",
    key=("orderExternalId",),
    fields=(
        _key("orderExternalId"),
        _f("orderReference", max_length=255),
        _f("orderStatus", enum=_ORDER_STATUSES),
        _f("accountExternalId", required=True, max_length=255),
        _f("customerExternalId", max_length=255),
        _f("supplierExternalId", required=True, max_length=255),
        _f("orderCreationDate", "date"),
        _f("shippingAddressFullName", max_length=255),
        _f("shippingAddressCountry", max_length=255),
        _f("shippingAddressStreetName", max_length=255),
        _f("shippingAddressCity", max_length=255),
        _f("shippingAddressZipCode", max_length=20),
        _f("shippingAddressState", max_length=255),
        _f("shippingAddressAdditional", max_length=255),
    ),
)
ORDER_LINES = TableSpec(
    "order_lines",
    key=("orderExternalId", "orderLineExternalId"),
    parent_key=("orderExternalId",),
    fields=(
        _key("orderExternalId"),
        _key("orderLineExternalId"),
        _f("offerPriceExternalId", max_length=255),
        _f("variantExternalId", max_length=255),
        _f("variantName", max_length=255),
        _f("variantDescription", max_length=10_000),
        _f("classificationExternalId", max_length=255),
        _f("orderLineQuantity", "integer", required=True),
        _f("netUnitPrice", "decimal"),
        _f("grossUnitPrice", "decimal"),
        _f("taxAmount", "decimal"),
        _f("markOrderLineForDeletion", "boolean"),
    ),
)
SUPPLIERS = TableSpec(
    "suppliers",
    key=("supplierExternalId",),
    fields=(
        _key("supplierExternalId"),
        _f("supplierName", required=True, max_length=255),
        _f("description", max_length=10_000),
        _f("logo", max_length=2048),
        _f("banner", max_length=2048),
        _f("supplierRating", "decimal"),
        _f("returnPolicy", max_length=10_000),
        _f("accountExternalId", "list"),
        _f("status", enum=("ACTIVE", "SUSPENDED", "CLOSED")),
        _f("deleted", "boolean"),
        _f("storeExternalIds", "list"),
    ),
)
ACCOUNTS = TableSpec(
    "accounts",
    key=("accountExternalId",),
    fields=(
        _key("accountExternalId"),
        _f("accountName", required=True, max_length=255),
        _f("companyRegistrationName", required=True, max_length=255),
        _f("businessRegistrationNumber", required=True, max_length=255),
        _f("accountManagerName", max_length=255),
        _f("accountWebsite", max_length=2048),
        _f("accountVatNumber", max_length=50),
        _f("customerTagExternalId", "list"),
        _f("inactive", "boolean"),
        _f("deleted", "boolean"),
    ),
)
ACCOUNT_ADDRESSES = TableSpec(
    "account_addresses",
    key=("addressExternalId",),
    parent_key=("accountExternalId",),
    fields=(
        _key("addressExternalId"),
        _key("accountExternalId"),
        _f("addressFullName", required=True, max_length=255),
        _f("addressCountry", required=True, max_length=255),
        _f("addressCity", required=True, max_length=255),
        _f("addressZipCode", required=True, max_length=20),
        _f("addressStreetName", required=True, max_length=255),
        _f("addressAdditionalStreetName", max_length=255),
        _f("addressLabel", max_length=255),
        _f("addressState", max_length=255),
        _f("addressPhoneNumber", max_length=15),
        _f("shippingAddress", "boolean"),
        _f("billingAddress", "boolean"),
        _f("unlinkAddress", "boolean"),
    ),
)
CUSTOMER_USERS = TableSpec(
    "customer_users",
    key=("customerUserExternalId",),
    fields=(
        _key("customerUserExternalId"),
        _f("customerUserCivility", required=True, enum=("MR", "MRS", "MISS")),
        _f("customerUserFirstName", required=True, max_length=255),
        _f("customerUserLastName", required=True, max_length=255),
        _f("customerUserEmail", required=True, max_length=255),
        _f("customerUserPhone", required=True, max_length=15),
        _f("customerUserGroups", "list", required=True, enum=("FOC_Admin", "FOC_User", "FOC_Webmaster")),
        _f("customerUserAccountIds", "list", required=True),
        _f("customerUserOrganisationIds", "list"),
        _f("customerUserMainOrganisationId", max_length=255),
        _f("customerUserStoreIds", "list"),
        _f("customerUserInactive", "boolean"),
        _f("customerUserDeleted", "boolean"),
    ),
)
ATTRIBUTES = TableSpec(
    "attributes",
    key=("attributeExternalId",),
    fields=(
        _key("attributeExternalId"),
        _f("attributeNames", required=True, max_length=255),
        _f("attributeType", required=True, enum=_ATTRIBUTE_TYPES),
        _f("attributeValues", "list"),
        _f("attributeMulti", "boolean"),
        _f("attributeUnitType", enum=_UNIT_TYPES),
        _f("attributeUnit", max_length=10),
        _f("attributeVariant", "boolean"),
        _f("attributeDeleted", "boolean"),
        _f("attributeStoresExternalId", "list"),
    ),
)
CLASSIFICATION_CATEGORIES = TableSpec(
    "classification_categories",
    key=("classificationExternalId",),
    fields=(
        _key("classificationExternalId"),
        _f("classificationName", required=True, max_length=255),
        _f("classificationParentExternalId", max_length=255),
        _f("deleted", "boolean"),
    ),
)
CLASSIFICATION_ATTRIBUTES = TableSpec(
    "classification_attributes",
    key=("classificationExternalId", "attrCode"),
    parent_key=("classificationExternalId",),
    fields=(
        _key("classificationExternalId"),
        _key("attrCode"),
        _f("attrEnabled", "boolean"),
        _f("attrIndexable", "boolean"),
        _f("attrRequired", "boolean"),
        _f("attrForVariant", "boolean"),
        _f("attrFaceted", "boolean"),
        _f("attrSearchable", "boolean"),
        _f("attrSortable", "boolean"),
    ),
)
NAVIGATION_CATEGORIES = TableSpec(
    "navigation_categories",
    key=("navigationCategoryExternalId",),
    fields=(
        _key("navigationCategoryExternalId"),
        _f("navigationCategoryNames", required=True, max_length=255),
        _f("navigationCategoryParentId", max_length=255),
        _f("classificationCategoryCode", "list"),
        _f("navigationCategoryActive", "boolean"),
        _f("navigationCategoryPosition", "integer"),
        _f("store", "list"),
    ),
)

ENTITIES: dict[str, Entity] = {
    entity.name: entity
    for entity in (
        Entity(
            "products",
            "Products (one row per variant)",
            (PRODUCTS, VARIANTS),
            notes="Rows repeat the product for each of its variants; the variant columns are optional.",
        ),
        Entity("variants", "Variants", (VARIANTS,)),
        Entity(
            "offers",
            "Offers (stock and prices)",
            (OFFER_STOCKS, OFFER_PRICES),
            custom_fields=True,
            notes="One row per stock x price; the price columns are optional.",
        ),
        Entity("orders", "Orders (one row per order line)", (ORDERS, ORDER_LINES), custom_fields=True),
        Entity("suppliers", "Suppliers", (SUPPLIERS,), custom_fields=True),
        Entity(
            "accounts",
            "Accounts (one row per address)",
            (ACCOUNTS, ACCOUNT_ADDRESSES),
            custom_fields=True,
        ),
        Entity("customer_users", "Customer users", (CUSTOMER_USERS,), custom_fields=True),
        Entity("attributes", "Attributes", (ATTRIBUTES,)),
        Entity(
            "classification_categories",
            "Classification categories (one row per category x attribute)",
            (CLASSIFICATION_CATEGORIES, CLASSIFICATION_ATTRIBUTES),
        ),
        Entity(
            "navigation_categories",
            "Navigation categories",
            (NAVIGATION_CATEGORIES,),
            custom_fields=True,
        ),
    )
}

EntityName = Literal[
    "products",
    "variants",
    "offers",
    "orders",
    "suppliers",
    "accounts",
    "customer_users",
    "attributes",
    "classification_categories",
    "navigation_categories",
]
CUSTOM_FIELD_PREFIX = "CF_"
CUSTOM_FIELDS_COLUMN = "customFields"


def entity(name: str) -> Entity:
    """Return the catalogue entry of entity `name`."""
    return ENTITIES[name]


def catalogue_markdown() -> str:
    """Return docs/entities.md: every entity's tables and fields, as a CSV file's author needs them.

    `python -m deployments entities > docs/entities.md` writes it; a test keeps the file in sync.
    """
    lines = [
        "# Entities and their CSV columns",
        "",
        "Generated from the entity catalogue (`tasks/hub/entities.py`) by",
        "`./dev python -m deployments entities > docs/entities.md`; a test fails when it is out of date.",
        "",
        "A CSV file whose header uses the **standard headers** below needs no `mapping` (matched exactly;",
        'a column that matches no field is ignored, and named in the run\'s report, with "did you mean"',
        "for a near miss). **Required** fields must be present and non-blank when a key is new (creation);",
        "an update may carry the key and any other fields. Custom fields: `CF_<id>` columns, where said.",
        "",
    ]
    for name, item in ENTITIES.items():
        lines += [f"## {item.title} (`{name}`)", ""]
        if item.notes:
            lines += [item.notes, ""]
        if item.custom_fields:
            lines += ["Custom fields: `CF_<id>` columns go to the JSON column `customFields`.", ""]
        for table in item.tables:
            parent = (
                f", linked to its parent row by {', '.join(table.parent_key)}" if table.parent_key else ""
            )
            lines += [
                f"Table `{table.name}`, key {', '.join(f'`{k}`' for k in table.key)}{parent}:",
                "",
                "| field | standard header | type | required | allowed values | max length |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| `{spec.name}` | {spec.csv_header} | {spec.type} | {'yes' if spec.required else ''} "
                f"| {', '.join(spec.enum)} | {spec.max_length or ''} |"
                for spec in table.fields
            ]
            lines.append("")
    return "\n".join(lines)
