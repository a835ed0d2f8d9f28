"""What a failed request says: the method and URL without its query, the status, a short body, the fix."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

SNIPPET_CHARS = 200


def safe_url(url: httpx.URL) -> httpx.URL:
    """Return the URL without query string, fragment or user info: safe for messages and logs."""
    return url.copy_with(query=None, fragment=None, userinfo=b"")


STATUS_FIXES: Mapping[int, str] = {
    400: "Check the call's query parameters, headers and JSON body.",
    401: "Check the credentials of {block} (`auth` and its key, token, password or client secret).",
    403: "The credentials were accepted but may not use this path: ask the API's owner for access, or check the credentials of {block}.",
    404: "Check the call's path and the `base_url` of {block}.",
    405: "Check the call's method.",
    429: "The API is throttling requests: run the job later or less often.",
}


def status_fix(status: int, block: str) -> str:
    if status in STATUS_FIXES:
        return STATUS_FIXES[status].format(block=block)
    if status >= 500:
        return "The API failed or is overloaded: run the job again later, or ask the API's owner."
    return "Check the call's path, parameters, headers and body."


def request_label(request: httpx.Request) -> str:
    return f"{request.method} {safe_url(request.url)}"


def status_text(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def snippet(text: str) -> str:
    """Return the start of a body for a message; mask it first (`blocks.masking.mask`), before it is cut."""
    flat = " ".join(text.split())
    return (
        repr(flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS] + "...") if flat else "(empty body)"
    )
