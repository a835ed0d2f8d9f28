"""A throwaway REST API on 127.0.0.1 for the demo and the sample deployments.

Two partners in one server, both behind an `X-API-Key` header:
- the PIM, `GET /products?pageNumber=N&pageSize=S` in the seed's paged shape (`paging` + `elements`,
  first page 1); an optional `delaySeconds` (at most 30) makes each answer that slow, which the
  acceptance suite uses for a busy job;
- the ERP's offers export in the seed's three steps: `POST /offers/generate` answers an
  `invocationId`, `GET /offers/invocations/{id}` answers `statusFile: AVAILABLE` and a `urlFile`,
  and that URL serves the export as a `;` CSV.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_DELAY_SECONDS = 30.0


@dataclass(frozen=True)
class LocalApiServer:
    """Where the local API listens."""

    base_url: str


def _products_page(records: list[Any], query: dict[str, list[str]]) -> dict[str, Any]:
    number, size = int(query["pageNumber"][0]), int(query["pageSize"][0])
    total = -(-len(records) // size)
    paging = {"pageNumber": number, "pageSize": size, "totalPages": total, "totalRecords": len(records)}
    return {"paging": paging, "elements": records[(number - 1) * size : number * size]}


@contextmanager
def local_api_server(
    records_file: Path, *, api_key: str, offers_export: Path | None = None, port: int = 0
) -> Iterator[LocalApiServer]:
    """Serve the sample API on 127.0.0.1 (`port` 0: a free one) until the block exits."""
    records: list[Any] = json.loads(records_file.read_text(encoding="utf-8"))
    export = offers_export.read_bytes() if offers_export is not None else None
    invocations: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        server: ThreadingHTTPServer

        def do_GET(self) -> None:
            if not self._authorized():
                return
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/products":
                time.sleep(min(float(query.get("delaySeconds", ["0"])[0]), MAX_DELAY_SECONDS))
                return self._json(200, _products_page(records, query))
            invocation = url.path.removeprefix("/offers/invocations/")
            if export is not None and invocation in invocations:
                file_url = f"http://127.0.0.1:{self.server.server_port}/offers/files/{invocation}.csv"
                return self._json(200, {"statusFile": "AVAILABLE", "urlFile": file_url})
            if (
                export is not None
                and url.path.removeprefix("/offers/files/").removesuffix(".csv") in invocations
            ):
                return self._send(200, export, "text/csv; charset=utf-8")
            return self._json(404, {"error": f"no resource {url.path}"})

        def do_POST(self) -> None:
            if not self._authorized():
                return
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if export is None or urlsplit(self.path).path != "/offers/generate":
                return self._json(404, {"error": "not found"})
            invocation = f"inv-{len(invocations) + 1}"
            invocations.add(invocation)
            return self._json(202, {"invocationId": invocation})

        def _authorized(self) -> bool:
            if self.headers.get("X-API-Key") == api_key:
                return True
            self._json(401, {"error": "missing or wrong X-API-Key"})
            return False

        def _json(self, status: int, body: Any) -> None:
            self._send(status, json.dumps(body).encode("utf-8"), "application/json")

        def _send(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            return  # the access log would print query strings; the demo keeps quiet

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LocalApiServer(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
