"""Read values out of decoded JSON with JSONPaths, compiled once, with a fast path for plain paths.

Plain paths (`$.a.b`, `$.a[0].b`, `$.a[*].b`, `$['a b']`) are walked directly; anything else (filters,
slices, recursive descent) goes through ``jsonpath_ng.ext``. Paths may be written `statusFile`,
`object.status` or `$.object.status`: all mean the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as parse_jsonpath
from pydantic import AfterValidator

JsonValue = Any  # a decoded JSON document or a part of one

WILDCARD = object()  # a `[*]` step
_STEP = re.compile(r"\.([A-Za-z_@][\w@-]*)|\[(-?\d+)\]|\[(\*)\]|\.(\*)|\['([^'\\]*)'\]")
_MULTI = re.compile(r"\*|\.\.|\[\?|:|,")  # syntax that can match several values
MULTI_SEPARATOR = "||"
EXAMPLES = "Write it like `$.paging.totalPages`, `object.status`, `$.elements[0].id` or `$.eans[*]`."


def normalise_jsonpath(text: str) -> str:
    """Return the path in `$.` form: `statusFile` and `object.status` gain the leading `$.`."""
    path = text.strip()
    if path.startswith("$"):
        return path
    return "$" + path if path.startswith("[") else "$." + path


@dataclass(frozen=True)
class CompiledPath:
    """A normalised path ready to evaluate; `multi` paths may match several values."""

    expression: str
    multi: bool
    find: Callable[[JsonValue], list[JsonValue]]
    keys: tuple[str, ...] | None = None  # a plain dotted path (`$.a.b`): its keys, for the fastest lookups
    steps: tuple[object, ...] | None = None  # a plain path: keys, indexes and `WILDCARD`s (not `$` alone)


def _plain_steps(expression: str) -> tuple[object, ...] | None:
    steps: list[object] = []
    position = 1  # after the `$`
    while position < len(expression):
        match = _STEP.match(expression, position)
        if match is None:
            return None
        key, index, star, dot_star, quoted = match.groups()
        if star or dot_star:
            steps.append(WILDCARD)
        else:
            steps.append(int(index) if index is not None else key if key is not None else quoted)
        position = match.end()
    return tuple(steps)


def _walk(steps: tuple[object, ...], body: JsonValue) -> list[JsonValue]:
    current = [body]
    for step in steps:
        current = [child for value in current for child in _children(value, step)]
    return current


def _children(value: JsonValue, step: object) -> list[JsonValue]:
    if step is WILDCARD:
        return (
            list(value)
            if isinstance(value, list)
            else list(value.values())
            if isinstance(value, dict)
            else []
        )
    if isinstance(step, int):
        return [value[step]] if isinstance(value, list) and -len(value) <= step < len(value) else []
    return [value[step]] if isinstance(value, dict) and step in value else []


@lru_cache(maxsize=1024)
def compile_jsonpath(text: str) -> CompiledPath:
    """Return the compiled path; raise ValueError, with an example, when it is not a JSONPath."""
    expression = normalise_jsonpath(text)
    steps = _plain_steps(expression) if expression.startswith("$") else None
    if steps is not None:
        keys = tuple(s for s in steps if isinstance(s, str)) if steps else None
        plain = keys if keys is not None and len(keys) == len(steps) else None
        return CompiledPath(
            expression, WILDCARD in steps, lambda body: _walk(steps, body), plain, steps or None
        )
    try:
        parsed = parse_jsonpath(expression)
    except (JsonPathLexerError, JsonPathParserError, ValueError, TypeError, AttributeError) as exc:
        reason = str(exc).strip().rstrip(".!") or type(exc).__name__
        raise ValueError(f"`{text}` is not a valid JSONPath ({reason}). {EXAMPLES}") from exc
    return CompiledPath(expression, bool(_MULTI.search(expression)), _finder(parsed))


def _finder(parsed: Any) -> Callable[[JsonValue], list[JsonValue]]:
    return lambda body: [match.value for match in parsed.find(body)]


def validate_jsonpath(text: str) -> str:
    """Return the path in `$.` form; raise ValueError saying how to write it when it is invalid."""
    if not text or not text.strip():
        raise ValueError(f"A JSONPath is empty. {EXAMPLES}")
    return compile_jsonpath(text).expression


JsonPath = Annotated[str, AfterValidator(validate_jsonpath)]  # checked and normalised with the job


def find_all(path: str, body: JsonValue) -> list[JsonValue]:
    """Return every value the path matches in `body`, in document order (empty when none)."""
    return compile_jsonpath(path).find(body)


def find_first(path: str, body: JsonValue) -> JsonValue:
    """Return the first value the path matches, or None."""
    matches = compile_jsonpath(path).find(body)
    return matches[0] if matches else None


def extract_value(path: str, body: JsonValue) -> JsonValue:
    """Return the value for a field: the single match, or for `[*]` paths the values joined with `||`."""
    compiled = compile_jsonpath(path)
    matches = compiled.find(body)
    if not compiled.multi:
        return matches[0] if matches else None
    texts = [json_text(value) for value in matches if value is not None]
    return MULTI_SEPARATOR.join(texts) if texts else None


def json_text(value: JsonValue) -> str:
    """Return a JSON value as text, the one way the project writes one: a string as is, a number as
    Python writes it, booleans, objects and lists as compact JSON (`true`, `{"a":1}`), null as `None`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)
