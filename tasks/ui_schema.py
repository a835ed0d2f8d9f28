"""JSON-schema tweaks for the Prefect UI's run form, applied with `Field(json_schema_extra=...)`.

Only the schema the form is built from changes; pydantic's validation of the job stays the same.
Seen on prefect 3.8.8's v2 form (docs/ui-form.md): an optional dict (`dict[str, str] | None`, an
`anyOf` of an object and null) is shown as two tabs, `dict` and `None`, and no editor at all: the
mapping a deployment holds is invisible and cannot be edited. A plain object schema gets the form's
JSON editor, filled with the deployment's value.
"""

from __future__ import annotations

from pydantic.config import JsonDict


def json_editor(schema: JsonDict) -> None:
    """Keep only the object member of an optional dict's `anyOf`, so the form shows a JSON editor."""
    members = schema.pop("anyOf", None)
    if not isinstance(members, list):
        return
    for member in members:
        if isinstance(member, dict) and member.get("type") == "object":
            schema.update(member)
            return
    schema["anyOf"] = members  # not an optional dict: leave it as it was
