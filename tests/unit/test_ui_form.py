"""The job models' JSON schemas are what the Prefect UI's run form needs.

The schema is the one Prefect itself stores for the deployment (`parameter_schema(flow)`, what
`prefect deploy` sends) and the UI builds the "Custom run" form from. Checked, through every
definition: a description on every field (it is the form's help text), a human title on every variant
of a union (the form's tab label), enums for closed sets (a select, not a free text box), and nothing
the form cannot render: tuples (`prefixItems`), non-string dict keys (`propertyNames`), unions of
unions, unions nested too deep, and the `anyOf` of a date string with a string enum that crashes the
v2 form (PrefectHQ/prefect#22753). Screenshots of the form: docs/ui-form.md.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema

FLOWS = [
    ("flows.import_csv_from_ftp", "import_csv_from_ftp", "CsvImportJob"),
    ("flows.import_json_from_api", "import_json_from_api", "ApiImportJob"),
    ("flows.run_shell_job", "run_shell_job", "ShellJob"),  # the shell job, when its module is there
]
UNION_KEYS = ("anyOf", "oneOf")
MAX_UNION_DEPTH = 3  # a union inside a variant inside a variant...: tabs within tabs within tabs


def _flows() -> Iterator[Any]:
    for module_name, flow_name, model_name in FLOWS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        yield pytest.param(getattr(module, flow_name), model_name, id=model_name)


FLOW_PARAMS = list(_flows())


def _schema(flow: Any) -> dict[str, Any]:
    schema: dict[str, Any] = parameter_schema(flow).model_dump(mode="json")
    return schema


def _objects(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (where, object schema) for every definition and every inline object with properties."""

    def walk(where: str, node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                yield where, node
            for key, value in node.items():
                if key != "definitions":
                    yield from walk(f"{where}.{key}", value)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(f"{where}[{index}]", value)

    yield from walk("(root)", {k: v for k, v in schema.items() if k != "definitions"})
    for name, definition in schema.get("definitions", {}).items():
        yield from walk(name, definition)


def _nodes(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _nodes(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nodes(value, f"{where}[{index}]")


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    resolved: dict[str, Any] = schema["definitions"][ref.rsplit("/", 1)[-1]]
    return resolved


def test_the_shell_job_is_checked_when_its_flow_exists() -> None:
    assert [p.id for p in FLOW_PARAMS][:2] == ["CsvImportJob", "ApiImportJob"]


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_the_flow_takes_one_job_parameter_of_its_model(flow: Any, model_name: str) -> None:
    schema = _schema(flow)
    assert list(schema["properties"]) == ["job"]
    assert schema["required"] == ["job"]
    assert schema["properties"]["job"]["$ref"] == f"#/definitions/{model_name}"
    assert all(
        node["$ref"].rsplit("/", 1)[-1] in schema["definitions"]
        for _, node in _nodes(schema)
        if "$ref" in node
    )


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_every_field_and_every_model_has_help_text(flow: Any, model_name: str) -> None:
    schema = _schema(flow)
    missing = [
        f"{where}.{name}"
        for where, obj in _objects(schema)
        if where != "(root)"  # the flow's own `job` parameter: its model's description shows instead
        for name, field in obj["properties"].items()
        if not str(field.get("description", "")).strip()
    ]
    assert missing == []
    undocumented = [
        name for name, d in schema["definitions"].items() if not str(d.get("description", "")).strip()
    ]
    assert undocumented == []


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_every_model_numbers_its_fields_in_declared_order(flow: Any, model_name: str) -> None:
    # A Prefect server on PostgreSQL stores the schema as JSONB (keys ordered by length): the form
    # keeps the declared order only through `position` (seen in a real browser: `CSV format` first).
    schema = _schema(flow)
    for name, definition in schema["definitions"].items():
        properties = definition.get("properties", {})
        assert [field.get("position") for field in properties.values()] == list(range(len(properties))), name


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_every_variant_of_a_union_has_a_human_title(flow: Any, model_name: str) -> None:
    # The v2 form shows a union as tabs labelled by each variant's title: a class name reads badly.
    schema = _schema(flow)
    bad = []
    for where, node in _nodes(schema):
        for key in UNION_KEYS:
            refs = [m["$ref"].rsplit("/", 1)[-1] for m in node.get(key, []) if "$ref" in m]
            if len(refs) < 2:
                continue
            bad += [
                f"{where}: variant {name} titled {schema['definitions'][name].get('title')!r}"
                for name in refs
                if schema["definitions"][name].get("title", name) == name
            ]
    assert bad == []


# A free dict (an object without properties) that is one member of a union: the v2 form (3.8.8) shows
# the union's tabs and no editor, so the value is invisible (docs/ui-form.md). Optional dicts use
# `tasks.ui_schema.json_editor` instead. The one left: a call's JSON body, an object *or* a list; the
# fix (an object-only schema) would make the server refuse list bodies, so it waits for a decision.
KNOWN_INVISIBLE = {"ApiImportJob": [".definitions.ApiCall.properties.body"]}


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_no_free_dict_hides_inside_a_union(flow: Any, model_name: str) -> None:
    schema = _schema(flow)
    hidden = [
        where
        for where, node in _nodes(schema)
        for key in UNION_KEYS
        if any(m.get("type") == "object" and "properties" not in m for m in node.get(key, []))
    ]
    assert hidden == KNOWN_INVISIBLE.get(model_name, [])


CLOSED_SETS = {
    "CsvImportJob": ["entity", "source.kind", "csv.delimiter", "csv.encoding", "formats.decimal_separator"],
    "ApiImportJob": [
        "entity",
        "calls.method",
        "calls.pattern.kind",
        "calls.pattern.format.kind",
        "formats.decimal_separator",
    ],
}


def _fields_at(schema: dict[str, Any], node: dict[str, Any], path: list[str]) -> Iterator[dict[str, Any]]:
    node = _resolve(schema, node)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        yield from _fields_at(schema, node["items"], path)
        return
    for key in UNION_KEYS:
        for member in node.get(key, []):
            yield from _fields_at(schema, member, path)
    if not path:
        yield node
        return
    field = node.get("properties", {}).get(path[0])
    if field is not None:
        yield from _fields_at(schema, field, path[1:])


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_closed_sets_are_enums(flow: Any, model_name: str) -> None:
    # A select lists the choices; a text box with a pattern makes the operator guess them.
    schema = _schema(flow)
    job = schema["definitions"][model_name]
    for path in CLOSED_SETS.get(model_name, []):
        found = list(_fields_at(schema, job, path.split(".")))
        assert found, f"{model_name}.{path} is not in the schema"
        for field in found:
            choices = field.get("enum") or ([field["const"]] if "const" in field else None)
            assert choices, f"{model_name}.{path} is not an enum: {field}"
    # No closed set hides in a pattern such as `^[.,]$` or `^(a|b)$`.
    hidden = [
        where
        for where, node in _nodes(schema)
        if "enum" not in node
        and re.fullmatch(r"\^(\[[^\]\\]+\]|\((\w+\|)+\w+\))\$", str(node.get("pattern", "")))
    ]
    assert hidden == []


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_nothing_the_form_cannot_render(flow: Any, model_name: str) -> None:
    schema = _schema(flow)
    for where, node in _nodes(schema):
        assert "prefixItems" not in node, f"{where}: a tuple; use a list or a model"
        assert not isinstance(node.get("items"), list), f"{where}: a tuple; use a list or a model"
        assert "propertyNames" not in node, f"{where}: dict keys that are not plain strings"
        assert "patternProperties" not in node, f"{where}: dict keys constrained by a pattern"
        assert "allOf" not in node, f"{where}: allOf is shown as raw JSON"
        for key in UNION_KEYS:
            members = [_resolve(schema, m) for m in node.get(key, [])]
            assert not any(k in m for m in members for k in UNION_KEYS), f"{where}: a union of unions"
            dates = [m for m in members if m.get("format") in ("date", "date-time")]
            enums = [m for m in members if "enum" in m]
            assert not (dates and enums), f"{where}: a date and an enum in one anyOf crash the v2 form"


def _union_depth(schema: dict[str, Any], node: Any, seen: frozenset[str] = frozenset()) -> int:
    if isinstance(node, list):
        return max((_union_depth(schema, item, seen) for item in node), default=0)
    if not isinstance(node, dict):
        return 0
    ref = node.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return 0 if name in seen else _union_depth(schema, schema["definitions"][name], seen | {name})
    here = (
        1 if any(len([m for m in node.get(k, []) if m.get("type") != "null"]) > 1 for k in UNION_KEYS) else 0
    )
    return here + max((_union_depth(schema, value, seen) for value in node.values()), default=0)


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_unions_are_not_nested_too_deep(flow: Any, model_name: str) -> None:
    schema = _schema(flow)
    assert _union_depth(schema, schema["properties"]) <= MAX_UNION_DEPTH


# The mappings edited in the form's JSON editor (`tasks.ui_schema.json_editor`): the schema Prefect stores.
JSON_EDITORS = {
    "CsvImportJob": [("CsvImportJob", "mapping")],
    "ApiImportJob": [("ApiImportJob", "mapping"), ("CsvFile", "mapping")],
}


def _server_errors(schema: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    # What the server runs on a new run's parameters (create_flow_run_from_deployment): Prefect's
    # `validate`, which first preprocesses the stored schema.
    from prefect.utilities.schema_tools.validation import validate

    return [error.message for error in validate(parameters, schema)]


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_mappings_are_json_editors_the_server_lets_be_empty(flow: Any, model_name: str) -> None:
    schema = _schema(flow)
    for definition, name in JSON_EDITORS.get(model_name, []):
        field = schema["definitions"][definition]["properties"][name]
        # A plain object is a JSON editor in the v2 form; with a `default: null` the form sent null.
        assert (field["type"], "anyOf" in field, "default" in field) == ("object", False, False)
        one = {"type": "object", "properties": {name: field}, "definitions": schema["definitions"]}
        empties: list[dict[str, str] | None] = [None, {}]  # null: left as shown; {}: emptied
        for empty in empties:
            assert _server_errors(one, {name: empty}) == [], (definition, name, empty)
        assert _server_errors(one, {name: {"Header": "field"}}) == []
        assert _server_errors(one, {name: {"Header": 1}}) != []  # still an object of strings


@pytest.mark.parametrize(("flow", "model_name"), FLOW_PARAMS)
def test_every_default_the_form_fills_in_passes_the_server(flow: Any, model_name: str) -> None:
    # The form fills a field the deployment leaves out with its schema default and sends it: a
    # default the server refuses (the mapping's `null` once was) makes the form impossible to submit.
    schema = _schema(flow)
    refused = []
    for definition, node in schema["definitions"].items():
        for name, field in node.get("properties", {}).items():
            if "default" not in field:
                continue
            one = {"type": "object", "properties": {name: field}, "definitions": schema["definitions"]}
            refused += [f"{definition}.{name}: {e}" for e in _server_errors(one, {name: field["default"]})]
    assert refused == []
