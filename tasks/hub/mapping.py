"""Map source columns onto entity fields and validate every cell with polars expressions.

A row that breaks a rule is rejected with the domain's code (F-E-001 missing, F-E-008 not allowed,
F-E-009 not a boolean, F-E-010 too long, F-E-012 wrong format), its record number, the line where it
starts, the column and the raw value; the other rows go on. A cell holding a NUL byte is CSV-E-003,
in a mapped column or a custom-field (`CF_`) one: every cell that reaches the database.
A CSV record with more or fewer fields
than the header (the reader marks it) is rejected whole with CSV-E-001 or CSV-E-002: its cells are
misaligned, so no other rule is checked on it. Valid values leave here as canonical text
(ISO dates, `.` decimals, `1`/`0` booleans, JSON lists), which both databases read the same way.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import polars as pl
from pydantic import ConfigDict, Field

from tasks.errors import BadFileError
from tasks.hub.contract import (
    EXTRA,
    FIELDS,
    LINE,
    MISSING,
    NOT_ALLOWED,
    NOT_BOOLEAN,
    NUL_BYTE,
    RECORD,
    REJECT_SCHEMA,
    TOO_FEW_FIELDS,
    TOO_LONG,
    TOO_MANY_FIELDS,
    WRONG_FORMAT,
)
from tasks.hub.entities import CUSTOM_FIELD_PREFIX, CUSTOM_FIELDS_COLUMN, Entity, FieldSpec, TableSpec
from tasks.ui_schema import FormModel

CUSTOM_FIELDS_GIVEN = "_custom_fields_given"
_INTEGER = r"^[+-]?\d+$"
_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,2})?$"  # a bounded exponent: both databases hold it
_DATETIME_FORMATS_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z")
_DATETIME_FORMATS_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")


class CellFormats(FormModel):
    """How cells are written (the domain's defaults: `.` decimals, DD/MM/YYYY, TRUE/FALSE, `||`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Cell formats")

    decimal_separator: str = Field(
        default=".",
        pattern=r"^[.,]$",
        description="Decimal separator of numbers: `.` or `,`.",
        json_schema_extra={"enum": [".", ","]},  # a select in the UI form, not a text box
    )
    date_formats: list[str] = Field(
        default=["%d/%m/%Y", "%Y-%m-%d"],
        min_length=1,
        description="Accepted date formats (strftime codes), tried in order. Default: DD/MM/YYYY, then ISO.",
    )
    true_values: list[str] = Field(
        default=["TRUE"], min_length=1, description="Cell values read as true (case-insensitive)."
    )
    false_values: list[str] = Field(
        default=["FALSE"], min_length=1, description="Cell values read as false (case-insensitive)."
    )
    list_separator: str = Field(
        default="||", min_length=1, description="Separator between the values of a multi-value cell."
    )


@dataclass(frozen=True)
class MappedField:
    """One source column copied into one entity field."""

    column: str
    spec: FieldSpec
    required_here: bool


@dataclass(frozen=True)
class MappingPlan:
    """What a file's header means for its entity: mapped fields, custom fields and tables to load."""

    entity: Entity
    fields: tuple[MappedField, ...]
    custom_columns: tuple[str, ...]
    tables: tuple[TableSpec, ...]
    ignored_columns: tuple[str, ...]

    @property
    def row_table(self) -> TableSpec:
        """Return the most specific table loaded: one of its rows per file record."""
        return self.tables[-1]

    @property
    def mapped_names(self) -> set[str]:
        """Return the names of the mapped fields."""
        return {mapped.spec.name for mapped in self.fields}

    def fields_of(self, table: TableSpec) -> list[str]:
        """Return the mapped fields that `table` holds, in the table's order."""
        mapped = self.mapped_names
        return [spec.name for spec in table.fields if spec.name in mapped]


@dataclass(frozen=True)
class ValidatedBatch:
    """A batch split into loadable rows (canonical text) and rejects (one line per broken rule)."""

    rows: pl.DataFrame
    rejects: pl.DataFrame
    rejected_records: int


def field_problems(entity: Entity, mapping: Mapping[str, str]) -> list[str]:
    """Return what is wrong with a job's explicit mapping for `entity` (empty when it is right)."""
    valid = entity.field_names
    problems = [
        f"column {column!r} is mapped to `{target}`, which {entity.name} does not have; "
        f"valid fields: {', '.join(valid)}"
        for column, target in mapping.items()
        if target not in valid
    ]
    targets = list(mapping.values())
    repeated = sorted({target for target in targets if targets.count(target) > 1})
    if repeated:
        problems.append(f"fields {repeated} are mapped from more than one column; map each field once")
    missing_keys = [key for key in entity.root.key if key not in targets]
    if missing_keys:
        problems.append(f"the key {missing_keys} of {entity.name} is not mapped; map a column onto it")
    return problems


def plan_mapping(
    entity: Entity, mapping: Mapping[str, str] | None, header: list[str], *, name: str
) -> MappingPlan:
    """Match the file's header with the job's mapping (or the domain's standard headers)."""
    explicit = mapping is not None
    wanted = dict(mapping) if mapping is not None else entity.standard_mapping()
    absent = [column for column in wanted if column not in header] if explicit else []
    if absent:
        raise BadFileError(
            f"{name}: mapped column(s) {absent} are not in the file's header {header}. "
            "Fix the `mapping` of the job, or the header of the file."
        )
    columns = {column: target for column, target in wanted.items() if column in header}
    tables = _tables_to_load(entity, set(columns.values()), name)
    row_table = tables[-1]
    fields = tuple(
        MappedField(column, _spec(tables, target), _required_in_row(tables, row_table, target))
        for column, target in columns.items()
        if any(target in table.by_name for table in tables)
    )
    custom = tuple(c for c in header if c.startswith(CUSTOM_FIELD_PREFIX) and entity.custom_fields)
    used = {mapped.column for mapped in fields} | set(custom)
    return MappingPlan(entity, fields, custom, tables, tuple(c for c in header if c not in used))


def near_misses(plan: MappingPlan) -> dict[str, str]:
    """Return, for each ignored column that nearly is a standard header of an unmapped field, that header.

    `Product Name` beside an unmapped `Product Names` is a typo, not a column to drop silently.
    """
    mapped = {mapped.spec.name for mapped in plan.fields}
    unused = tuple(header for header, field in plan.entity.standard_mapping().items() if field not in mapped)
    return dict(_near_misses(unused, plan.ignored_columns))


@functools.lru_cache(maxsize=64)
def _near_misses(unused: tuple[str, ...], ignored: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # Cached: a bulk run's files share their header, and difflib costs more than a small file's load.
    by_folded = {header.casefold(): header for header in unused}
    hints = []
    for column in ignored:
        # A column that is a standard header, left out of an explicit mapping, is left out on purpose.
        if column in unused:
            continue
        near = difflib.get_close_matches(column.casefold(), list(by_folded), n=1, cutoff=0.8)
        if near:
            hints.append((column, by_folded[near[0]]))
    return tuple(hints)


def _tables_to_load(entity: Entity, targets: set[str], name: str) -> tuple[TableSpec, ...]:
    if not set(entity.root.key) <= targets:
        raise BadFileError(
            f"{name}: no column is mapped onto the key {list(entity.root.key)} of {entity.name}. "
            f"Add the column (standard header: {[entity.root.by_name[k].csv_header for k in entity.root.key]})"
            " or map it in the job's `mapping`."
        )
    tables = [entity.root]
    for child in entity.tables[1:]:
        own = {spec.name for spec in child.fields} - set(child.parent_key)
        if set(child.key) <= targets:
            tables.append(child)
        elif own & targets - set(entity.root.by_name):
            raise BadFileError(
                f"{name}: fields of {child.name} {sorted(own & targets)} are mapped but its key "
                f"{list(child.key)} is not. Map the key too, or drop those columns."
            )
    return tuple(tables)


def _spec(tables: tuple[TableSpec, ...], target: str) -> FieldSpec:
    return next(table.by_name[target] for table in tables if target in table.by_name)


def _required_in_row(tables: tuple[TableSpec, ...], row_table: TableSpec, target: str) -> bool:
    # Parent fields may be blank on repeated rows ("later rows carry only the product id"); they are
    # checked on the collapsed parent instead. Keys and the row table's required fields never are.
    if any(target in table.key for table in tables):
        return True
    return target in row_table.by_name and row_table.by_name[target].required


@dataclass(frozen=True)
class _Rules:
    """The polars expressions that validate and convert a batch of one plan, built once per plan."""

    temporal: tuple[tuple[str, str, str], ...]  # (parsed column, source column, date | datetime)
    values: tuple[pl.Expr, ...]
    codes: tuple[pl.Expr, ...]
    custom: tuple[pl.Expr, ...]
    failed: pl.Expr


_RULES_CACHE: dict[tuple[object, ...], _Rules] = {}
_RULES_CACHE_SIZE = 64


def _rules(plan: MappingPlan, formats: CellFormats) -> _Rules:
    # A bulk run's files share their header: building these expressions (hundreds of polars calls)
    # cost more than validating a 100-row file. Keyed by what the expressions depend on.
    key = (
        plan.entity.name,
        tuple((mapped.column, mapped.spec.name, mapped.required_here) for mapped in plan.fields),
        plan.custom_columns,
        formats.model_dump_json(),
    )
    rules = _RULES_CACHE.get(key)
    if rules is None:
        if len(_RULES_CACHE) >= _RULES_CACHE_SIZE:
            _RULES_CACHE.clear()
        rules = _RULES_CACHE[key] = _build_rules(plan, formats)
    return rules


def _build_rules(plan: MappingPlan, formats: CellFormats) -> _Rules:
    temporal = tuple(
        (_parsed_name(i), mapped.column, mapped.spec.type)
        for i, mapped in enumerate(plan.fields)
        if mapped.spec.type in ("date", "datetime")
    )
    checks = [_check(mapped, formats, _parsed_name(i)) for i, mapped in enumerate(plan.fields)]
    values = tuple(
        value.alias(mapped.spec.name) for mapped, (value, _) in zip(plan.fields, checks, strict=True)
    )
    # The custom fields' cells are checked after the mapped ones: code `_code<n>` is column n of `_checked`.
    all_codes = [code for _, code in checks] + [_custom_code(column) for column in plan.custom_columns]
    codes = tuple(code.alias(f"_code{i}") for i, code in enumerate(all_codes))
    custom = (
        (_custom_fields(plan.custom_columns), _custom_fields_given(plan.custom_columns))
        if plan.custom_columns
        else ()
    )
    failed = (
        pl.any_horizontal(pl.col(f"_code{i}").is_not_null() for i in range(len(codes))).fill_null(False)
        if codes
        else pl.lit(False)
    )
    return _Rules(temporal, values, codes, custom, failed)


def validate_batch(batch: pl.DataFrame, plan: MappingPlan, formats: CellFormats) -> ValidatedBatch:
    """Convert a text batch with `plan`; a row with any broken rule is rejected whole."""
    rules = _rules(plan, formats)
    failed = rules.failed
    if FIELDS in batch.columns:  # the reader found records with more or fewer fields than the header
        failed = failed | pl.col(FIELDS).is_not_null()
    # One query: every polars call costs ~0.4 ms however small the batch (a 100-row file paid ~25).
    query = batch.lazy()
    if rules.temporal:
        query = query.with_columns(_parsed_columns(batch, rules, formats))
    frame = query.with_columns(*rules.codes).with_columns(failed.alias("_failed")).collect()
    if frame["_failed"].any():
        good = frame.filter(~pl.col("_failed"))
        bad = frame.filter(pl.col("_failed"))
    else:  # the usual case: no copy of the batch
        good, bad = frame, frame.clear()
    rows = good.select(pl.col(RECORD), pl.col(LINE), *rules.values, *rules.custom)
    header = [c for c in batch.columns if c not in (RECORD, LINE, FIELDS, EXTRA)]
    return ValidatedBatch(rows, _rejects(bad, plan, formats, header), bad.height)


SMALL_BATCH_ROWS = 20_000
"""Up to this many rows, dates are parsed by trying every format at once, inside the batch's query."""


def _parsed_columns(batch: pl.DataFrame, rules: _Rules, formats: CellFormats) -> list[pl.Expr | pl.Series]:
    # Dates and datetimes are parsed once per column, before the checks that read them. A big batch
    # tries format after format on the cells still unparsed (most files use one format: one attempt,
    # not one per accepted format); a small one coalesces every attempt in its query (same result,
    # no eager step of its own).
    if batch.height <= SMALL_BATCH_ROWS:
        return [
            pl.coalesce(_temporal_attempts(kind, formats, pl.col(column).str.strip_chars())).alias(name)
            for name, column, kind in rules.temporal
        ]
    return [
        _parse_temporal(batch[column], kind, formats).alias(name) for name, column, kind in rules.temporal
    ]


def _temporal_attempts(kind: str, formats: CellFormats, text: pl.Expr) -> list[pl.Expr]:
    attempts = _date_attempts(formats) if kind == "date" else _datetime_attempts()
    return [attempt(text) for attempt in attempts]


def _parsed_name(index: int) -> str:
    return f"_parsed{index}"


def _parse_temporal(cells: pl.Series, kind: str, formats: CellFormats) -> pl.Series:
    """Return `cells` parsed as dates or UTC datetimes (null where no accepted format matches).

    Same result as coalescing every format's parse, in order: each format is tried only on the cells
    that no earlier format parsed.
    """
    attempts = _date_attempts(formats) if kind == "date" else _datetime_attempts()
    text = cells.str.strip_chars()
    result: pl.Series | None = None
    for attempt in attempts:
        if result is None:
            result = text.to_frame("t").select(attempt(pl.col("t"))).to_series()
            continue
        pending = (result.is_null() & text.is_not_null()).arg_true()
        if pending.len() == 0:
            break
        found = text.gather(pending).to_frame("t").select(attempt(pl.col("t"))).to_series()
        result = result.scatter(pending, found)
    assert result is not None
    return result


def _date_attempts(formats: CellFormats) -> list[Callable[[pl.Expr], pl.Expr]]:
    return [partial(_to_date, fmt=fmt) for fmt in formats.date_formats]


def _to_date(text: pl.Expr, fmt: str) -> pl.Expr:
    return text.str.to_date(fmt, strict=False)


def _datetime_attempts() -> list[Callable[[pl.Expr], pl.Expr]]:
    # The domain's own example (`2026-11-23T10:15:00Z`) first: a fast parse, and no other format
    # accepts a trailing `Z`, so trying it first changes no result (`%z` needs an offset).
    return [
        _zulu_seconds,
        *(partial(_aware, fmt=fmt) for fmt in _DATETIME_FORMATS_AWARE),
        _zulu,
        *(partial(_naive, fmt=fmt) for fmt in _DATETIME_FORMATS_NAIVE),
    ]


def _zulu_seconds(text: pl.Expr) -> pl.Expr:
    return text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit="us").dt.replace_time_zone(
        "UTC"
    )


def _aware(text: pl.Expr, fmt: str) -> pl.Expr:
    return text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")


def _zulu(text: pl.Expr) -> pl.Expr:
    return _aware(text.str.replace(r"Z$", "+00:00"), _DATETIME_FORMATS_AWARE[0])


def _naive(text: pl.Expr, fmt: str) -> pl.Expr:
    return text.str.to_datetime(fmt, strict=False, time_unit="us").dt.replace_time_zone("UTC")


def _blank(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


def _check(mapped: MappedField, formats: CellFormats, parsed: str) -> tuple[pl.Expr, pl.Expr]:
    """Return (canonical value, error code) expressions for one mapped column."""
    spec, blank = mapped.spec, _blank(mapped.column)
    value, wrong = _convert(mapped.column, spec, formats, parsed)
    rules = [
        (_holds_nul(mapped.column), NUL_BYTE),
        (blank & pl.lit(mapped.required_here), MISSING),
        (~blank & wrong.fill_null(True), _code_for(spec)),
    ]
    if spec.max_length is not None and spec.type == "text":
        rules.append((pl.col(mapped.column).str.len_chars() > spec.max_length, TOO_LONG))
    code = pl.lit(None, dtype=pl.String)
    for condition, name in reversed(rules):  # the first rule broken is the one reported
        code = pl.when(condition).then(pl.lit(name)).otherwise(code)
    return pl.when(blank).then(None).otherwise(value), code


def _custom_code(column: str) -> pl.Expr:
    # A custom field is free text: only a NUL byte, which PostgreSQL's JSON cannot hold, is wrong.
    return pl.when(_holds_nul(column)).then(pl.lit(NUL_BYTE)).otherwise(pl.lit(None, dtype=pl.String))


def _holds_nul(column: str) -> pl.Expr:
    # PostgreSQL text cannot hold NUL: refuse the row here, not the whole file at the database.
    return pl.col(column).str.contains("\x00", literal=True).fill_null(False)


def _code_for(spec: FieldSpec) -> str:
    if spec.enum:
        return NOT_ALLOWED
    return NOT_BOOLEAN if spec.type == "boolean" else WRONG_FORMAT


def _convert(column: str, spec: FieldSpec, formats: CellFormats, parsed: str) -> tuple[pl.Expr, pl.Expr]:
    """Return (canonical text, is-wrong) for a non-blank cell of `spec`'s type.

    Dates and datetimes come already parsed, in the column `parsed` (see `_parse_temporal`).
    """
    raw = pl.col(column)
    text = raw.str.strip_chars()
    match spec.type:
        case "text":
            return _enum(raw, spec) if spec.enum else (raw, pl.lit(False))
        case "integer":
            number = text.str.strip_prefix("+")  # beyond 64 bits, PostgreSQL's BIGINT would fail the file
            return number, ~text.str.contains(_INTEGER) | number.cast(pl.Int64, strict=False).is_null()
        case "decimal":
            number = text.str.replace(",", ".", literal=True) if formats.decimal_separator == "," else text
            return number, ~number.str.contains(_DECIMAL)
        case "boolean":
            upper = text.str.to_uppercase()
            trues = [v.upper() for v in formats.true_values]
            falses = [v.upper() for v in formats.false_values]
            value = pl.when(upper.is_in(trues)).then(pl.lit("1")).when(upper.is_in(falses)).then(pl.lit("0"))
            return value, value.is_null()
        case "date":
            date = pl.col(parsed)
            return date.dt.to_string("%Y-%m-%d"), date.is_null()
        case "datetime":
            stamp = pl.col(parsed)
            return stamp.dt.to_string("%Y-%m-%dT%H:%M:%S%.6f+00:00"), stamp.is_null()
        case "list":
            return _list(raw, spec, formats.list_separator)


def _enum(raw: pl.Expr, spec: FieldSpec) -> tuple[pl.Expr, pl.Expr]:
    canonical = {value.upper(): value for value in spec.enum}
    value = raw.str.strip_chars().str.to_uppercase().replace_strict(canonical, default=None)
    return value, value.is_null()


def _list(raw: pl.Expr, spec: FieldSpec, separator: str) -> tuple[pl.Expr, pl.Expr]:
    items = raw.str.split(separator, literal=True).list.eval(
        pl.element().str.strip_chars().filter(pl.element() != "")
    )
    wrong = pl.lit(False)
    if spec.enum:
        canonical = {value.upper(): value for value in spec.enum}
        items = items.list.eval(pl.element().str.to_uppercase().replace_strict(canonical, default=None))
        wrong = items.list.eval(pl.element().is_null()).list.any()
    # polars encodes a struct as JSON; cut the {"v": ...} wrapper off to keep the array.
    as_json = pl.struct(items.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")
    return pl.when(items.list.len() > 0).then(as_json), wrong


def _custom_fields(columns: tuple[str, ...]) -> pl.Expr:
    # A JSON merge patch: an empty cell becomes null, which deletes that custom field on merge.
    cells = [
        pl.when(_blank(column)).then(None).otherwise(pl.col(column)).alias(column[len(CUSTOM_FIELD_PREFIX) :])
        for column in columns
    ]
    return pl.struct(cells).struct.json_encode().alias(CUSTOM_FIELDS_COLUMN)


def _custom_fields_given(columns: tuple[str, ...]) -> pl.Expr:
    # Repeated parent rows (an order once per line) may leave custom fields blank: "not given".
    return pl.any_horizontal(~_blank(column) for column in columns).alias(CUSTOM_FIELDS_GIVEN)


def _rejects(bad: pl.DataFrame, plan: MappingPlan, formats: CellFormats, header: list[str]) -> pl.DataFrame:
    if bad.height == 0:
        return pl.DataFrame(schema=REJECT_SCHEMA)
    parts = []
    if FIELDS in bad.columns:
        parts.append(_ragged_rejects(bad.filter(pl.col(FIELDS).is_not_null()), header))
        bad = bad.filter(pl.col(FIELDS).is_null())
    messages = [_message(pl.col(f"_code{i}"), mapped.spec, formats) for i, mapped in enumerate(plan.fields)]
    messages += [pl.lit(_custom_nul_message(column)) for column in plan.custom_columns]
    parts += [
        bad.filter(pl.col(f"_code{i}").is_not_null()).select(
            pl.col(RECORD).alias("record"),
            pl.col(LINE).alias("line"),
            pl.lit(column).alias("column"),
            pl.col(column).alias("value"),
            pl.col(f"_code{i}").alias("code"),
            message.alias("message"),
        )
        for i, (column, message) in enumerate(zip(_checked(plan), messages, strict=True))
    ]
    return pl.concat(parts).sort("record").cast(REJECT_SCHEMA)  # type: ignore[arg-type]


def _checked(plan: MappingPlan) -> list[str]:
    # The columns whose cells are checked, in the order of their `_code<n>` columns.
    return [mapped.column for mapped in plan.fields] + list(plan.custom_columns)


def _custom_nul_message(column: str) -> str:
    return f"Custom field `{column}` holds a NUL byte (\\x00), which no text column stores; remove it."


def _ragged_rejects(ragged: pl.DataFrame, header: list[str]) -> pl.DataFrame:
    # One reject per record: a long one names its first extra field, a short one its first missing column.
    width = len(header)
    fields = pl.col(FIELDS)
    missing = pl.lit(None, dtype=pl.String)
    for index in reversed(range(1, width)):
        missing = pl.when(fields == index).then(pl.lit(header[index])).otherwise(missing)
    too_many = fields > width
    return ragged.select(
        pl.col(RECORD).alias("record"),
        pl.col(LINE).alias("line"),
        pl.when(too_many).then(pl.lit(f"(field {width + 1})")).otherwise(missing).alias("column"),
        pl.when(too_many).then(pl.col(EXTRA)).otherwise(None).alias("value"),
        pl.when(too_many).then(pl.lit(TOO_MANY_FIELDS)).otherwise(pl.lit(TOO_FEW_FIELDS)).alias("code"),
        pl.when(too_many)
        .then(
            pl.format(
                "The record has {} fields but the header has {} columns: a delimiter too many, or a "
                "cell holding the delimiter without quotes. Quote that cell or remove the extra field.",
                fields,
                pl.lit(width),
            )
        )
        .otherwise(
            pl.format(
                "The record has {} field(s) but the header has {} columns (from `{}` on, the cells are "
                "missing). Add the missing cells, empty ones too, or check the delimiters.",
                fields,
                pl.lit(width),
                missing,
            )
        )
        .alias("message"),
    )


def _message(code: pl.Expr, spec: FieldSpec, formats: CellFormats) -> pl.Expr:
    messages = {
        MISSING: f"Required field `{spec.name}` is missing or blank.",
        NOT_ALLOWED: f"Unexpected value for `{spec.name}`; it must be one of {', '.join(spec.enum)}.",
        NOT_BOOLEAN: f"`{spec.name}` expects a boolean: "
        f"{'/'.join(formats.true_values)} or {'/'.join(formats.false_values)}.",
        TOO_LONG: f"Size limit exceeded: `{spec.name}` must be at most {spec.max_length} characters.",
        WRONG_FORMAT: f"`{spec.name}` does not respect the format {_format_name(spec, formats)}.",
        NUL_BYTE: f"`{spec.name}` holds a NUL byte (\\x00), which no text column stores; remove it.",
    }
    return code.replace_strict(messages, default="Invalid value.", return_dtype=pl.String)


def _format_name(spec: FieldSpec, formats: CellFormats) -> str:
    match spec.type:
        case "integer":
            return "INTEGER (digits only)"
        case "decimal":
            return f"DECIMAL (with `{formats.decimal_separator}` as decimal separator)"
        case "date":
            return "DATE (" + " or ".join(formats.date_formats) + ")"
        case "datetime":
            return "DATETIME (ISO 8601, e.g. 2026-11-23T10:15:00Z)"
        case _:
            return spec.type.upper()
