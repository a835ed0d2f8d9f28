"""Run one CSV job file, as `./dev run JOB.yaml` does, once a start signal appears (issue 14's tests).

    python -m tests.faults.nothing_lost_runner READY_FILE GO_FILE JOB.yaml

Importing Prefect and the flow takes seconds and varies; the process imports first, writes
READY_FILE, then waits for GO_FILE, so that two of these start their runs at the same moment.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

BARRIER_TIMEOUT_SECONDS = 120.0


def main(argv: list[str]) -> int:
    """Import the flow, signal ready, wait for the go signal, then run the job file like `./dev run`."""
    ready, go, job_file = Path(argv[0]), Path(argv[1]), argv[2]
    from flows.import_csv_from_ftp import main as run_job_file

    ready.touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT_SECONDS
    while not go.exists():
        if time.monotonic() > deadline:
            print("no go signal: the test gave up", file=sys.stderr)
            return 3
        time.sleep(0.005)
    return run_job_file([job_file])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
