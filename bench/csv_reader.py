"""Benchmark the CSV reader alone: iterate `iter_batches` over a file, print rows, seconds, peak RSS.

python -m bench.csv_reader .state/bench/products-1m.csv [--batch-rows 200000] [--delimiter ';']
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from tasks.csv.reader import CsvFormat, iter_batches, read_header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--delimiter", default=";")
    parser.add_argument("--batch-rows", type=int, default=200_000)
    args = parser.parse_args()
    start = time.perf_counter()
    header = read_header(args.path, args.delimiter, name=args.path.name)
    fmt = CsvFormat(delimiter=args.delimiter, batch_rows=args.batch_rows)
    rows = batches = 0
    for batch in iter_batches(args.path, fmt, header, name=args.path.name):
        rows += batch.height
        batches += 1
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.path.name}: {rows} rows in {batches} batches, {seconds:.2f} s, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
