"""Run one call of an API import job: its request, pages, polls or download, as one Prefect task.

`run_call` is the task the flow runs for each call, in order; it resolves the call's value templates
against what earlier calls left (``tasks/api/calls.py``), sends the requests (``tasks/api/http/``), walks the
pages (``tasks/api/paging.py``) and writes every response to a spool file (``tasks/api/spool.py``) so the
records never pile up in memory. It returns a `CallOutcome`: the response later calls read, the
captured variables, the spool (or the downloaded file) and the counts for the report.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from pydantic import ConfigDict, Field

from blocks.api import ApiConnection
from blocks.run_cache import load_block
from tasks.api.calls import (
    CAPTURED,
    PAGED_PATTERNS,
    ApiCall,
    CallContext,
    DefaultPattern,
    DownloadPattern,
    JsonFile,
    LinkPattern,
    PagedPattern,
    RetryPattern,
    as_text,
    records_of,
    render_path,
    resolve_body,
    resolve_value,
)
from tasks.api.feed import RecordFeed
from tasks.api.hosts import DownloadGuard
from tasks.api.http import (
    DEFAULT_MAX_BYTES,
    ConnectionAuth,
    Download,
    RetryPolicy,
    decode_json,
    download,
    open_client,
    safe_url,
    secret_mask,
    send,
)
from tasks.api.jsonpath import JsonValue, compile_jsonpath, find_first
from tasks.api.paging import GetLinkPage, LinkWalk, Walk, content_records, walk_pages
from tasks.api.spool import Spool, SpoolWriter, export_folder, export_spool
from tasks.errors import BadFileError, SourceRejectedError, SourceUnavailableError
from tasks.run import current_progress
from tasks.ui_schema import FormModel


class HttpSettings(FormModel):
    """Limits of the job's requests; the defaults suit most APIs."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="HTTP limits")

    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Seconds to wait for each connect, read or write. Empty: the connection block's timeout.",
    )
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=1024,
        description="Largest response (or downloaded file) accepted, in bytes.",
    )
    call_deadline_seconds: float = Field(
        default=1800.0, gt=0, description="Total time one call (all its pages, polls and retries) may take."
    )
    transport_attempts: int = Field(
        default=5, ge=1, le=20, description="Attempts of one request on transient failures (down, 429, 5xx)."
    )
    transport_initial_wait_seconds: float = Field(
        default=1.0, ge=0, description="First wait before retrying a failed request; it grows exponentially."
    )
    retry_after_cap_seconds: float = Field(
        default=120.0, ge=0, description="Longest `Retry-After` wait honoured; longer asks wait this long."
    )

    def policy(self) -> RetryPolicy:
        """Return the transport retry policy these settings describe."""
        return RetryPolicy(
            max_attempts=self.transport_attempts,
            initial_wait=self.transport_initial_wait_seconds,
            max_wait=max(60.0, self.transport_initial_wait_seconds),
            retry_after_cap=self.retry_after_cap_seconds,
            deadline_seconds=self.call_deadline_seconds,
        )


@dataclass(frozen=True)
class DownloadedFile:
    """A file a download call saved locally."""

    url: str
    local_path: Path
    size: int
    sha256: str


@dataclass
class CallOutcome:
    """What a call left for the next ones: its (first or final) response, captures, spooled records, counts.

    The records are not held in memory: `spool` is the gzip NDJSON file of the call's responses.
    """

    body: JsonValue
    captured: dict[str, JsonValue] = field(default_factory=dict)
    spool: Spool | None = None
    download: DownloadedFile | None = None
    pages: int = 0
    polls: int = 0
    warnings: list[str] = field(default_factory=list)
    exported_to: str | None = None

    @property
    def record_count(self) -> int:
        """Return how many records the call returned."""
        return self.spool.records if self.spool else 0

    @property
    def records(self) -> list[JsonValue]:
        """Return every record in a list: for previews and small answers only (the load streams them)."""
        return list(self.spool.records_iter()) if self.spool else []


@dataclass(frozen=True)
class CallRequest:
    client: httpx.Client
    call: ApiCall
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: JsonValue
    http: HttpSettings
    deadline: float

    def send(
        self, params: dict[str, Any] | None = None, method: str | None = None, url: str | None = None
    ) -> httpx.Response:
        return send(
            self.client,
            method or self.call.method,
            url or self.path,
            params=params if params is not None or url is not None else self.query,  # a URL has its own
            json=self.body,
            headers=self.headers or None,
            max_bytes=self.http.max_bytes,
            deadline=self.deadline,
            policy=self.http.policy(),
        )

    def decode(self, response: httpx.Response) -> JsonValue:
        """Return the response's JSON body; an error quoting the body masks the connection's secrets."""
        return decode_json(response, secret_mask(self.client))


@task(name="api-call", task_run_name="{call.name}", cache_policy=NO_CACHE)
def run_call(
    connection_name: str,
    call: ApiCall,
    context: CallContext,
    http: HttpSettings,
    work_dir: Path,
    job_name: str = "api-job",
    feed: RecordFeed | None = None,
) -> CallOutcome:
    """Run one call (its pages, polls or download) and return what later calls and the load need.

    With a `feed` (a paging call that is the job's last), each page's records also go to a load running
    at the same time: the feed is finished only once everything here succeeded, and failed otherwise.
    """
    try:
        outcome = _run(connection_name, call, context, http, work_dir, job_name, feed)
    except BaseException as exc:
        if feed is not None:
            feed.fail(exc)
        raise
    if feed is not None:
        feed.finish()
    return outcome


def _run(
    connection_name: str,
    call: ApiCall,
    context: CallContext,
    http: HttpSettings,
    work_dir: Path,
    job_name: str,
    feed: RecordFeed | None,
) -> CallOutcome:
    if isinstance(call.pattern, PAGED_PATTERNS) and call.pattern.export_pages_to:
        export_folder(call.pattern.export_pages_to)  # refused before any page is fetched
    connection = load_block(ApiConnection, connection_name)
    if http.timeout_seconds is not None:
        connection = connection.model_copy(update={"timeout_seconds": http.timeout_seconds})
    with open_client(connection) as client:
        try:
            outcome = _execute(client, call, context, http, work_dir, feed)
        except ValueError as exc:  # a template that cannot be resolved with this response
            raise SourceRejectedError(f"{exc} Fix the call's values.") from exc
    outcome.captured = _capture(call, outcome.body)
    pattern = call.pattern
    if isinstance(pattern, PAGED_PATTERNS) and pattern.export_pages_to and outcome.spool is not None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        outcome.exported_to = export_spool(
            outcome.spool, pattern.export_pages_to, f"{job_name}-{call.name}-{stamp}"
        )
        get_run_logger().info("Pages of call %r exported to %s", call.name, outcome.exported_to)
    return outcome


def _execute(
    client: httpx.Client,
    call: ApiCall,
    context: CallContext,
    http: HttpSettings,
    work_dir: Path,
    feed: RecordFeed | None = None,
) -> CallOutcome:
    deadline = http.policy().deadline()
    pattern = call.pattern
    if isinstance(pattern, DownloadPattern):
        return _download(client, call, pattern, context, http, deadline, work_dir)
    where = f"call {call.name!r}"
    values = {k: resolve_value(v, context, where=f"{where} path {k}") for k, v in call.path_variables.items()}
    request = CallRequest(
        client,
        call,
        render_path(call.path, values),
        {k: as_text(resolve_value(v, context, where=f"{where} query {k}")) for k, v in call.query.items()},
        {k: as_text(resolve_value(v, context, where=f"{where} header {k}")) for k, v in call.headers.items()},
        resolve_body(call.body, context, where=f"{where} body") if call.body is not None else None,
        http,
        deadline,
    )
    if isinstance(pattern, PAGED_PATTERNS):
        return page_call(request, pattern, work_dir, feed)
    if isinstance(pattern, RetryPattern):
        return _poll(request, pattern, work_dir)
    body = request.decode(request.send())
    return CallOutcome(body=body, spool=_spool_one(work_dir, call, body, pattern))


def _spool_one(
    work_dir: Path, call: ApiCall, body: JsonValue, content: DefaultPattern | RetryPattern | JsonFile
) -> Spool:
    """Spool one response; its content path must match (a wrong path would import nothing, silently)."""
    path = content.content_path
    if path is not None:
        setting = "pattern.format" if isinstance(content, JsonFile) else "pattern"
        content_records(path, body, empty_is_ok=content.empty_is_ok, setting=setting)
    writer = SpoolWriter(_spool_path(work_dir, call), path, paged=False)
    writer.write(body, len(records_of(body, path)))
    return writer.close()


def _spool_path(work_dir: Path, call: ApiCall) -> Path:
    return work_dir / f"{call.name}-{uuid.uuid4().hex[:8]}.ndjson.gz"


def page_call(
    request: CallRequest, paging: PagedPattern, work_dir: Path, feed: RecordFeed | None
) -> CallOutcome:
    raw: dict[Any, bytes] = {}  # each page's body as received, by page number, offset, cursor or URL
    walk: Walk | LinkWalk
    if isinstance(paging, LinkPattern):
        walk = LinkWalk(_link_getter(request, raw), paging, _allowed_hosts(request.client))
    else:
        numbered = paging

        def get_page(params: dict[str, Any]) -> JsonValue:
            response = request.send(params)
            body = request.decode(response)
            raw[numbered.request_key(params)] = response.content
            return body

        walk = walk_pages(get_page, numbered, request.query)
    writer = SpoolWriter(_spool_path(work_dir, request.call), paging.content_path, paged=True)
    progress = current_progress()
    first: JsonValue = None
    try:
        for page in walk:
            first = page.body if first is None else first
            writer.write(page.body, len(page.records), raw.pop(page.key, None))
            progress.page(len(page.records), getattr(walk, "total_pages", None))
            if feed is not None and page.records:
                feed.put(page.records)
    except BaseException:
        writer.discard()
        raise
    spool = writer.close()
    return CallOutcome(body=first, spool=spool, pages=walk.pages, warnings=list(walk.warnings))


def _link_getter(request: CallRequest, raw: dict[Any, bytes]) -> GetLinkPage:
    def get_page(url: str | None) -> tuple[JsonValue, str | None, str]:
        # The first page is the call's own request; the next ones are the URLs the API gives, as given
        # (their query included: the call's query parameters are not added again).
        response = request.send() if url is None else request.send(url=url)
        body = request.decode(response)
        raw[url] = response.content
        following = response.links.get("next", {}).get("url")
        return body, following, str(response.request.url)

    return get_page


def _allowed_hosts(client: httpx.Client) -> Callable[[str], bool]:
    auth = client.auth
    if isinstance(auth, ConnectionAuth):  # the hosts that may have the credentials may serve the pages
        return lambda url: auth.may_receive_credentials(httpx.URL(url))
    home = client.base_url
    return lambda url: (httpx.URL(url).host, httpx.URL(url).port) == (home.host, home.port)


def _poll(request: CallRequest, retry: RetryPattern, work_dir: Path) -> CallOutcome:
    status, value = 0, None
    for attempt in range(1, retry.max_attempts + 1):
        response = request.send()
        status = response.status_code
        body = request.decode(response) if status == retry.expected_status else None
        value = find_first(retry.condition_path, body) if body is not None else None
        if status == retry.expected_status and as_text(value) == retry.value:
            spool = _spool_one(work_dir, request.call, body, retry)
            return CallOutcome(body=body, spool=spool, polls=attempt)
        if attempt < retry.max_attempts:
            if time.monotonic() + retry.interval_seconds >= request.deadline:
                break
            time.sleep(retry.interval_seconds)
    raise SourceUnavailableError(
        f"{request.call.method} {safe_url(request.client.base_url.join(request.path))}: still not ready "
        f"after {attempt} attempt(s): last status {status}, `{retry.condition_path}` was {as_text(value)!r}, "
        f"expected status {retry.expected_status} with {retry.value!r}. Raise the call's "
        "`pattern.max_attempts` or `pattern.interval_seconds` (or `http.call_deadline_seconds`), or run later."
    )


def _download(
    client: httpx.Client,
    call: ApiCall,
    pattern: DownloadPattern,
    context: CallContext,
    http: HttpSettings,
    deadline: float,
    work_dir: Path,
) -> CallOutcome:
    source = pattern.url_from
    if CAPTURED.search(source):
        url = resolve_value(source, context, where=f"call {call.name!r} url_from")
    else:
        url = find_first(compile_jsonpath(source).expression, context.previous)
    if not isinstance(url, str) or not url.strip():
        raise SourceRejectedError(
            f"call {call.name!r}: `{source}` gave no file URL ({as_text(url)[:80]!r}). Check the call's "
            "`pattern.url_from`, or poll until the file is ready with a retry call first."
        )
    suffix = "json" if isinstance(pattern.format, JsonFile) else "csv"
    local = work_dir / f"{call.name}-{uuid.uuid4().hex[:8]}.{suffix}"
    # The client serves this call only: its hooks now hold every request (redirects too) to the allowed hosts.
    auth = client.auth if isinstance(client.auth, ConnectionAuth) else None
    DownloadGuard(auth).install(client)
    saved = download(
        client, url.strip(), local, max_bytes=http.max_bytes, deadline=deadline, policy=http.policy()
    )
    if isinstance(pattern.format, JsonFile):
        body = _read_json_file(
            saved,
            quote=auth is not None and auth.may_receive_credentials(httpx.URL(saved.url)),
            mask=secret_mask(client),
        )
        local.unlink(missing_ok=True)
        return CallOutcome(body=body, spool=_spool_one(work_dir, call, body, pattern.format))
    return CallOutcome(body=None, download=DownloadedFile(saved.url, local, saved.size, saved.sha256))


def _read_json_file(saved: Download, *, quote: bool, mask: Callable[[str], str]) -> JsonValue:
    # A JSON document is parsed whole; its size is capped by `http.max_bytes`.
    if not quote:  # another host's file: its content is never shown in a message
        try:
            return cast("JsonValue", json.loads(saved.path.read_bytes()))
        except ValueError as exc:
            raise BadFileError(
                f"GET {saved.url} answered a file that is not JSON ({type(exc).__name__}); its content is not "
                "shown, as that host is not the API's own nor a trusted one. Check the download URL the API gave."
            ) from exc
    request = httpx.Request("GET", saved.url)
    response = httpx.Response(200, content=saved.path.read_bytes(), request=request)
    return decode_json(response, mask)


def _capture(call: ApiCall, body: JsonValue) -> dict[str, JsonValue]:
    captured: dict[str, JsonValue] = {}
    for name, path in call.capture.items():
        value = find_first(path, body) if body is not None else None
        if value is None:
            raise SourceRejectedError(
                f"call {call.name!r}: capture `{name}` ({path}) found nothing in the response. Check the "
                "path (names are case-sensitive) against what the API returns."
            )
        captured[name] = value
    return captured
