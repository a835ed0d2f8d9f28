"""Reading a response's body: capped in size and by the call's deadline, a download streamed to disk
and hashed on the way, JSON decoded (HTML, empty or broken bodies refused with the fix)."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from tasks.api.http.status import request_label, snippet
from tasks.api.jsonpath import JsonValue
from tasks.errors import (
    BadFileError,
    SourceUnavailableError,
)

if TYPE_CHECKING:
    from tasks.api.http.retry import RequestCall

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


ERROR_BODY_BYTES = 4096  # enough of an error page for the message


def read_capped(call: RequestCall, response: httpx.Response) -> bytes:
    limit = call.max_bytes if response.is_success else ERROR_BODY_BYTES
    declared = response.headers.get("content-length", "")
    if response.is_success and declared.isdigit() and int(declared) > limit:
        raise too_large(call, response, f" (it announced {int(declared):,})")
    if response.is_success and call.destination is not None:
        save_body(call, response)
        return b""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            if not response.is_success:
                break  # an error page: its start is enough for the message
            raise too_large(call, response, "")
        check_reading_deadline(call, response)
        chunks.append(chunk)
    return b"".join(chunks)


def save_body(call: RequestCall, response: httpx.Response) -> None:
    assert call.destination is not None
    digest = hashlib.sha256()
    size = 0
    call.destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with call.destination.open("wb") as file:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > call.max_bytes:
                    raise too_large(call, response, "")
                check_reading_deadline(call, response)
                digest.update(chunk)
                file.write(chunk)
    except BaseException:
        call.destination.unlink(missing_ok=True)  # never leave half a file that looks like a download
        raise
    call.saved.update(size=size, sha256=digest.hexdigest())


def check_reading_deadline(call: RequestCall, response: httpx.Response) -> None:
    # Per-read timeouts never fire on a body that trickles in a byte at a time: the deadline does.
    if time.monotonic() > call.deadline:
        raise SourceUnavailableError(
            f"{request_label(response.request)} was still sending its body when the call's deadline passed "
            "(a body that trickles in). Raise `http.call_deadline_seconds` if the API is that slow, or ask "
            "its owner."
        )


def too_large(call: RequestCall, response: httpx.Response, announced: str) -> BadFileError:
    return BadFileError(
        f"{request_label(response.request)} answered more than {call.max_bytes:,} bytes{announced}; refused. "
        "Raise the call's `max_bytes` if responses this large are expected, or ask for smaller pages."
    )


def rebuilt(response: httpx.Response, body: bytes) -> httpx.Response:
    # The body is already decompressed: drop the headers that would make httpx decode it again.
    dropped = {"content-encoding", "content-length", "transfer-encoding"}
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
    extensions = {k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")}
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request, extensions=extensions
    )


def decode_json(response: httpx.Response, mask: Callable[[str], str]) -> JsonValue:
    """Return the decoded JSON body (None for 204); raise BadFileError for HTML, empty, broken or too deep bodies.

    `mask` hides the connection's secrets in the start of the body that the error quotes (a login page or
    a broken body may echo the credential it was sent): `secret_mask(client)`.
    """
    if response.status_code == 204:
        return None
    where = request_label(response.request)
    kind = response.headers.get("content-type", "")
    kind_text = f"content-type {kind!r}" if kind else "no content-type"
    body = response.content
    if "html" in kind.lower() or body.lstrip()[:1] == b"<":
        raise BadFileError(
            f"{where} answered an HTML page ({kind_text}), not JSON: {snippet(mask(response.text))}. Check the "
            "call's path and the connection's `base_url`: a login or error page often means a wrong URL."
        )
    if not body.strip():
        raise BadFileError(f"{where} answered an empty body ({kind_text}), not JSON. Check the call's path.")
    try:
        return json.loads(body)
    except RecursionError:
        raise BadFileError(
            f"{where} answered JSON nested deeper than Python can read ({sys.getrecursionlimit():,} levels "
            "or more); refused. Check the call's path; if it is right, the API sends a broken or hostile "
            "body: tell its owner."
        ) from None
    except ValueError as exc:
        raise BadFileError(
            f"{where} answered malformed JSON ({exc}; {kind_text}): {snippet(mask(response.text))}. Check the "
            "call's path; if it is right, the API sends broken JSON: tell its owner."
        ) from exc
