"""The optional mappings of the job models as the Prefect UI's run form and the server need them.

Seen on prefect 3.8.8 (docs/ui-form.md):

- the v2 form shows an optional dict (`dict[str, str] | None`, an `anyOf` of an object and null) as
  two tabs, `dict` and `None`, and no editor: the mapping a deployment holds is invisible. A plain
  object schema gets the form's JSON editor, filled with the deployment's value;
- the form fills a field the deployment leaves out with its schema `default`, and sent the
  `default: null` of an empty mapping as `null`, which a plain object schema refuses
  (`None is not of type 'object'`): the run could not be submitted. Without a `default`, the server
  reads the property as optional *and nullable*: before it validates a run's parameters it rewrites
  each optional property that has a `type` and no `default` into `anyOf: [{type}, {type: null}]`
  (`prefect.utilities.schema_tools.validation.preprocess_schema`), while the form, which reads the
  schema as stored, still sees `type: object`. `tests/unit/test_ui_form.py` pins both sides.

`json_editor` shapes the schema (`Field(json_schema_extra=json_editor)`); `OptionalMapping` reads an
empty mapping (`{}`, what the editor sends once emptied) as no mapping, so null and `{}` both mean
"the entity's standard headers". Pydantic's validation is otherwise unchanged.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.config import JsonDict

__all__ = [
    "FormModel",
    "OptionalMapping",
    "empty_as_none",
    "form_order",
    "json_editor",
]

K = TypeVar("K")
V = TypeVar("V")


def json_editor(schema: JsonDict) -> None:
    """Make an optional dict's schema a plain object with no default, so the form shows a JSON editor."""
    members = schema.pop("anyOf", None)
    if not isinstance(members, list):
        return
    for member in members:
        if isinstance(member, dict) and member.get("type") == "object":
            schema.update(member)
            if schema.get("default", ...) is None:
                del schema["default"]  # the form would send it as `null`; no default = nullable (above)
            return
    schema["anyOf"] = members  # not an optional dict: leave it as it was


def empty_as_none(mapping: dict[K, V] | None) -> dict[K, V] | None:
    """Return None for an empty mapping: `{}` and null both mean "no mapping given"."""
    return mapping or None


OptionalMapping = Annotated[dict[K, V] | None, AfterValidator(empty_as_none)]
"""An optional mapping edited in the form's JSON editor: `{}` and null are both read as None."""


def form_order(schema: JsonDict) -> None:
    """Shape a model's schema for the run form: fields in their declared order, unions switchable.

    A Prefect server on PostgreSQL stores the parameter schema as JSONB, which orders an object's keys
    by length: without positions the form showed `CSV format` before `Name` (seen in both UIs);
    Prefect numbers only the flow's own parameters this way. A tagged union (a call's `pattern`, a
    download's `format`) is pydantic's `oneOf` with a `discriminator`: the v2 form shows its options
    as tabs but a click on another tab only empties the value and leaves the tab as it was, so an
    operator could never switch a call to another pattern. As an `anyOf` the tabs switch (the form
    picks the tab whose fields the value shares most); the server still validates it, each option
    having its own `kind`, and pydantic reads the value by its `kind` as before.
    """
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for position, field_schema in enumerate(properties.values()):
            if isinstance(field_schema, dict):
                field_schema["position"] = position
                _switchable_union(field_schema)


def _switchable_union(field_schema: JsonDict) -> None:
    options = field_schema.get("oneOf")
    if isinstance(options, list) and "discriminator" in field_schema:
        del field_schema["discriminator"], field_schema["oneOf"]
        field_schema["anyOf"] = options


class FormModel(BaseModel):
    """A model shown in the Prefect run form: its fields keep their declared order on every server."""

    model_config = ConfigDict(json_schema_extra=form_order)
