"""Call REST APIs with httpx: credentials for trusted hosts only, one retry layer, capped bodies.

`open_client` builds a client from an ``ApiConnection`` block; `send` makes one request with tenacity
retries (only for failures that may pass, and never re-sending a POST or PATCH that the server may
have acted on); `decode_json` reads its body; `download` streams a file to disk under the same rules,
hashing it on the way. Every read of a body checks the size cap and the call's deadline, so neither an
endless body nor one that trickles in a byte at a time can hold a run. Failures become the errors of ``tasks.errors`` with the
method, the URL without its query string, the status, a short body and the fix; never a secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity import wait_exponential_jitter as exponential_jitter
from tenacity.stop import stop_base

from blocks.api import ApiConnection
from tasks.api.jsonpath import JsonValue
from tasks.errors import (
    BadFileError,
    ImportJobError,
    SourceRejectedError,
    SourceUnavailableError,
    TokenUnavailableError,
)

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES_IDEMPOTENT = frozenset({429, 500, 502, 503, 504})
RETRY_STATUSES_UNSAFE = frozenset({429, 503})  # POST/PATCH: the server may already have acted on others
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
ERROR_BODY_BYTES = 4096  # enough of an error page for the message
SNIPPET_CHARS = 200
TOKEN_MARGIN_SECONDS = 30.0
DEFAULT_PORTS = {"http": 80, "https": 443}


def quiet_http_logs() -> None:
    """Silence httpx's and httpcore's INFO lines: they print every URL, query string (and keys) included."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


quiet_http_logs()


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


def safe_url(url: httpx.URL) -> httpx.URL:
    """Return the URL without query string, fragment or user info: safe for messages and logs."""
    return url.copy_with(query=None, fragment=None, userinfo=b"")


def _origin(url: httpx.URL) -> tuple[str, int]:
    return url.host.lower(), url.port or DEFAULT_PORTS.get(url.scheme, 0)


def block_label(connection: ApiConnection) -> str:
    """Return how messages name the block: `block 'name'`, or `the connection block` when unsaved."""
    name = connection._block_document_name
    return f"block {name!r}" if name else "the connection block"


class ConnectionAuth(httpx.Auth):
    """Add the block's credentials to requests for its own host and its trusted hosts, never others."""

    def __init__(self, connection: ApiConnection) -> None:
        self.connection = connection
        self.label = block_label(connection)
        self._home = _origin(httpx.URL(connection.base_url))
        self._trusted = frozenset(host.strip().lower() for host in connection.trusted_hosts if host.strip())
        self._credential_headers = frozenset({"authorization", connection.api_key_header.lower()})
        self._token: tuple[str, float] | None = None  # OAuth2 access token and when to stop using it
        self._lock = threading.Lock()

    def may_receive_credentials(self, url: httpx.URL) -> bool:
        """Return whether `url`'s host (and port) is the API's own or listed in `trusted_hosts`."""
        host, port = _origin(url)
        return (host, port) == self._home or host in self._trusted or f"{host}:{port}" in self._trusted

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send the request with credentials when its host may have them; renew a rejected OAuth2 token."""
        if not self.may_receive_credentials(request.url):
            yield request
            return
        request.headers.update(self._headers())
        response = yield request
        if response.status_code == 401 and self.connection.auth == "oauth2_client_credentials":
            self._token = None  # revoked or expired early: one more try with a fresh token
            request.headers.update(self._headers())
            yield request

    def strip_foreign_credentials(self, request: httpx.Request) -> None:
        """Remove credential headers from a request (a redirect included) to a host that may not have them."""
        if not self.may_receive_credentials(request.url):
            for name in self._credential_headers:
                request.headers.pop(name, None)

    def mask(self, text: str) -> str:
        """Return `text` with every secret of the block replaced by `***`."""
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _secrets(self) -> list[str]:
        c = self.connection
        values = [s.get_secret_value() for s in (c.api_key, c.bearer_token, c.password, c.client_secret) if s]
        # A server may echo the Authorization header: Basic sends `user:password` (and the OAuth2 token
        # request `client_id:client_secret`) base64-encoded, which the raw secret does not match.
        if c.password:
            values.append(_basic_pair(c.username or "", c.password.get_secret_value()))
        if c.client_secret:
            values.append(_basic_pair(c.client_id or "", c.client_secret.get_secret_value()))
        return [v for v in values + ([self._token[0]] if self._token else []) if len(v) >= 4]

    def _headers(self) -> dict[str, str]:
        c = self.connection
        match c.auth:
            case "api_key" if c.api_key:
                return {c.api_key_header: c.api_key.get_secret_value()}
            case "bearer" if c.bearer_token:
                return {"Authorization": f"Bearer {c.bearer_token.get_secret_value()}"}
            case "basic" if c.password:
                return {
                    "Authorization": "Basic " + _basic_pair(c.username or "", c.password.get_secret_value())
                }
            case "oauth2_client_credentials":
                return {"Authorization": f"Bearer {self._access_token()}"}
        return {}

    def _access_token(self) -> str:
        with self._lock:  # one fetch when several requests find the token expired
            if self._token is None or time.monotonic() >= self._token[1]:
                self._token = fetch_oauth2_token(self.connection, self.label)
            return self._token[0]


def _basic_pair(user: str, secret: str) -> str:
    return base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")


def fetch_oauth2_token(connection: ApiConnection, label: str) -> tuple[str, float]:
    """Return a client-credentials access token and the monotonic instant to renew it at."""
    url = httpx.URL(connection.token_url or "")
    form = {"grant_type": "client_credentials"} | ({"scope": connection.scope} if connection.scope else {})
    secret = connection.client_secret.get_secret_value() if connection.client_secret else ""
    where = f"POST {safe_url(url)} (OAuth2 token of {label})"
    try:
        with httpx.Client(timeout=connection.timeout_seconds, verify=tls_verify(connection)) as client:
            response = client.post(url, data=form, auth=(connection.client_id or "", secret))
    except httpx.HTTPError as exc:
        raise TokenUnavailableError(f"{where} failed: {type(exc).__name__} ({exc}).") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TokenUnavailableError(f"{where} answered {_status(response)}. Run the job again later.")
    token = _token_field(response) if response.is_success else None
    if token is None:
        raise SourceRejectedError(
            f"{where} answered {_status(response)} without an access token: {_snippet(response.text, [secret])}. "
            f"Check `token_url`, `client_id`, `client_secret` and `scope` of {label}."
        )
    lifetime = _expires_in(response)
    return token, time.monotonic() + max(lifetime - min(TOKEN_MARGIN_SECONDS, lifetime / 10), 0.0)


def _token_field(response: httpx.Response) -> str | None:
    try:
        token = response.json().get("access_token")
    except (ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and token else None


def _expires_in(response: httpx.Response) -> float:
    try:
        return float(response.json().get("expires_in", 3600))
    except (TypeError, ValueError):
        return 3600.0


def tls_verify(connection: ApiConnection) -> ssl.SSLContext | bool:
    """Return httpx's `verify`: off, the system store, or a context trusting the block's CA bundle."""
    if not connection.verify_tls:
        return False
    return ssl.create_default_context(cafile=connection.ca_bundle) if connection.ca_bundle else True


def open_client(connection: ApiConnection) -> httpx.Client:
    """Return a client for the API: base URL, timeout, TLS, default headers and host-bound credentials."""
    quiet_http_logs()  # again: a logging setup run after import may have reset the levels
    auth = ConnectionAuth(connection)
    return httpx.Client(
        base_url=connection.base_url,
        auth=auth,
        headers=connection.headers,
        timeout=connection.timeout_seconds,
        verify=tls_verify(connection),
        follow_redirects=True,
        # httpx re-sends the first request's headers on a redirect and strips only `Authorization`
        # across origins; this hook also runs for every redirect and removes the API key header too.
        event_hooks={"request": [auth.strip_foreign_credentials]},
    )


class _RetryableError(Exception):
    """A failure worth another attempt; `error` is what the caller gets when the attempts run out."""

    def __init__(self, error: ImportJobError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Call:
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
        auth = self.client.auth
        return auth.mask(text) if isinstance(auth, ConnectionAuth) else text

    def fix(self, status: int) -> str:
        auth = self.client.auth
        label = auth.label if isinstance(auth, ConnectionAuth) else "the connection block"
        return _status_fix(status, label)


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
    return _send_call(_Call(client, method.upper(), url, params, json, headers, max_bytes, stop_at), policy)


def _send_call(call: _Call, policy: RetryPolicy) -> httpx.Response:
    retrying = Retrying(
        retry=retry_if_exception_type(_RetryableError),
        wait=_backoff(policy),
        stop=stop_after_attempt(policy.max_attempts) | _StopAtDeadline(call.deadline),
        before_sleep=_log_retry(policy),
        reraise=True,
    )
    started = time.monotonic()
    try:
        return retrying(_attempt, call)
    except _RetryableError as exc:
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
    call = _Call(client, "GET", url, None, None, None, max_bytes, stop_at, destination)
    response = _send_call(call, policy)
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
        if isinstance(error, _RetryableError) and error.retry_after is not None:
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


def _attempt(call: _Call) -> httpx.Response:
    remaining = call.deadline - time.monotonic()
    request = call.client.build_request(
        call.method,
        call.url,
        params=call.params,
        json=call.json,
        headers=call.headers,
        timeout=_timeout(call, remaining),
    )
    if remaining <= 0:
        raise SourceUnavailableError(f"{_where(request)} was not sent: the call's deadline has passed.")
    try:
        response = call.client.send(request, stream=True)
    except TokenUnavailableError as exc:
        raise _RetryableError(exc) from exc
    except (httpx.TransportError, httpx.TooManyRedirects) as exc:
        raise _transport_failure(call, request, exc) from exc
    try:
        body = _read_capped(call, response)
    except httpx.TransportError as exc:
        raise _transport_failure(call, request, exc) from exc
    finally:
        response.close()
    result = _rebuilt(response, body)
    _check_status(call, result)
    return result


def _timeout(call: _Call, remaining: float) -> httpx.Timeout:
    limit = max(remaining, 0.001)
    current = call.client.timeout

    def cap(value: float | None) -> float:
        return limit if value is None else min(value, limit)

    return httpx.Timeout(
        connect=cap(current.connect), read=cap(current.read), write=cap(current.write), pool=cap(current.pool)
    )


def _transport_failure(call: _Call, request: httpx.Request, exc: httpx.HTTPError) -> Exception:
    where = f"{_where(request)} failed: {type(exc).__name__} ({call.mask(str(exc)) or 'no detail'})."
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.TooManyRedirects):
        return SourceRejectedError(f"{where} Check the call's path or URL and the connection's `base_url`.")
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if never_sent or call.idempotent:
        return _RetryableError(SourceUnavailableError(f"{where} The API is down, slow or unreachable."))
    return SourceUnavailableError(
        f"{where} Not sent again: the server may already have acted on this {call.method}. Check on the API "
        "side whether it did before running the job again; raise `timeout_seconds` of the connection if "
        "the API is slow."
    )


def _read_capped(call: _Call, response: httpx.Response) -> bytes:
    limit = call.max_bytes if response.is_success else ERROR_BODY_BYTES
    declared = response.headers.get("content-length", "")
    if response.is_success and declared.isdigit() and int(declared) > limit:
        raise _too_large(call, response, f" (it announced {int(declared):,})")
    if response.is_success and call.destination is not None:
        _save(call, response)
        return b""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            if not response.is_success:
                break  # an error page: its start is enough for the message
            raise _too_large(call, response, "")
        _check_reading_deadline(call, response)
        chunks.append(chunk)
    return b"".join(chunks)


def _save(call: _Call, response: httpx.Response) -> None:
    assert call.destination is not None
    digest = hashlib.sha256()
    size = 0
    call.destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with call.destination.open("wb") as file:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > call.max_bytes:
                    raise _too_large(call, response, "")
                _check_reading_deadline(call, response)
                digest.update(chunk)
                file.write(chunk)
    except BaseException:
        call.destination.unlink(missing_ok=True)  # never leave half a file that looks like a download
        raise
    call.saved.update(size=size, sha256=digest.hexdigest())


def _check_reading_deadline(call: _Call, response: httpx.Response) -> None:
    # Per-read timeouts never fire on a body that trickles in a byte at a time: the deadline does.
    if time.monotonic() > call.deadline:
        raise SourceUnavailableError(
            f"{_where(response.request)} was still sending its body when the call's deadline passed "
            "(a body that trickles in). Raise `http.call_deadline_seconds` if the API is that slow, or ask "
            "its owner."
        )


def _too_large(call: _Call, response: httpx.Response, announced: str) -> BadFileError:
    return BadFileError(
        f"{_where(response.request)} answered more than {call.max_bytes:,} bytes{announced}; refused. "
        "Raise the call's `max_bytes` if responses this large are expected, or ask for smaller pages."
    )


def _rebuilt(response: httpx.Response, body: bytes) -> httpx.Response:
    # The body is already decompressed: drop the headers that would make httpx decode it again.
    dropped = {"content-encoding", "content-length", "transfer-encoding"}
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
    extensions = {k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")}
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request, extensions=extensions
    )


def _check_status(call: _Call, response: httpx.Response) -> None:
    status = response.status_code
    if response.is_success:
        return
    text = f"{_where(response.request)} answered {_status(response)}: {_snippet(call.mask(response.text))}."
    if status != 429 and status < 500:
        raise SourceRejectedError(f"{text} {call.fix(status)}")
    error = SourceUnavailableError(f"{text} {call.fix(status)}")
    if status in (RETRY_STATUSES_IDEMPOTENT if call.idempotent else RETRY_STATUSES_UNSAFE):
        raise _RetryableError(error, retry_after_seconds(response.headers.get("retry-after")))
    raise SourceUnavailableError(
        f"{error} Not sent again: the server may already have acted on this {call.method}; check on the API side."
    )


STATUS_FIXES: Mapping[int, str] = {
    400: "Check the call's query parameters, headers and JSON body.",
    401: "Check the credentials of {block} (`auth` and its key, token, password or client secret).",
    403: "The credentials were accepted but may not use this path: ask the API's owner for access, or check the credentials of {block}.",
    404: "Check the call's path and the `base_url` of {block}.",
    405: "Check the call's method.",
    429: "The API is throttling requests: run the job later or less often.",
}


def _status_fix(status: int, block: str) -> str:
    if status in STATUS_FIXES:
        return STATUS_FIXES[status].format(block=block)
    if status >= 500:
        return "The API failed or is overloaded: run the job again later, or ask the API's owner."
    return "Check the call's path, parameters, headers and body."


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


def _where(request: httpx.Request) -> str:
    return f"{request.method} {safe_url(request.url)}"


def _status(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def _snippet(text: str, secrets: list[str] | None = None) -> str:
    for secret in secrets or []:
        text = text.replace(secret, "***") if secret else text
    flat = " ".join(text.split())
    return (
        repr(flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS] + "...") if flat else "(empty body)"
    )


def decode_json(response: httpx.Response) -> JsonValue:
    """Return the decoded JSON body (None for 204); raise BadFileError for HTML, empty or broken bodies."""
    if response.status_code == 204:
        return None
    where = _where(response.request)
    kind = response.headers.get("content-type", "")
    kind_text = f"content-type {kind!r}" if kind else "no content-type"
    body = response.content
    if "html" in kind.lower() or body.lstrip()[:1] == b"<":
        raise BadFileError(
            f"{where} answered an HTML page ({kind_text}), not JSON: {_snippet(response.text)}. Check the "
            "call's path and the connection's `base_url`: a login or error page often means a wrong URL."
        )
    if not body.strip():
        raise BadFileError(f"{where} answered an empty body ({kind_text}), not JSON. Check the call's path.")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadFileError(
            f"{where} answered malformed JSON ({exc}; {kind_text}): {_snippet(response.text)}. Check the "
            "call's path; if it is right, the API sends broken JSON: tell its owner."
        ) from exc
