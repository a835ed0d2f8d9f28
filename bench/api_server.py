"""A local REST API in the seed's paged shape (`paging` + `elements`), for the benchmarks.

`GET /<dataset>?pageNumber=N&pageSize=S` (first page 1) answers
`{"paging": {pageNumber, pageSize, totalPages, totalRecords}, "elements": [...]}`. Each record is
about 1 KB of nested JSON (names per language, a variant with a list of EANs, images, attributes),
built once with a fixed seed and kept pre-encoded, so a page costs the server a join, not a dump:
the benchmark measures the client. Datasets: `products` (the big one), `seed-products` (2,399 records:
the seed's example of 2,399 pages of 1 record), and `slow-products` (its first 20,000 records,
every answer delayed by `latency_seconds`). The server runs in the benchmark runner's process, never in the
process measured.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SEED = 20261123
SEED_RECORDS = 2_399
SLOW_RECORDS = 20_000

# The 14 fields mapped by the benchmark's API jobs (ours and dlt's): JSONPath -> products field.
API_MAPPING = {
    "$.productId": "productExternalId",
    "$.names.fr": "productNames",
    "$.brand.name": "productBrand",
    "$.classification.id": "productClassificationCategoryId",
    "$.deleted": "deletedProduct",
    "$.variant.id": "variantExternalId",
    "$.variant.names.fr": "variantNames",
    "$.variant.sku": "variantExternalSku",
    "$.variant.eans[*]": "variantEan",
    "$.variant.price": "variantPrice",
    "$.variant.weight": "variantWeight",
    "$.variant.availableFrom": "variantAvailableFrom",
    "$.variant.updatedAt": "variantUpdatedAt",
    "$.variant.inactive": "inactiveVariant",
}

_WORDS = ("chaise", "table", "lampe", "étagère", "fauteuil", "tabouret", "canapé", "buffet", "commode")


def make_records(count: int, seed: int = SEED) -> list[bytes]:
    """Return `count` records (about 1 KB each), JSON-encoded, the same for the same seed."""
    rng = random.Random(seed)
    records = []
    for number in range(count):
        product = number // 2  # two variants per product: parents repeat, as in the seed's data
        words = " ".join(rng.choice(_WORDS) for _ in range(4))
        record: dict[str, Any] = {
            "productId": f"P{product:08d}",
            "names": {
                "fr": f"{words.capitalize()} n°{product}",
                "en": f"Item {product}",
                "de": f"Artikel {product}",
            },
            "brand": {"id": f"B{product % 97:03d}", "name": f"Marque {product % 97}"},
            "classification": {
                "id": f"C{product % 500:04d}",
                "path": ["maison", "mobilier", words.split()[0]],
            },
            "deleted": rng.random() < 0.02,
            "descriptions": [
                {"lang": "fr", "text": f"{words} " * 12},
                {"lang": "en", "text": "lorem ipsum " * 12},
            ],
            "images": [f"https://cdn.example.com/img/{product}/{i}.jpg" for i in range(3)],
            "attributes": [{"code": f"A{i}", "value": rng.randint(0, 999)} for i in range(6)],
            "variant": {
                "id": f"V{number:09d}",
                "names": {"fr": f"{words} taille {number % 5}", "en": f"Size {number % 5}"},
                "sku": f"SKU-{number:09d}",
                "eans": [f"{rng.randrange(10**12, 10**13)}" for _ in range(rng.randint(0, 4))],
                "price": f"{rng.randint(100, 99_999) / 100:.2f}",
                "weight": f"{rng.randint(10, 50_000) / 1000:.3f}",
                "availableFrom": f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2015, 2026)}",
                "updatedAt": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:15:00Z",
                "inactive": rng.random() < 0.1,
            },
        }
        records.append(json.dumps(record, ensure_ascii=False).encode("utf-8"))
    return records


@dataclass(frozen=True)
class BenchApi:
    """Where the benchmark API listens."""

    base_url: str
    records: int


@contextmanager
def bench_api_server(
    records: int, *, seed_records: int = SEED_RECORDS, latency_seconds: float = 0.02
) -> Iterator[BenchApi]:
    """Serve the datasets (see the module's docstring) on a free loopback port until the block exits."""
    big = make_records(max(records, seed_records))
    datasets = {"products": big, "slow-products": big[:SLOW_RECORDS], "seed-products": big[:seed_records]}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real API behind a proxy

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in two writes: with Nagle's algorithm on, the second waits for
            # the client's delayed ACK (40 ms a page on Linux loopback).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            found = datasets.get(url.path.strip("/"))
            if found is None:
                return self._answer(404, b'{"error": "not found"}')
            query = parse_qs(url.query)
            number, size = int(query["pageNumber"][0]), int(query["pageSize"][0])
            if url.path.strip("/") == "slow-products":
                time.sleep(latency_seconds)
            page = found[(number - 1) * size : number * size]
            paging = {
                "pageNumber": number,
                "pageSize": size,
                "totalPages": -(-len(found) // size),
                "totalRecords": len(found),
            }
            body = b'{"paging": %s, "elements": [%s]}' % (json.dumps(paging).encode(), b", ".join(page))
            return self._answer(200, body)

        def _answer(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield BenchApi(f"http://127.0.0.1:{server.server_port}/", records)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
