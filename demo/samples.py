"""Serve the sample sources of the sample deployments of `prefect.yaml`, on this machine.

`python -m demo.samples` (or `./dev samples`) lays fresh sample files into a folder, serves them over
FTP and serves the sample REST API (`demo.api_server`), then writes the block settings that point
`erp-ftp`, `pim-api`, `erp-api`, `hub-db` and `shop-reindex` at them, for
`python -m deployments blocks --file <folder>/blocks.yaml`. It serves until it is stopped (Ctrl-C).

What each sample deployment then finds (docs/server.md runs them in this order):
- `products-from-erp-ftp`: two product files in `products/inbound` (bulk mode), one bad price in 15
  rows (a PARTIAL run);
- `products-from-pim-api`: the PIM's paged products;
- `offers-from-erp-api`: the ERP's full offers export, which creates the offers;
- `offers-from-erp-ftp`: `offers/offers.csv`, an update-only file (key, stock, price), as partners
  send them: it updates the offers the export created (on an empty hub its keys are new and the
  required-for-creation fields are missing, so it fails, F-E-001);
- `nightly-shop-reindex`: a harmless echo as the shop's re-index command.
The credentials are throwaway values for servers that listen on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import yaml

from demo.api_server import local_api_server
from demo.ftp_server import local_ftp_server

DATA = Path(__file__).parent / "data"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = PROJECT_ROOT / ".state" / "samples"
FTP_USER = "samples"
FTP_PASSWORD = "samples-only-password"  # a loopback-only sample server
API_KEY = "samples-only-api-key"
REINDEX_COMMAND = 'echo "shop re-indexed after $DATAHUB_JOB"'


def lay_files(ftp_root: Path) -> None:
    """Lay the sample files into a fresh FTP root, as a partner would have uploaded them."""
    shutil.rmtree(ftp_root, ignore_errors=True)
    for folder in ("products/inbound", "products/outbound", "products/failed", "offers/done"):
        (ftp_root / folder).mkdir(parents=True)
    # The demo's first file is half bad rows (to show rejects at a 50 % threshold); the sample
    # deployments use a threshold of 10 %, so their first drop has one bad row in 13.
    shutil.copy(DATA / "samples" / "products-2026-11-20.csv", ftp_root / "products" / "inbound")
    shutil.copy(DATA / "products" / "products-2026-11-21.csv", ftp_root / "products" / "inbound")
    shutil.copy(DATA / "offers" / "offers-update.csv", ftp_root / "offers" / "offers.csv")


def block_settings(ftp_port: int, api_url: str, hub_url: str) -> dict[str, dict[str, object]]:
    """Return the `blocks.yaml` document that points the deployments' blocks at the sample servers."""
    api: dict[str, object] = {"base_url": api_url, "auth": "api_key", "api_key": API_KEY}
    return {
        "erp-ftp": {
            "protocol": "ftp",
            "host": "127.0.0.1",
            "port": ftp_port,
            "username": FTP_USER,
            "password": FTP_PASSWORD,
        },
        "pim-api": api,
        "erp-api": dict(api),
        "hub-db": {"url": hub_url},
        "shop-reindex": {"commands": [REINDEX_COMMAND]},
    }


def serve(folder: Path, *, ftp_port: int, api_port: int, hub_url: str | None) -> int:
    """Lay the files, serve FTP and the API until SIGINT / SIGTERM, and write `blocks.yaml`."""
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    lay_files(folder / "ftp")
    hub = hub_url or f"sqlite:///{folder / 'hub.db'}"
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with (
        local_ftp_server(folder / "ftp", username=FTP_USER, password=FTP_PASSWORD, port=ftp_port) as ftp,
        local_api_server(
            DATA / "samples" / "pim-products.json",
            api_key=API_KEY,
            offers_export=DATA / "api" / "offers-export.csv",
            port=api_port,
        ) as api,
    ):
        blocks_file = folder / "blocks.yaml"
        blocks_file.write_text(
            yaml.safe_dump(block_settings(ftp.port, api.base_url, hub), sort_keys=False), encoding="utf-8"
        )
        print(f"FTP  ftp://{FTP_USER}@127.0.0.1:{ftp.port}/ serving {ftp.root}")
        print(f"API  {api.base_url} (PIM products, ERP offers export)")
        print(f"Hub  {hub}")
        print(f"Blocks: python -m deployments blocks --file {blocks_file}")
        print("ready; Ctrl-C stops the sample servers", flush=True)
        stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m demo.samples", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where files and blocks.yaml go")
    parser.add_argument("--ftp-port", type=int, default=2121, help="FTP port on 127.0.0.1 (default 2121)")
    parser.add_argument("--api-port", type=int, default=8765, help="API port on 127.0.0.1 (default 8765)")
    parser.add_argument("--hub-url", default=None, help="hub database URL (default: SQLite in --dir)")
    args = parser.parse_args(argv)
    try:
        return serve(args.dir.resolve(), ftp_port=args.ftp_port, api_port=args.api_port, hub_url=args.hub_url)
    except OSError as exc:
        print(
            f"cannot serve the samples: {exc}; choose other ports with --ftp-port / --api-port",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
