"""The one retry layer of the API calls (tenacity): `send` and `download` retry only failures that may
pass, never re-send a POST or PATCH the server may have acted on, and stop at the call's deadline."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity import wait_exponential_jitter as exponential_jitter
from tenacity.stop import stop_base

from tasks.api.http.auth import ConnectionAuth, secret_mask
from tasks.api.http.body import DEFAULT_MAX_BYTES, read_capped, rebuilt
from tasks.api.http.status import request_label, safe_url, snippet, status_fix, status_text
from tasks.api.jsonpath import JsonValue
from tasks.errors import (
    ImportJobError,
    SourceRejectedError,
    SourceUnavailableError,
    TokenUnavailableError,
)

logger = logging.getLogger(__name__)


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


RETRY_STATUSES_IDEMPOTENT = frozenset({429, 500, 502, 503, 504})


RETRY_STATUSES_UNSAFE = frozenset({429, 503})  # POST/PATCH: the server may already have acted on others


@dataclass(frozen=True)
class RetryPolicy:
    """How `send` retries: attempts, backoff waits, the `Retry-After` cap and the call's deadline."""

    max_attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 60.0
    retry_after_cap: float = 120.0
    deadline_seconds: float = 1800.0

    def deadline(self) -> float:
        """Return the `time.monotonic()` instant at which a call starting now must stop."""
        return time.monotonic() + self.deadline_seconds


DEFAULT_POLICY = RetryPolicy()


class RetryableError(Exception):
    """A failure worth another attempt; `error` is what the caller gets when the attempts run out."""

    def __init__(self, error: ImportJobError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True)
class RequestCall:
    client: httpx.Client
    method: str
    url: str
    params: Mapping[str, Any] | None
    json: JsonValue
    headers: Mapping[str, str] | None
    max_bytes: int
    deadline: float
    destination: Path | None = None  # a download: a successful body goes to this file, not to memory
    saved: dict[str, Any] = field(default_factory=dict)  # the download's size and sha256

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS

    def mask(self, text: str) -> str:
        return secret_mask(self.client)(text)

    def fix(self, status: int) -> str:
        auth = self.client.auth
        label = auth.label if isinstance(auth, ConnectionAuth) else "the connection block"
        return status_fix(status, label)


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: JsonValue = None,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline: float | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> httpx.Response:
    """Send one request, retrying transient failures, and return its fully read (capped) response.

    Args:
        url: a path relative to the client's base URL, or an absolute URL (e.g. a download).
        deadline: `time.monotonic()` instant shared by all requests of a call; default: the policy's.
    """
    stop_at = policy.deadline() if deadline is None else deadline
    return send_call(
        RequestCall(client, method.upper(), url, params, json, headers, max_bytes, stop_at), policy
    )


def send_call(call: RequestCall, policy: RetryPolicy) -> httpx.Response:
    retrying = Retrying(
        retry=retry_if_exception_type(RetryableError),
        wait=_backoff(policy),
        stop=stop_after_attempt(policy.max_attempts) | _StopAtDeadline(call.deadline),
        before_sleep=_log_retry(policy),
        reraise=True,
    )
    started = time.monotonic()
    try:
        return retrying(_attempt, call)
    except RetryableError as exc:
        attempts = int(retrying.statistics.get("attempt_number", 1))
        elapsed = time.monotonic() - started
        past = (
            " The call's deadline leaves no time for another attempt."
            if attempts < policy.max_attempts
            else ""
        )
        raise SourceUnavailableError(
            f"{exc.error} Gave up after {attempts} attempt(s) in {elapsed:.1f} s.{past}"
        ) from (exc.__cause__ or exc)


@dataclass(frozen=True)
class Download:
    """A file `download` saved: the URL it came from (no query string), its size and SHA-256."""

    url: str
    path: Path
    size: int
    sha256: str


def download(
    client: httpx.Client,
    url: str,
    destination: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline: float | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> Download:
    """GET `url` into the file `destination`, streamed (never whole in memory) and hashed on the way.

    The same transport rules as `send` apply: retries, the size cap, the call's deadline and
    credentials only for the API's own (or trusted) hosts.
    """
    stop_at = policy.deadline() if deadline is None else deadline
    call = RequestCall(client, "GET", url, None, None, None, max_bytes, stop_at, destination)
    response = send_call(call, policy)
    return Download(
        str(safe_url(response.request.url)), destination, call.saved["size"], call.saved["sha256"]
    )


class _StopAtDeadline(stop_base):
    """Stop when the next wait would end past the call's deadline (tenacity computes the wait first)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self.deadline


def _backoff(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    exponential = exponential_jitter(
        multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.initial_wait
    )

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return min(error.retry_after, policy.retry_after_cap)
        return float(exponential(state))

    return wait


def _log_retry(policy: RetryPolicy) -> Callable[[RetryCallState], None]:
    def log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "%s Retrying in %.2f s (attempt %d of %d).",
            error,
            state.upcoming_sleep,
            state.attempt_number + 1,
            policy.max_attempts,
        )

    return log


def _attempt(call: RequestCall) -> httpx.Response:
    remaining = call.deadline - time.monotonic()
    request = call.client.build_request(
        call.method,
        call.url,
        params=call.params,
        json=call.json,
        headers=call.headers,
        timeout=request_timeout(call, remaining),
    )
    if remaining <= 0:
        raise SourceUnavailableError(
            f"{request_label(request)} was not sent: the call's deadline has passed."
        )
    try:
        response = call.client.send(request, stream=True)
    except TokenUnavailableError as exc:
        raise RetryableError(exc) from exc
    except (httpx.TransportError, httpx.TooManyRedirects) as exc:
        raise transport_failure(call, request, exc) from exc
    try:
        body = read_capped(call, response)
    except httpx.TransportError as exc:
        raise transport_failure(call, request, exc) from exc
    finally:
        response.close()
    result = rebuilt(response, body)
    check_status(call, result)
    return result


def request_timeout(call: RequestCall, remaining: float) -> httpx.Timeout:
    limit = max(remaining, 0.001)
    current = call.client.timeout

    def cap(value: float | None) -> float:
        return limit if value is None else min(value, limit)

    return httpx.Timeout(
        connect=cap(current.connect), read=cap(current.read), write=cap(current.write), pool=cap(current.pool)
    )


def transport_failure(call: RequestCall, request: httpx.Request, exc: httpx.HTTPError) -> Exception:
    where = f"{request_label(request)} failed: {type(exc).__name__} ({call.mask(str(exc)) or 'no detail'})."
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.TooManyRedirects):
        return SourceRejectedError(f"{where} Check the call's path or URL and the connection's `base_url`.")
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if never_sent or call.idempotent:
        return RetryableError(SourceUnavailableError(f"{where} The API is down, slow or unreachable."))
    return SourceUnavailableError(
        f"{where} Not sent again: the server may already have acted on this {call.method}. Check on the API "
        "side whether it did before running the job again; raise `timeout_seconds` of the connection if "
        "the API is slow."
    )


def check_status(call: RequestCall, response: httpx.Response) -> None:
    status = response.status_code
    if response.is_success:
        return
    text = f"{request_label(response.request)} answered {status_text(response)}: {snippet(call.mask(response.text))}."
    if status != 429 and status < 500:
        raise SourceRejectedError(f"{text} {call.fix(status)}")
    error = SourceUnavailableError(f"{text} {call.fix(status)}")
    if status in (RETRY_STATUSES_IDEMPOTENT if call.idempotent else RETRY_STATUSES_UNSAFE):
        raise RetryableError(error, retry_after_seconds(response.headers.get("retry-after")))
    raise SourceUnavailableError(
        f"{error} Not sent again: the server may already have acted on this {call.method}; check on the API side."
    )


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Return the wait a `Retry-After` header asks for (seconds or an HTTP date), or None."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None
