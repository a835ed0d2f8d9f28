"""A throwaway REST API on 127.0.0.1 in the seed's paged shape (`paging` + `elements`), for the demo."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class LocalApiServer:
    """Where the local API listens."""

    base_url: str


@contextmanager
def local_api_server(records_file: Path, *, api_key: str) -> Iterator[LocalApiServer]:
    """Serve `GET /products?pageNumber=N&pageSize=S` (first page 1) until the block exits."""
    records: list[Any] = json.loads(records_file.read_text(encoding="utf-8"))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/products":
                return self._answer(404, {"error": "not found"})
            if self.headers.get("X-API-Key") != api_key:
                return self._answer(401, {"error": "missing or wrong X-API-Key"})
            query = parse_qs(url.query)
            number, size = int(query["pageNumber"][0]), int(query["pageSize"][0])
            page = records[(number - 1) * size : number * size]
            total = -(-len(records) // size)
            paging = {
                "pageNumber": number,
                "pageSize": size,
                "totalPages": total,
                "totalRecords": len(records),
            }
            return self._answer(200, {"paging": paging, "elements": page})

        def _answer(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            return  # the access log would print query strings; the demo keeps quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LocalApiServer(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
