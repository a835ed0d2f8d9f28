"""What every job model (the one parameter of each flow) shares: no text that `prefect deploy` rewrites.

`prefect deploy` runs Prefect's templating (`prefect.utilities.templating`) over each deployment of
`prefect.yaml`, parameters included: every `{{ name }}` is replaced by a deploy step's output, a
`{{ $VAR }}` by the deploying machine's environment, `{{ prefect.variables.x }}` and
`{{ prefect.blocks.... }}` by the server's values, and a whole-value placeholder with no value drops
its key. The templating has no escape, so a job holding `{{invocationId}}` reaches the server changed
(`path_variables: {}`) and every run fails. Captured variables of API calls are therefore written
`${name}`, which that pattern never matches, and `JobModel` refuses any string (dict keys included)
the pattern matches, naming where it is and what to write instead.

The pattern is Prefect's own (`find_placeholders`), not a copy, so the two cannot drift apart;
`python -m deployments check` runs the same `placeholder_hits` over every job of `prefect.yaml`.

A job also says which saved blocks it names (`JobModel.blocks`), so that `deployments check` can tell
which of them the server lacks before a run fails on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prefect.blocks.core import Block
from prefect.utilities.templating import Placeholder, PlaceholderType, find_placeholders
from prefect_shell import ShellOperation
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from blocks.database import DatabaseConnection
from tasks.shell import ShellStep
from tasks.ui_schema import FormModel

__all__ = [
    "PLACEHOLDER_ERROR",
    "BlockRef",
    "JobModel",
    "PlaceholderHit",
    "import_blocks",
    "placeholder_hits",
]

PLACEHOLDER_ERROR = "prefect_placeholder"
"""The pydantic error type of a refused placeholder (`deployments check` reports those rows itself)."""

_REPLACED_BY = {
    PlaceholderType.ENV_VAR: "the deploying machine's environment variable",
    PlaceholderType.VARIABLE: "the Prefect variable",
    PlaceholderType.BLOCK_DOCUMENT: "the Prefect block's value",
}


@dataclass(frozen=True)
class PlaceholderHit:
    """One string of a job that Prefect's placeholder pattern matches: where it is and what it holds."""

    where: str
    text: str
    placeholders: tuple[Placeholder, ...]
    is_key: bool = False

    def message(self) -> str:
        """Return the error: where, what `prefect deploy` would do with it, and what to write instead."""
        where = self.where or "(job)"
        if self.is_key:  # Prefect templates values today, not keys; the pattern is reserved all the same
            return f"{where}: the key `{self.text}` is a `prefect deploy` placeholder; {self.fix()}"
        return f"{where}: `{self.text}` would be replaced by `prefect deploy`'s templating; {self.fix()}"

    def fix(self) -> str:
        """Return what to write instead: `${name}` for a `{{name}}`, the value itself for the others."""
        standard = [p for p in self.placeholders if p.type is PlaceholderType.STANDARD]
        others = [p for p in self.placeholders if p.type is not PlaceholderType.STANDARD]
        fixes = []
        if standard:
            fixed = self.text
            for placeholder in standard:
                fixed = fixed.replace(placeholder.full_match, "${" + placeholder.name + "}")
            fixes.append(f"write `{fixed}`")
        fixes += [
            f"write the value itself instead of `{p.full_match}` ({_REPLACED_BY[p.type]})" for p in others
        ]
        return " and ".join(fixes)


def placeholder_hits(value: Any, where: str = "") -> list[PlaceholderHit]:
    """Return every string of `value` (nested dicts, lists, their keys) Prefect's templating would match.

    `where` is the location of `value`; a hit's location extends it, e.g. `calls[1].path_variables.id`.
    """
    return list(_hits(value, where))


def _hits(value: Any, where: str) -> Iterator[PlaceholderHit]:
    if isinstance(value, BaseModel):  # an already built part of a job: check what it holds
        value = value.model_dump(mode="json")
    if isinstance(value, str):
        found = _placeholders(value)
        if found:
            yield PlaceholderHit(where, value, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            found = _placeholders(key) if isinstance(key, str) else ()
            if found:
                yield PlaceholderHit(where, str(key), found, is_key=True)
            yield from _hits(item, inner)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _hits(item, f"{where}[{index}]")


def _placeholders(text: str) -> tuple[Placeholder, ...]:
    return tuple(sorted(find_placeholders(text), key=lambda p: (text.find(p.full_match), p.full_match)))


@dataclass(frozen=True)
class BlockRef:
    """A saved block a job names: the job's field, the block's type and the block's name."""

    field: str
    block_type: type[Block]
    name: str

    def label(self) -> str:
        """Return e.g. `'erp-ftp' (FTP Connection)`."""
        return f"{self.name!r} ({self.block_type.get_block_type_name()})"


def import_blocks(target: str | None, before: ShellStep | None, after: ShellStep | None) -> list[BlockRef]:
    """Return the blocks an import job names besides its connection: target database and shell steps."""
    refs = [BlockRef("target", DatabaseConnection, target)] if target else []  # empty: embedded SQLite
    steps = (("before_import", before), ("after_import", after))
    return refs + [BlockRef(f"{field}.block", ShellOperation, step.block) for field, step in steps if step]


class JobModel(FormModel):
    """Base of every job model: refuses, before anything else is validated, what `prefect deploy` rewrites."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def blocks(self) -> list[BlockRef]:
        """Return the saved blocks the job names (each job model says which)."""
        raise NotImplementedError(f"{type(self).__name__} does not say which blocks it names")

    @model_validator(mode="before")
    @classmethod
    def _refuse_prefect_placeholders(cls, data: Any) -> Any:
        hits = placeholder_hits(data)
        if hits:
            raise PydanticCustomError(PLACEHOLDER_ERROR, "; ".join(hit.message() for hit in hits))
        return data
