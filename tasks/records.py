"""Turn JSON records into the text batches the CSV load path validates and loads.

The job's mapping (JSONPath -> entity field) is compiled once. Each record becomes one row whose
columns are named by the entity field, so ``plan_mapping(entity, {field: field})`` and
``validate_batch`` apply unchanged. Cells are text, as in a CSV file: numbers as written, booleans
`TRUE`/`FALSE`, `[*]` matches joined with `||`, objects and lists as JSON. `_record` is the record's
1-based position in the response; `_line` repeats it (a JSON response has no lines), so rejects
point at the record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import polars as pl

from tasks.csv import LINE, RECORD
from tasks.entities import Entity
from tasks.jsonpath import MULTI_SEPARATOR, CompiledPath, JsonValue, compile_jsonpath
from tasks.mapping import MappingPlan, plan_mapping

BATCH_RECORDS = 50_000


def cell_text(value: JsonValue) -> str | None:
    """Return a JSON value as a CSV-like cell: `TRUE`/`FALSE`, numbers as text, objects as JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class RecordMapper:
    """The job's mapping compiled once; remembers which paths matched nothing in a page."""

    mapping: Mapping[str, str]
    warned: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._paths: list[tuple[str, CompiledPath]] = [
            (target, compile_jsonpath(path)) for path, target in self.mapping.items()
        ]

    def plan(self, entity: Entity, *, name: str) -> MappingPlan:
        """Return the load plan: each field is its own column."""
        fields = list(self.mapping.values())
        return plan_mapping(entity, {f: f for f in fields}, fields, name=name)

    def frame(self, records: list[JsonValue], first_record: int = 1, *, page: str = "") -> pl.DataFrame:
        """Return the records as a text frame with `_record`, `_line` and one column per field."""
        columns: dict[str, list[str | None]] = {target: [] for target, _ in self._paths}
        matched = dict.fromkeys(columns, False)
        for record in records:
            for target, compiled in self._paths:
                found = compiled.find(record)
                if found:
                    matched[target] = True
                columns[target].append(_cell(compiled, found))
        if records:
            self._warn_unmatched(matched, page)
        numbers = pl.int_range(first_record, first_record + len(records), dtype=pl.Int64, eager=True)
        data = {RECORD: numbers, LINE: numbers.alias(LINE)}
        frame = pl.DataFrame(data)
        return frame.with_columns(
            pl.Series(name, values, dtype=pl.String) for name, values in columns.items()
        )

    def batches(
        self, records: list[JsonValue], *, batch_records: int = BATCH_RECORDS, page: str = ""
    ) -> Iterator[pl.DataFrame]:
        """Yield the records as frames of at most `batch_records` rows."""
        for start in range(0, len(records), batch_records):
            yield self.frame(records[start : start + batch_records], start + 1, page=page)

    def _warn_unmatched(self, matched: dict[str, bool], page: str) -> None:
        for path, target in self.mapping.items():
            if not matched[target] and path not in self.warned:
                self.warned.add(path)
                where = f" in {page}" if page else ""
                self.warnings.append(
                    f"Mapping path `{path}` (-> {target}) matched nothing in any record{where}: check "
                    "the path (field names are case-sensitive)."
                )


def _cell(compiled: CompiledPath, found: list[JsonValue]) -> str | None:
    if not compiled.multi:
        return cell_text(found[0]) if found else None
    texts = [text for text in (cell_text(value) for value in found) if text is not None]
    return MULTI_SEPARATOR.join(texts) if texts else None
