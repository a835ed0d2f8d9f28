"""Turn JSON records into the text batches the CSV load path validates and loads.

The job's mapping (JSONPath -> entity field) is compiled once. Each record becomes one row whose
columns are named by the entity field, so ``plan_mapping(entity, {field: field})`` and
``validate_batch`` apply unchanged. Cells are text, as in a CSV file: numbers as written, booleans
`TRUE`/`FALSE`, `[*]` matches joined with `||`, objects and lists as JSON. `_record` is the record's
1-based position in the response; `_line` repeats it (a JSON response has no lines), so rejects
point at the record.

A nested list can be loaded as child records (orders and their `orderLines`): each item of the list
becomes one row carrying its parent's cells too, exactly the "one row per order line, parent repeated"
shape the CSV layouts use, so the load's parent/child tables apply unchanged. Then `_record` counts
rows and `_line` is the parent record's position. A record with an empty (or no) list gives no row:
the child table's key would be blank and the row rejected; such records are counted in one warning.

Plain dotted paths (`$.a.b`) are read with `dict.get` column by column; other paths are compiled
once (``tasks.api.jsonpath``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice

import polars as pl
from pydantic import ConfigDict, Field

from tasks.api.jsonpath import (
    MULTI_SEPARATOR,
    WILDCARD,
    CompiledPath,
    JsonPath,
    JsonValue,
    compile_jsonpath,
    json_text,
)
from tasks.hub.contract import LINE, RECORD
from tasks.hub.entities import Entity
from tasks.hub.mapping import MappingPlan, plan_mapping
from tasks.ui_schema import FormModel

# Parsed JSON records cost several KB each as Python objects (a 1 KB record with nested lists is
# ~5-8 KB), so a batch of 50,000 held ~400 MB: 10,000 keeps a run's memory near the CSV path's.
BATCH_RECORDS = 10_000


def cell_text(value: JsonValue) -> str | None:
    """Return a JSON value as a CSV-like cell: `TRUE`/`FALSE`, numbers as text, objects as JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return json_text(value)


class ChildRecords(FormModel):
    """A nested list of each record loaded as child rows, e.g. an order's `orderLines`."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Child records")

    path: JsonPath = Field(description="JSONPath of the nested list in each record, e.g. `$.orderLines`.")
    mapping: dict[JsonPath, str] = Field(
        min_length=1,
        description="JSONPath in one item of the list -> field of the entity's child table, e.g. "
        "`$.lineId: orderLineExternalId`. The parent's key comes from the job's `mapping`.",
    )


_MISSING = object()  # a path that matched nothing (unlike a JSON null, which matched)


def _dotted_getter(keys: tuple[str, ...]) -> Callable[[JsonValue], object]:
    if len(keys) == 1:
        only = keys[0]
        return lambda record: record.get(only, _MISSING) if type(record) is dict else _MISSING

    def get(record: JsonValue) -> object:
        value = record
        for key in keys:
            if type(value) is not dict:
                return _MISSING
            value = value.get(key, _MISSING)
            if value is _MISSING:
                break
        return value

    return get


def _steps_getter(steps: tuple[object, ...]) -> Callable[[JsonValue], object]:
    """Return a lookup of keys and list indexes (no wildcard) that gives `_MISSING` when absent."""
    if all(isinstance(step, str) for step in steps):
        return _dotted_getter(tuple(str(step) for step in steps))

    def get(record: JsonValue) -> object:
        value = record
        for step in steps:
            if type(step) is int:
                if type(value) is not list or not -len(value) <= step < len(value):
                    return _MISSING
                value = value[step]
            elif type(value) is dict:
                value = value.get(step, _MISSING)
                if value is _MISSING:
                    return value
            else:
                return _MISSING
        return value

    return get


def _fast_reader(compiled: CompiledPath) -> Callable[[JsonValue], object] | None:
    """Return a direct reader for a plain path with at most one `[*]`, or None for the generic finder.

    A single-value path reads its value (or `_MISSING`); a `[*]` path reads its values already
    joined with `||` (None when all are null, `_MISSING` when it matched nothing).
    """
    steps = compiled.steps
    if steps is None:
        return None
    wildcards = [i for i, step in enumerate(steps) if step is WILDCARD]
    if not wildcards:
        return _steps_getter(steps)
    if len(wildcards) > 1:
        return None
    head, tail = _steps_getter(steps[: wildcards[0]]), steps[wildcards[0] + 1 :]
    item_get = _steps_getter(tail) if tail else None

    def read(record: JsonValue) -> object:
        container = head(record)
        if type(container) is list:
            items = container
        elif type(container) is dict:
            items = list(container.values())
        else:
            return _MISSING
        if item_get is not None:
            items = [v for v in map(item_get, items) if v is not _MISSING]
        if not items:
            return _MISSING
        texts = [text for text in map(cell_text, items) if text is not None]
        return MULTI_SEPARATOR.join(texts) if texts else None

    return read


def _walk_column(records: list[JsonValue], steps: tuple[object, ...]) -> list[object]:
    """Return one value (or `_MISSING`) per record, a step at a time over the whole column.

    One list comprehension per step, with no function call per record, is the fastest way CPython
    has to read `$.a.b[0].c` out of many records.
    """
    values: list[object] = list(records)
    for step in steps:
        if isinstance(step, int):
            values = [
                value[step] if type(value) is list and -len(value) <= step < len(value) else _MISSING
                for value in values
            ]
        else:
            values = [value.get(step, _MISSING) if type(value) is dict else _MISSING for value in values]
    return values


@dataclass(frozen=True)
class _Column:
    path: str
    target: str
    compiled: CompiledPath

    @cached_property
    def reader(self) -> Callable[[JsonValue], object] | None:
        """Return the direct reader of a path with one `[*]` (None: a column walk or jsonpath-ng)."""
        steps = self.compiled.steps
        return _fast_reader(self.compiled) if steps is not None and WILDCARD in steps else None

    def cells(self, records: list[JsonValue]) -> tuple[list[str | None], bool]:
        """Return the column's cells and whether the path matched in any record."""
        steps = self.compiled.steps
        if steps is not None and WILDCARD not in steps:
            values = _walk_column(records, steps)
        elif self.reader is not None:
            values = [self.reader(record) for record in records]
        else:  # filters, slices, several wildcards: jsonpath-ng
            found = [self.compiled.find(record) for record in records]
            return [_cell(self.compiled, matches) for matches in found], any(found)
        cells = [
            value if type(value) is str else None if value is _MISSING or value is None else cell_text(value)
            for value in values
        ]
        return cells, any(value is not _MISSING for value in values)


@dataclass
class RecordMapper:
    """The job's mapping compiled once; remembers which paths matched nothing in a page.

    `child_path` and `child_mapping` (paths relative to one item of that list) load a nested list
    as child rows.
    """

    mapping: Mapping[str, str]
    child_path: str | None = None
    child_mapping: Mapping[str, str] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    childless: list[int] = field(default_factory=list)  # records without child items (first few)
    childless_count: int = 0

    def __post_init__(self) -> None:
        self._columns = [
            _Column(path, target, compile_jsonpath(path)) for path, target in self.mapping.items()
        ]
        self._child_columns = [
            _Column(path, target, compile_jsonpath(path)) for path, target in self.child_mapping.items()
        ]
        self._children = compile_jsonpath(self.child_path) if self.child_path else None

    @property
    def targets(self) -> list[str]:
        """Return the mapped fields, parent fields first."""
        return [c.target for c in self._columns] + [c.target for c in self._child_columns]

    def plan(self, entity: Entity, *, name: str) -> MappingPlan:
        """Return the load plan: each field is its own column."""
        fields = self.targets
        return plan_mapping(entity, {f: f for f in fields}, fields, name=name)

    def frame(
        self, records: list[JsonValue], first_record: int = 1, *, page: str = "", first_row: int | None = None
    ) -> pl.DataFrame:
        """Return the records as a text frame with `_record`, `_line` and one column per field."""
        columns: dict[str, list[str | None]] = {}
        unmatched: list[_Column] = []
        for column in self._columns:
            columns[column.target], matched = column.cells(records)
            if not matched:
                unmatched.append(column)
        lines = pl.int_range(first_record, first_record + len(records), dtype=pl.Int64, eager=True)
        if self._children is not None:
            lines, columns, unmatched_children = self._expand(records, lines, columns)
            unmatched += unmatched_children
        if records:
            self._warn_unmatched(unmatched, page)
        start = first_record if first_row is None else first_row
        numbers = lines if self._children is None else pl.int_range(start, start + len(lines), eager=True)
        frame = pl.DataFrame({RECORD: numbers.cast(pl.Int64), LINE: lines.alias(LINE)})
        return frame.with_columns(
            pl.Series(name, values, dtype=pl.String) for name, values in columns.items()
        )

    def _expand(
        self, records: list[JsonValue], lines: pl.Series, columns: dict[str, list[str | None]]
    ) -> tuple[pl.Series, dict[str, list[str | None]], list[_Column]]:
        assert self._children is not None
        parents: list[int] = []
        items: list[JsonValue] = []
        for index, record in enumerate(records):
            found = self._children.find(record)
            children = found[0] if len(found) == 1 and isinstance(found[0], list) else found
            if not children:
                self.childless_count += 1
                if len(self.childless) < 5:
                    self.childless.append(int(lines[index]))
            for child in children:
                parents.append(index)
                items.append(child)
        expanded = {name: [cells[i] for i in parents] for name, cells in columns.items()}
        unmatched: list[_Column] = []
        for column in self._child_columns:
            expanded[column.target], matched = column.cells(items)
            if not matched and items:
                unmatched.append(column)
        return lines.gather(parents), expanded, unmatched

    def batches(
        self, records: Iterable[JsonValue], *, batch_records: int = BATCH_RECORDS, page: str = ""
    ) -> Iterator[pl.DataFrame]:
        """Yield the records (a list or a stream) as frames of at most `batch_records` records."""
        stream = iter(records)
        first, row = 1, 1
        while batch := list(islice(stream, batch_records)):
            frame = self.frame(batch, first, page=page, first_row=row)
            first += len(batch)
            row += frame.height
            yield frame
        if self.childless_count:
            shown = ", ".join(str(n) for n in self.childless)
            more = ", ..." if self.childless_count > len(self.childless) else ""
            self.warnings.append(
                f"{self.childless_count:,} record(s) had no items in `{self.child_path}` and were not loaded "
                f"(records {shown}{more}{f' of {page}' if page else ''}): each row needs its child key."
            )

    def _warn_unmatched(self, unmatched: list[_Column], page: str) -> None:
        for column in unmatched:
            if column.path not in self.warned:
                self.warned.add(column.path)
                where = f" in {page}" if page else ""
                self.warnings.append(
                    f"Mapping path `{column.path}` (-> {column.target}) matched nothing in any record"
                    f"{where}: check the path (field names are case-sensitive)."
                )


def _cell(compiled: CompiledPath, found: list[JsonValue]) -> str | None:
    if not compiled.multi:
        return cell_text(found[0]) if found else None
    texts = [text for text in (cell_text(value) for value in found) if text is not None]
    return MULTI_SEPARATOR.join(texts) if texts else None


def record_mapper(mapping: Mapping[str, str], children: ChildRecords | None = None) -> RecordMapper:
    """Return the compiled mapping of a job's records (and of their child records)."""
    if children is None:
        return RecordMapper(mapping)
    return RecordMapper(mapping, child_path=children.path, child_mapping=children.mapping)
