"""Benchmark an API job's paging call against a local API in the seed's `paging` + `elements` shape.

    python -m bench.api_paging                      # all three measurements below, a minute or so
    python -m bench.api_paging --only pages --pages 2399
    python -m bench.api_paging --only records --records 100000 --page-size 100

- pages:    the seed's example, 1-record pages (`pageNumber`/`pageSize`/`$.paging.totalPages`/
            `$.elements`, first page 1), fetched one by one (`concurrency: 1`): pages/s of the
            flow's paging step (request, retries layer, size cap, JSON decode, spool to gzip NDJSON).
- latency:  the same with `--latency-ms` (default 20) added to every response, `concurrency` 1 vs 4 and 8
            (or `--concurrency N ...`): the speed-up of concurrent paging.
- records:  `--records` products (16 fields each) in pages of `--page-size`, 14 mapped fields: fetch and
            spool, then map (`RecordMapper`) and validate + load into a fresh SQLite hub database
            (`import_batches`, the CSV job's load path): records/s of each stage and end to end.
- flow:     (only with `--only flow`, run through `./dev python` so Prefect has its home) the whole
            flow, `import_json_from_api`, on the seed's example (`--pages` 1-record pages) and on
            `--records` in pages of `--page-size`, into a fresh SQLite hub: the report's run time
            (Prefect's ephemeral server is started first, outside the timing).

The API runs in its own process (`ThreadingHTTPServer`, HTTP/1.1 keep-alive) so that it does not
share the client's interpreter lock. Except for `flow`, no Prefect server is involved: the steps are
the flow's own functions, called directly. Everything written goes to `.state/bench/`.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import shutil
import socket
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

STATE = Path(__file__).resolve().parents[1] / ".state" / "bench"
MAPPING = {  # 14 fields: plain dotted keys, an index path and a `[*]` path
    "$.productId": "productExternalId",
    "$.name": "productNames",
    "$.description": "productDescriptions",
    "$.brand": "productBrand",
    "$.nomenclatures[0].nomenclatureId": "productClassificationCategoryId",
    "$.unit": "productUnit",
    "$.eans[*]": "productTags",
    "$.isDeleted": "deletedProduct",
    "$.isEnable": "inactiveProduct",
    "$.stores[*]": "storeExternalIds",
    "$.variant.id": "variantExternalId",
    "$.variant.name": "variantNames",
    "$.variant.price": "variantPrice",
    "$.variant.weight": "variantWeight",
}


def product(n: int) -> dict[str, Any]:
    """Return the seed's product element (longer), record `n`."""
    return {
        "productId": f"{n:07d}",
        "internalRef": f"REF-{n:07d}",
        "name": f"red cotton shirt {n}",
        "description": "A shirt, in red cotton; machine washable, 40 degrees.",
        "brand": "Clothes & Co",
        "unit": "PIECE",
        "isEnable": True,
        "isDeleted": False,
        "eans": ["0442301152930", f"{n:013d}"],
        "stores": ["S1", "S2"],
        "nomenclatures": [{"nomenclatureId": "0001-0001-0028-0010", "type": "CL", "name": "Clothing"}],
        "variant": {
            "id": f"V{n:07d}",
            "name": f"red shirt {n} M",
            "price": f"{10 + n % 90}.50",
            "weight": "0.2",
        },
        "imagesUrls": None,
        "createdAt": "2026-01-31T08:00:00Z",
    }


def serve(port_out: Any, total: int, latency: float) -> None:
    """Run the sample API until killed; send the port it listens on through `port_out`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: Nagle would add 40 ms each

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            number, size = int(query["pageNumber"][0]), int(query["pageSize"][0])
            start = (number - 1) * size
            elements = [product(n) for n in range(start, min(start + size, total))]
            pages = -(-total // size)
            paging = {"pageNumber": number, "pageSize": size, "totalPages": pages, "totalRecords": total}
            body = json.dumps({"paging": paging, "elements": elements}).encode()
            if latency:
                time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.send(server.server_address[1])
    server.serve_forever()


class LocalApi:
    """The sample API in a child process."""

    def __init__(self, total: int, latency_ms: float) -> None:
        receive, send = multiprocessing.Pipe(duplex=False)
        self.process = multiprocessing.Process(
            target=serve, args=(send, total, latency_ms / 1000), daemon=True
        )
        self.process.start()
        self.port = int(receive.recv())
        socket.create_connection(("127.0.0.1", self.port), timeout=5).close()

    def __enter__(self) -> LocalApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join()


def fetch(port: int, page_size: int, concurrency: int, work: Path) -> tuple[float, Any]:
    """Run the flow's paging step; return its seconds and the call's outcome (pages, spool)."""
    from blocks.api import ApiConnection
    from tasks.api.calls import ApiCall
    from tasks.api.http import open_client
    from tasks.api.runner import CallRequest, HttpSettings, page_call

    paging = {
        "kind": "paging",
        "page_number_param": "pageNumber",
        "page_size_param": "pageSize",
        "total_pages_path": "$.paging.totalPages",
        "first_page": 1,
        "page_size": page_size,
        "content_path": "$.elements",
        "concurrency": concurrency,
        "max_pages": 1_000_000,
    }
    call = ApiCall.model_validate({"name": "products", "path": "products", "pattern": paging})
    http = HttpSettings()
    connection = ApiConnection(base_url=f"http://127.0.0.1:{port}/")
    with open_client(connection) as client:
        request = CallRequest(client, call, "products", {}, {}, None, http, http.policy().deadline())
        started = time.perf_counter()
        assert call.pattern.kind == "paging"
        outcome = page_call(request, call.pattern, work, None)  # type: ignore[arg-type]
        return time.perf_counter() - started, outcome


def load(spool: Any, work: Path) -> tuple[float, float, int]:
    """Map the spooled records, then validate and load them into a fresh SQLite hub database."""
    import sqlalchemy as sa

    from tasks.api.records import RecordMapper
    from tasks.hub.entities import entity
    from tasks.hub.load import LoadSettings, import_batches
    from tasks.hub.mapping import CellFormats

    mapper = RecordMapper(MAPPING)
    started = time.perf_counter()
    rows = sum(frame.height for frame in mapper.batches(spool.records_iter()))
    map_seconds = time.perf_counter() - started
    database = work / "hub.db"
    database.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{database}")
    settings = LoadSettings(
        job="bench-api",
        run_id="bench",
        entity="products",
        mapping=None,
        formats=CellFormats(),
        reject_threshold_percent=100.0,
    )
    plan = mapper.plan(entity("products"), name="products")
    started = time.perf_counter()
    report, _ = import_batches(
        engine,
        "products",
        mapper.batches(spool.records_iter()),
        plan,
        settings,
        rejects_dir=work / "rejects",
        logger=logging.getLogger("bench"),  # type: ignore[arg-type]
    )
    engine.dispose()
    assert report.status == "SUCCESS", report.message
    return map_seconds, time.perf_counter() - started, rows


def run_flow(port: int, page_size: int, work: Path) -> tuple[float, Any]:
    """Run the whole flow on the local API into a fresh SQLite hub; return the run's seconds and report."""
    from pydantic import SecretStr

    from blocks.api import ApiConnection
    from blocks.database import DatabaseConnection
    from flows.import_json_from_api import ApiImportJob, import_json_from_api
    from tasks.run.report import run_job

    ApiConnection(base_url=f"http://127.0.0.1:{port}/").save("bench-api", overwrite=True)
    database = work / f"hub-{page_size}.db"
    DatabaseConnection(url=SecretStr(f"sqlite:///{database}")).save("bench-hub", overwrite=True)
    paging = {
        "kind": "paging",
        "page_number_param": "pageNumber",
        "page_size_param": "pageSize",
        "total_pages_path": "$.paging.totalPages",
        "first_page": 1,
        "page_size": page_size,
        "content_path": "$.elements",
        "max_pages": 1_000_000,
    }
    job = ApiImportJob.model_validate(
        {
            "name": f"bench-api-{page_size}",
            "connection": "bench-api",
            "entity": "products",
            "calls": [{"name": "products", "path": "products", "pattern": paging}],
            "mapping": MAPPING,
            "target": "bench-hub",
        }
    )
    state, report = run_job(import_json_from_api, job)
    assert report is not None, state.message
    assert state.is_completed(), state.message
    return float(report.seconds), report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["pages", "latency", "records", "flow"])
    parser.add_argument("--pages", type=int, default=2399, help="1-record pages of the pages measurement")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--latency-pages", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    STATE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=STATE, prefix="api-paging-"))
    try:
        if args.only in (None, "pages"):
            with LocalApi(args.pages, 0) as api:
                seconds, outcome = fetch(api.port, 1, 1, work)
            print(
                f"pages:   {outcome.pages:,} pages of 1 record, sequential: {seconds:.2f} s, "
                f"{outcome.pages / seconds:,.0f} pages/s"
            )
        if args.only in (None, "latency"):
            with LocalApi(args.latency_pages, args.latency_ms) as api:
                one, outcome = fetch(api.port, 1, 1, work)
                print(
                    f"latency: {outcome.pages:,} pages, +{args.latency_ms:.0f} ms each: sequential "
                    f"{one:.2f} s ({outcome.pages / one:,.0f} pages/s)"
                )
                for concurrency in args.concurrency:
                    many, _ = fetch(api.port, 1, concurrency, work)
                    print(
                        f"         concurrency {concurrency}: {many:.2f} s ({outcome.pages / many:,.0f} "
                        f"pages/s), {one / many:.1f}x faster"
                    )
        if args.only in (None, "records"):
            with LocalApi(args.records, 0) as api:
                fetch_seconds, outcome = fetch(api.port, args.page_size, 4, work)
            map_seconds, load_seconds, rows = load(outcome.spool, work)
            total = fetch_seconds + load_seconds
            n = outcome.spool.records
            print(
                f"records: {n:,} records in {outcome.pages:,} pages of {args.page_size}, 14 mapped fields: "
                f"fetch+spool {fetch_seconds:.2f} s ({n / fetch_seconds:,.0f} rec/s), map alone "
                f"{map_seconds:.2f} s ({n / map_seconds:,.0f} rec/s), map+validate+load SQLite "
                f"{load_seconds:.2f} s ({n / load_seconds:,.0f} rec/s); end to end {n / total:,.0f} rec/s "
                f"({rows:,} rows); peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
            )
        if args.only == "flow":
            with LocalApi(100, 0) as api:
                run_flow(api.port, 50, work)  # warm up: starts Prefect's ephemeral server
            with LocalApi(args.pages, 0) as api:
                seconds, report = run_flow(api.port, 1, work)
            print(
                f"flow:    seed example, {report.pages:,} pages of 1 record: run {seconds:.1f} s, "
                f"{report.pages / seconds:,.0f} pages/s, {report.total('inserted') / seconds:,.0f} records/s"
            )
            with LocalApi(args.records, 0) as api:
                seconds, report = run_flow(api.port, args.page_size, work)
            print(
                f"flow:    {report.total('inserted'):,} records in {report.pages:,} pages of {args.page_size}, "
                f"14 mapped fields: run {seconds:.1f} s, {report.total('inserted') / seconds:,.0f} records/s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
