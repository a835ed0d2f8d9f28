"""The calls of an API import job: the `ApiCall` model, its patterns and its value templates.

A value of a call's path variables, query parameters, headers or JSON body is one of:

- a constant, e.g. `products` or `42`;
- `$.path`: a JSONPath into the previous call's response (the first call has none), e.g.
  `$.invocationId`;
- a captured variable written `${name}`: the value an earlier call captured with `capture:
  {name: $.path}`. `${name}` may also sit inside a constant, e.g. `invocations/${id}/status`;
- `lastJobExecutionMinusDuration(<ISO-8601 duration>)`: the start of the job's last successful run
  (SUCCESS or PARTIAL, from the run history) minus the duration, as ISO-8601 UTC
  (`2026-01-31T08:00:00Z`); on the first run, the job's `initial_since`.

Everything here is pure: templates are parsed and checked with the job, before any request.

Why `${name}` and not `{{name}}`: `prefect deploy` templates every `{{ name }}` of `prefect.yaml`, with
no escape, so `{{invocationId}}` never reached the server (`tasks/job_model.py` refuses it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import ConfigDict, Field, model_validator

from tasks.api.jsonpath import JsonPath, JsonValue, compile_jsonpath, find_all, find_first, json_text
from tasks.api.paging import CursorPaging, LinkPaging, OffsetPaging, PageNumberPaging, empty_is_ok_field
from tasks.csv.reader import CsvFormat
from tasks.ui_schema import FormModel, OptionalMapping, json_editor

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
PATH_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
CAPTURED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
BUILT_IN = re.compile(r"^\s*lastJobExecutionMinusDuration\(\s*([^)]*?)\s*\)\s*$")
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
VALUE_HELP = (
    "A constant, `$.path` into the previous call's response, `${name}` for a variable captured by an "
    "earlier call, or `lastJobExecutionMinusDuration(PT1H)`."
)


def parse_duration(text: str) -> timedelta:
    """Return the ISO-8601 duration `text` (`PT1H`, `P1D`, `P1DT2H30M`, `P2W`, `PT90S`) as a timedelta.

    Years and months have no fixed length and are refused: write them as days.
    """
    match = _DURATION.match(text.strip().upper())
    if match is None:
        raise ValueError(
            f"`{text}` is not an ISO-8601 duration of weeks, days, hours, minutes or seconds; write it "
            "like `PT1H` (one hour), `P1D` (one day) or `P1DT2H30M`."
        )
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    return timedelta(**parts)


def iso_utc(moment: datetime) -> str:
    """Return `moment` as ISO-8601 UTC to the second, e.g. `2026-01-31T08:00:00Z`."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def since_value(duration: str, last_start: datetime | None, initial_since: datetime) -> str:
    """Return `lastJobExecutionMinusDuration(duration)`: last start minus duration, or `initial_since`."""
    if last_start is None:
        return iso_utc(initial_since)
    return iso_utc(last_start - parse_duration(duration))


def path_variables(template: str) -> list[str]:
    """Return the `{variable}` names of a path template, in order, each once."""
    return list(dict.fromkeys(PATH_VARIABLE.findall(template)))


@dataclass(frozen=True)
class ValueRef:
    """What a value template refers to."""

    kind: Literal["constant", "response", "variable", "since"]
    text: str
    variables: tuple[str, ...] = ()
    duration: str = ""


def parse_value(text: str) -> ValueRef:
    """Classify a value template; raise ValueError when its JSONPath or duration is invalid."""
    stripped = text.strip()
    built_in = BUILT_IN.match(stripped)
    if built_in:
        parse_duration(built_in.group(1))
        return ValueRef("since", text, duration=built_in.group(1))
    if stripped.startswith("$."):
        compile_jsonpath(stripped)
        return ValueRef("response", stripped)
    names = tuple(CAPTURED.findall(text))
    return ValueRef("variable" if names else "constant", text, variables=names)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@dataclass
class CallContext:
    """What values resolve against: the previous response, the captured variables, the `since` inputs."""

    previous: JsonValue = None
    has_previous: bool = False
    variables: dict[str, JsonValue] = field(default_factory=dict)
    last_start: datetime | None = None
    initial_since: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    def after(self, body: JsonValue, captured: Mapping[str, JsonValue]) -> CallContext:
        """Return the context of the next call: this call's response and captures added."""
        return CallContext(
            previous=body,
            has_previous=True,
            variables={**self.variables, **captured},
            last_start=self.last_start,
            initial_since=self.initial_since,
        )


def resolve_value(text: str, context: CallContext, *, where: str) -> JsonValue:
    """Return the value a template stands for; a whole `$.path` or `${name}` keeps its JSON type."""
    ref = parse_value(text)
    if ref.kind == "constant":
        return text
    if ref.kind == "since":
        return since_value(ref.duration, context.last_start, context.initial_since)
    if ref.kind == "response":
        if not context.has_previous:
            raise ValueError(f"{where}: `{text}` reads the previous response, but this is the first call.")
        return find_first(ref.text, context.previous)
    missing = [name for name in ref.variables if name not in context.variables]
    if missing:
        raise ValueError(f"{where}: variable `${{{missing[0]}}}` was not captured by an earlier call.")
    whole = CAPTURED.fullmatch(text.strip())
    if whole:
        return context.variables[whole.group(1)]
    return CAPTURED.sub(lambda m: as_text(context.variables[m.group(1)]), text)


def as_text(value: JsonValue) -> str:
    """Return a resolved value as text for a path, a query or a header (JSON for objects)."""
    return "" if value is None else json_text(value)


def resolve_body(body: JsonValue, context: CallContext, *, where: str) -> JsonValue:
    """Return the JSON body with every string value resolved."""
    if isinstance(body, str):
        return resolve_value(body, context, where=where)
    if isinstance(body, dict):
        return {key: resolve_body(value, context, where=f"{where}.{key}") for key, value in body.items()}
    if isinstance(body, list):
        return [resolve_body(value, context, where=f"{where}[{i}]") for i, value in enumerate(body)]
    return body


def render_path(template: str, values: Mapping[str, JsonValue]) -> str:
    """Return the path with each `{variable}` replaced by its percent-encoded value."""
    return PATH_VARIABLE.sub(lambda m: quote(as_text(values[m.group(1)]), safe=""), template)


class DefaultPattern(FormModel):
    """One request."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Default (one request)")

    kind: Literal["default"] = Field(default="default", description="One request.")
    content_path: JsonPath | None = Field(
        default=None,
        title="Content finder path",
        description="When this is the last call: JSONPath of the records in the response, e.g. "
        "`$.elements`. Empty: the whole response (a list of records, or one record).",
    )
    empty_is_ok: bool = empty_is_ok_field()


def _export_pages_to() -> Any:
    return Field(
        default=None,
        title="Export pages to",
        description="Keep the raw pages (one JSON line per page, gzip-compressed NDJSON) in this folder "
        "or fsspec URL, which must lie under the worker's `DATAHUB_EXPORT_ROOT` (a relative value is a "
        "folder under it), as `<job>-<call>-<UTC time>.ndjson.gz`. Empty: the pages are not kept.",
    )


class PagingPattern(PageNumberPaging):
    """Fetch every page by number; the records are the content of all pages."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Page number")

    kind: Literal["page_number", "paging"] = Field(
        default="page_number",
        description="Fetch every page by its number (`paging`, the former name, is still accepted).",
    )
    export_pages_to: str | None = _export_pages_to()


class OffsetPattern(OffsetPaging):
    """Fetch the pages by record offset and limit; the records are the content of all pages."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Offset and limit")

    kind: Literal["offset"] = Field(default="offset", description="Fetch the pages by record offset.")
    export_pages_to: str | None = _export_pages_to()


class CursorPattern(CursorPaging):
    """Follow the cursor each response gives to the next page; the records are the content of all pages."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Cursor")

    kind: Literal["cursor"] = Field(default="cursor", description="Follow the cursor of each response.")
    export_pages_to: str | None = _export_pages_to()


class LinkPattern(LinkPaging):
    """Follow the next page's URL, from the body or the `Link` header; the records are the content of all pages."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Next-page link")

    kind: Literal["link"] = Field(default="link", description="Follow each page's next-page URL.")
    export_pages_to: str | None = _export_pages_to()


PagedPattern = PagingPattern | OffsetPattern | CursorPattern | LinkPattern
PAGED_PATTERNS = (PagingPattern, OffsetPattern, CursorPattern, LinkPattern)


class RetryPattern(FormModel):
    """Poll until the response says it is ready (business polling, separate from transport retries)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Retry (poll until ready)")

    kind: Literal["retry"] = Field(default="retry", description="Repeat the request until a condition holds.")
    max_attempts: int = Field(
        default=10, ge=1, le=10_000, title="Retry count", description="Maximum number of requests."
    )
    interval_seconds: float = Field(
        default=30.0, ge=0, le=86_400, title="Retry interval (s)", description="Seconds between two requests."
    )
    expected_status: int = Field(
        default=200, ge=100, le=599, description="HTTP status that, with the value matched, ends the polling."
    )
    condition_path: JsonPath = Field(
        title="Condition attribute",
        description="Attribute that must match the value, e.g. `statusFile`, `object.status` or `$.object.status`.",
    )
    value: str = Field(
        title="Value to match",
        description="Value that ends the polling, e.g. `AVAILABLE` (compared as text).",
    )
    content_path: JsonPath | None = Field(
        default=None,
        title="Content finder path",
        description="When this is the last call: JSONPath of the records in the final response. "
        "Empty: the whole response.",
    )
    empty_is_ok: bool = empty_is_ok_field()


class JsonFile(FormModel):
    """A downloaded JSON document."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="JSON")

    kind: Literal["json"] = Field(default="json", description="The file is a JSON document.")
    content_path: JsonPath | None = Field(
        default=None,
        title="Content finder path",
        description="JSONPath of the records in the file, e.g. `$.elements`. Empty: the whole document.",
    )
    empty_is_ok: bool = empty_is_ok_field()


class CsvFile(FormModel):
    """A downloaded CSV file, read like the CSV job's files."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="CSV")

    kind: Literal["csv"] = Field(default="csv", description="The file is a CSV file.")
    csv: CsvFormat = Field(description="Delimiter and encoding of the file.")
    mapping: OptionalMapping[str, str] = Field(
        default=None,
        json_schema_extra=json_editor,  # the v2 form shows `dict | None` with no editor
        description="CSV column header -> entity field. Empty (`{}` or none): the entity's standard headers "
        "(e.g. `Stock External Id`). The job's JSONPath `mapping` must then be empty.",
    )


DownloadFormat = Annotated[JsonFile | CsvFile, Field(discriminator="kind")]


class DownloadPattern(FormModel):
    """GET a file whose URL the previous response (or a captured variable) gives."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Download a file")

    kind: Literal["download"] = Field(default="download", description="Download a file.")
    url_from: str = Field(
        min_length=1,
        title="File URL from",
        description="Where the file's URL (or path under the base URL) is: a JSONPath into the previous "
        "response, e.g. `$.urlFile`, or a captured variable `${fileUrl}`.",
    )
    format: DownloadFormat = Field(description="What the file holds: JSON or CSV.")

    @model_validator(mode="after")
    def _check_source(self) -> DownloadPattern:
        try:
            ref = parse_value(self.url_from if CAPTURED.search(self.url_from) else _as_path(self.url_from))
        except ValueError as exc:
            raise ValueError(f"`url_from`: {exc}") from None
        if ref.kind not in ("response", "variable"):
            raise ValueError("`url_from`: give a JSONPath like `$.urlFile` or a variable like `${fileUrl}`.")
        return self


def _as_path(text: str) -> str:
    return compile_jsonpath(text).expression


Pattern = Annotated[
    DefaultPattern
    | PagingPattern
    | OffsetPattern
    | CursorPattern
    | LinkPattern
    | RetryPattern
    | DownloadPattern,
    Field(discriminator="kind"),
]


class ApiCall(FormModel):
    """One request of the job (or its pages, polls or download), run in order after the previous one."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="API call")

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Name of the call, unique in the job."
    )
    method: Method = Field(default="GET", description="HTTP method: GET, POST, PUT, PATCH or DELETE.")
    path: str = Field(
        default="",
        description="Path relative to the connection's base URL, with `{variable}`s, e.g. "
        "`invocations/{invocationId}/status`. Ignored by the download pattern.",
    )
    path_variables: dict[str, str] = Field(
        default_factory=dict, description="Value of each `{variable}` of the path. " + VALUE_HELP
    )
    query: dict[str, str] = Field(
        default_factory=dict, title="Query parameters", description="Query parameters. " + VALUE_HELP
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers. " + VALUE_HELP + " Secrets belong in the connection block.",
    )
    body: dict[str, Any] | list[Any] | None = Field(
        default=None,
        title="JSON body",
        description="JSON body sent with the request; its string values are templates. " + VALUE_HELP,
    )
    capture: dict[str, JsonPath] = Field(
        default_factory=dict,
        description="Variables to keep for later calls: name -> JSONPath into this call's response, "
        "e.g. `invocationId: $.invocationId`; use them as `${invocationId}`.",
    )
    pattern: Pattern = Field(
        default_factory=DefaultPattern,
        description="How the call runs: one request, pages (by number, offset, cursor or "
        "next-page link), polling until "
        "ready, or a file download.",
    )

    @model_validator(mode="after")
    def _check_templates(self) -> ApiCall:
        where = f"call {self.name!r}"
        captured = CAPTURED.search(self.path)
        if captured:  # `{name}` of the path is a path variable: `${name}` there would be sent as is
            name = captured.group(1)
            raise ValueError(
                f"{where}: the path {self.path!r} holds `${{{name}}}`; write `{{{name}}}` in the path "
                f"and `path_variables: {{{name}: ${{{name}}}}}`."
            )
        wanted = path_variables(self.path)
        unknown = [name for name in wanted if name not in self.path_variables]
        if unknown and not isinstance(self.pattern, DownloadPattern):
            raise ValueError(
                f"{where}: the path uses `{{{unknown[0]}}}`, which `path_variables` does not give; "
                f"add `{unknown[0]}` to `path_variables`."
            )
        unused = [name for name in self.path_variables if name not in wanted]
        if unused:
            raise ValueError(
                f"{where}: path variable {unused[0]!r} is not used by the path {self.path!r}; "
                f"write `{{{unused[0]}}}` in the path or remove it."
            )
        for name in self.capture:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{where}: capture name {name!r} must be letters, digits and `_`.")
        for text in self.templates():
            try:
                parse_value(text)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        if isinstance(self.pattern, PAGED_PATTERNS) and self.method not in ("GET", "POST"):
            raise ValueError(f"{where}: paging works with GET (or POST) only.")
        return self

    def templates(self) -> list[str]:
        """Return every value template of the call."""
        values = [*self.path_variables.values(), *self.query.values(), *self.headers.values()]
        values += list(_strings(self.body))
        if isinstance(self.pattern, DownloadPattern) and CAPTURED.search(self.pattern.url_from):
            values.append(self.pattern.url_from)
        return values

    def variables_used(self) -> list[str]:
        """Return the captured variables the call's templates use."""
        return list(dict.fromkeys(name for text in self.templates() for name in parse_value(text).variables))

    def reads_previous(self) -> bool:
        """Return whether a template (or the download URL) reads the previous response."""
        uses = any(parse_value(text).kind == "response" for text in self.templates())
        download = isinstance(self.pattern, DownloadPattern) and not CAPTURED.search(self.pattern.url_from)
        return uses or download


def check_chain(calls: list[ApiCall]) -> None:
    """Raise ValueError when a call uses a variable no earlier call captures, or reads a missing response."""
    names = [call.name for call in calls]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"call names {repeated} are used more than once; give each call its own name.")
    captured: list[str] = []
    for index, call in enumerate(calls):
        if index == 0 and call.reads_previous():
            raise ValueError(
                f"call {call.name!r} reads `$.` values of a previous response, but it is the first call."
            )
        for name in call.variables_used():
            if name not in captured:
                known = ", ".join(captured) or "none"
                raise ValueError(
                    f"call {call.name!r} uses the variable `${{{name}}}`, which no earlier call "
                    f"captures (captured before it: {known}); add it to an earlier call's `capture`."
                )
        for later in calls[:index]:
            if isinstance(later.pattern, DownloadPattern) and isinstance(later.pattern.format, CsvFile):
                raise ValueError(f"call {later.name!r} downloads a CSV file: it must be the last call.")
        captured += list(call.capture)


def records_of(body: JsonValue, content_path: str | None) -> list[JsonValue]:
    """Return the records a response holds: the list at `content_path` (or the body), or one record."""
    if content_path is None:
        found: JsonValue = body
    else:
        compiled = compile_jsonpath(content_path)
        matches = find_all(content_path, body)
        if compiled.multi or len(matches) != 1:
            return [m for m in matches if m is not None]
        found = matches[0]
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]
