"""Test an API job's connection before its first run: the block exists, the base URL answers, the
credentials are accepted.

`python -m flows.import_json_from_api --check job.yaml` calls `check_api_connection`. When the job's
first call is a plain GET (no value from a previous response or variable), that request is sent as
the run would send it (first page only for paging) and its answer must be JSON: this proves the URL,
the credentials and the path together. Any other first call (a POST, say) could change data on the
API side, so only the base URL is fetched, and the answer says the credentials were not proved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import httpx

from blocks.api import ApiConnection
from tasks.api.calls import PAGED_PATTERNS, ApiCall, CallContext, as_text, render_path, resolve_value
from tasks.api.http import RetryPolicy, decode_json, open_client, safe_url, secret_mask, send
from tasks.errors import ImportJobError

CHECK_POLICY = RetryPolicy(max_attempts=2, initial_wait=0.5, max_wait=2.0, deadline_seconds=60.0)


@dataclass
class CheckResult:
    """What the check found: problems (empty when all is well) and what was proved."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_api_connection(
    connection_name: str,
    first_call: ApiCall,
    *,
    timeout_seconds: float | None = None,
    max_bytes: int = 64 * 1024 * 1024,
    initial_since: datetime | None = None,
) -> CheckResult:
    """Return the problems found reaching the API of block `connection_name` with its credentials."""
    result = CheckResult()
    try:
        block = ApiConnection.load(connection_name)
    except (ValueError, RuntimeError) as exc:
        result.problems.append(
            f"API Connection block {connection_name!r} could not be loaded ({type(exc).__name__}: {exc}). "
            "Create it (python -m deployments blocks, or the Prefect UI), or fix the job's `connection`."
        )
        return result
    assert isinstance(block, ApiConnection)
    if timeout_seconds is not None:
        block = block.model_copy(update={"timeout_seconds": timeout_seconds})
    with open_client(block) as client:
        try:
            if _safe_to_send(first_call):
                _send_first_call(client, first_call, max_bytes, initial_since, result)
            else:
                _reach_base_url(client, block, first_call, result)
        except ImportJobError as exc:
            result.problems.append(str(exc))
    return result


def _safe_to_send(call: ApiCall) -> bool:
    plain = call.method == "GET" and not call.reads_previous() and not call.variables_used()
    return plain and (call.pattern.kind in ("default", "retry") or isinstance(call.pattern, PAGED_PATTERNS))


def _send_first_call(
    client: httpx.Client, call: ApiCall, max_bytes: int, since: datetime | None, result: CheckResult
) -> None:
    context = CallContext() if since is None else CallContext(initial_since=since)
    where = f"call {call.name!r}"
    values = {k: resolve_value(v, context, where=where) for k, v in call.path_variables.items()}
    query = {k: as_text(resolve_value(v, context, where=where)) for k, v in call.query.items()}
    headers = {k: as_text(resolve_value(v, context, where=where)) for k, v in call.headers.items()}
    pattern = call.pattern
    params: dict[str, object] = dict(query)
    if isinstance(pattern, PAGED_PATTERNS):
        params |= pattern.first_params()
    response = send(
        client,
        "GET",
        render_path(call.path, values),
        params=params,
        headers=headers or None,
        max_bytes=max_bytes,
        policy=CHECK_POLICY,
    )
    decode_json(response, secret_mask(client))
    result.notes.append(
        f"GET {safe_url(response.request.url)} (the first call, {call.name!r}) answered "
        f"{response.status_code} with JSON: base URL, credentials and path OK."
    )


def _reach_base_url(client: httpx.Client, block: ApiConnection, call: ApiCall, result: CheckResult) -> None:
    url = httpx.URL(block.base_url)
    mask = secret_mask(client)
    try:
        response = client.get(url, timeout=block.timeout_seconds)
    except httpx.HTTPError as exc:
        result.problems.append(
            f"GET {safe_url(url)} failed: {type(exc).__name__} ({mask(str(exc)) or 'no detail'}). Check the "
            "block's `base_url` (host name, port, https), the network path and the TLS settings."
        )
        return
    status = response.status_code
    if status in (401, 403):
        result.problems.append(
            f"GET {safe_url(url)} answered {status}: the API refuses the credentials of block "
            f"{block._block_document_name!r}, or this URL needs other rights. Check `auth` and its secret."
        )
        return
    result.notes.append(
        f"GET {safe_url(url)} answered {status}: the API is reachable. The credentials were not proved: "
        f"the first call ({call.method} {call.name!r}) is not a plain GET, and the check sends nothing "
        "that could change data."
    )
