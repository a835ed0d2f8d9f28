"""Which hosts a download URL taken from a response may reach, and what a foreign host's answer may show.

The URL comes from the API's answer, and the API's block (its `base_url`, `trusted_hosts`) is editable
by whoever can start a run: left alone, one answer could send the worker to an internal address or a
cloud metadata service and put what it says in the run's error, report and artifacts. So the worker's
environment, never a block or a run, widens the rule:

- hosts: the API's own (`base_url`'s host and port) and the block's `trusted_hosts`, plus
  `DATAHUB_DOWNLOAD_HOSTS` (comma-separated `host` or `host:port`); any other host is refused before a
  request is sent, a redirect's target included;
- addresses: a host resolving to a private, loopback, link-local (metadata services), multicast or
  reserved address is refused unless `DATAHUB_DOWNLOAD_ALLOW_PRIVATE=1`;
- bodies: a failed answer from a host other than the API's own or trusted ones is never quoted.

The address check resolves the name before httpx connects (which resolves it again), so a DNS name
that changes its answer in between is not caught: the host list is the first line of defence.
"""

from __future__ import annotations

import ipaddress
import os
import socket

import httpx

from tasks.api.http.auth import ConnectionAuth, origin
from tasks.api.http.retry import RetryableError, retry_after_seconds
from tasks.api.http.status import request_label, status_text
from tasks.errors import SourceRejectedError, SourceUnavailableError

__all__ = ["HOSTS_VAR", "PRIVATE_VAR", "DownloadGuard"]

HOSTS_VAR = "DATAHUB_DOWNLOAD_HOSTS"
PRIVATE_VAR = "DATAHUB_DOWNLOAD_ALLOW_PRIVATE"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def _extra_hosts() -> frozenset[str]:
    listed = os.environ.get(HOSTS_VAR, "")
    return frozenset(host.strip().lower() for host in listed.split(",") if host.strip())


def _private_allowed() -> bool:
    return os.environ.get(PRIVATE_VAR, "").strip().lower() in ("1", "true", "yes")


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope (`fe80::1%eth0`) is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class DownloadGuard:
    """httpx event hooks of a download call's client: refuse hosts not allowed, never quote foreign bodies."""

    def __init__(self, auth: ConnectionAuth | None) -> None:
        self.auth = auth

    def install(self, client: httpx.Client) -> None:
        """Add the hooks to `client` (its request hooks also run for every redirect)."""
        hooks = client.event_hooks
        client.event_hooks = {
            "request": [*hooks.get("request", []), self.check_request],
            "response": [*hooks.get("response", []), self.check_response],
        }

    def _trusted(self, url: httpx.URL) -> bool:
        return self.auth is not None and self.auth.may_receive_credentials(url)

    def check_request(self, request: httpx.Request) -> None:
        """Raise `SourceRejectedError` when the request's host or address is not one a download may reach."""
        url = request.url
        host, port = origin(url)
        where = request_label(request)
        extra = _extra_hosts()
        if not (self._trusted(url) or host in extra or f"{host}:{port}" in extra):
            raise SourceRejectedError(
                f"{where} was not sent: a download URL taken from a response may reach only the API's own "
                f"host, the connection's `trusted_hosts` and the hosts the worker lists in `{HOSTS_VAR}` "
                f"(it protects internal services from a hostile answer). Add `{host}:{port}` to "
                f"`{HOSTS_VAR}` on the worker if this host is meant to serve the files."
            )
        if _private_allowed():
            return
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return  # not resolvable: the request fails as a connection error, nothing is reached
        internal = sorted({str(info[4][0]) for info in found if _internal(str(info[4][0]))})
        if internal:
            raise SourceRejectedError(
                f"{where} was not sent: {host} resolves to a private, loopback or link-local address "
                f"({', '.join(internal)}), which a download URL taken from a response may not reach "
                f"unless the worker allows it. Set `{PRIVATE_VAR}=1` on the worker if the API serves "
                "its files from the internal network."
            )

    def check_response(self, response: httpx.Response) -> None:
        """Fail a foreign host's error answer without its body (the shared error would quote it)."""
        if response.status_code < 400 or self._trusted(response.request.url):
            return
        status = response.status_code
        text = (
            f"{request_label(response.request)} answered {status_text(response)}; its body is not shown, "
            "as that host is not the API's own nor a trusted one."
        )
        if status in RETRY_STATUSES:
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise RetryableError(SourceUnavailableError(f"{text} Run the job later."), retry_after)
        raise SourceRejectedError(f"{text} Check the download URL the API gave.")
