"""Call REST APIs with httpx: credentials for trusted hosts only, one retry layer, capped bodies.

`open_client` (``client``) builds a client from an ``ApiConnection`` block, its credentials (``auth``)
added for the API's own and trusted hosts only (over https only, unless the base URL is http) and
masked in every message; `send` (``retry``) makes one request with tenacity retries (only for failures
that may pass, and never re-sending a POST or PATCH that the server may have acted on); `decode_json`
(``body``) reads its body; `download` streams a file to disk under the same rules, hashing it on the way. Every read of a body checks the size cap and the
call's deadline, so neither an endless body nor one that trickles in a byte at a time can hold a run.
Failures become the errors of ``tasks.errors`` with the method, the URL without its query string, the
status, a short body and the fix (``status``); never a secret.
"""

from __future__ import annotations

from tasks.api.http.auth import ConnectionAuth, block_label, secret_mask, tls_verify
from tasks.api.http.body import DEFAULT_MAX_BYTES, decode_json
from tasks.api.http.client import open_client
from tasks.api.http.retry import Download, RetryPolicy, download, retry_after_seconds, send
from tasks.api.http.status import safe_url

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ConnectionAuth",
    "Download",
    "RetryPolicy",
    "block_label",
    "decode_json",
    "download",
    "open_client",
    "retry_after_seconds",
    "safe_url",
    "secret_mask",
    "send",
    "tls_verify",
]
