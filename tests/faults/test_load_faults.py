"""Load: a thousand small files in one inbound folder in one run; two runs of one busy job at once.

The concurrency tests use the Prefect test server's own orchestration (the same rules a real server
applies; tests/acceptance/test_concurrency.py shows CANCEL_NEW on a real server): a deployment with
`concurrency_limit: 1` gets two flow runs created at once and both are proposed Running.
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import (
    ConcurrencyLimitStrategy,
    ConcurrencyOptions,
    State,
    StateType,
)
from prefect.states import Completed, Pending, Running

from tests.faults.harness import (
    csv_job,
    files_in,
    make_folders,
    run_csv,
    save_ftp_block,
    save_hub,
    table,
)
from tests.fixtures_servers import LocalFtp
from tests.flows.hub import status_of

pytestmark = pytest.mark.usefixtures("prefect_server")

FILE_COUNT = int(os.environ.get("DATAHUB_FAULT_FILES", "1000"))
HEADER = "Supplier External Id;Supplier Name\n"


def test_a_thousand_small_files_in_one_run(ftp_server: LocalFtp, sqlite_url: str) -> None:
    root = make_folders(ftp_server.root)
    for n in range(FILE_COUNT):
        path = root / "in" / f"s{n:04d}.csv"
        path.write_text(f"{HEADER}S{n};Supplier {n}\n", encoding="utf-8")
        os.utime(path, (1_700_000_000 + n, 1_700_000_000 + n))
    job = csv_job(save_ftp_block(ftp_server), save_hub(sqlite_url), entity="suppliers")

    started = time.monotonic()
    state, report = run_csv(job)
    seconds = time.monotonic() - started

    assert status_of(state) == "SUCCESS", state.message
    assert len(report.files) == FILE_COUNT
    assert [f.path for f in report.files] == [f"in/s{n:04d}.csv" for n in range(FILE_COUNT)]  # oldest first
    assert {f.status for f in report.files} == {"SUCCESS"}
    assert files_in(root, "in") == []
    assert len(files_in(root, "out")) == FILE_COUNT
    assert table(sqlite_url, 'SELECT count(*), count(DISTINCT "supplierExternalId") FROM suppliers') == [
        (FILE_COUNT, FILE_COUNT)
    ]
    assert table(sqlite_url, "SELECT count(*) FROM datahub_ledger WHERE moved_to IS NOT NULL") == [
        (FILE_COUNT,)
    ]
    print(f"{FILE_COUNT} files in {seconds:.1f} s")
    # The server stores the run's task runs from their events, after the run: wait for all of them
    # (listing the folder and its leftover claims; the per-file steps are no Prefect tasks since
    # issue 17, each file is a row of the summary), and check that Prefect's history of the run is whole.
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    expected, deadline = 2, time.monotonic() + 240
    only_this_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:

        def recorded_beyond(count: int) -> bool:
            return bool(client.read_task_runs(flow_run_filter=only_this_run, offset=count, limit=1))

        while not recorded_beyond(expected - 1) and time.monotonic() < deadline:
            time.sleep(1)
        assert recorded_beyond(expected - 1)
        assert not recorded_beyond(expected)
    print(f"task runs recorded by the server {time.monotonic() - started:.1f} s after the start")


# -- two runs of one busy job created at once -----------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "loser"),
    [
        (ConcurrencyLimitStrategy.ENQUEUE, (StateType.SCHEDULED, "AwaitingConcurrencySlot")),
        (ConcurrencyLimitStrategy.CANCEL_NEW, (StateType.CANCELLED, "Cancelled")),
    ],
)
def test_two_runs_created_at_once_never_run_together(
    strategy: ConcurrencyLimitStrategy, loser: tuple[StateType, str]
) -> None:
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("import-csv-from-ftp")
        deployment_id = client.create_deployment(
            flow_id,
            f"busy-{strategy.value.lower()}-{uuid.uuid4().hex[:6]}",
            concurrency_limit=1,
            concurrency_options=ConcurrencyOptions(collision_strategy=strategy),
        )
        runs = [client.create_flow_run_from_deployment(deployment_id) for _ in range(2)]
        # Both ask for the slot at the same moment, as two workers picking them up would.
        with ThreadPoolExecutor(max_workers=2) as pool:
            proposed = list(pool.map(lambda run: _propose(run.id, Pending()), runs))
        winners = [state for state in proposed if state == (StateType.PENDING, "Pending")]
        assert len(winners) == 1, proposed
        assert sorted(proposed, key=str) == sorted([(StateType.PENDING, "Pending"), loser], key=str)
        first, second = (runs[0], runs[1]) if proposed[0][0] == StateType.PENDING else (runs[1], runs[0])
        assert _propose(first.id, Running())[0] == StateType.RUNNING
        assert _propose(second.id, Pending()) == loser  # still busy: still not two at once

        assert _propose(first.id, Completed())[0] == StateType.COMPLETED  # gives the slot back
        if strategy == ConcurrencyLimitStrategy.ENQUEUE:
            assert _propose(second.id, Pending()) == (StateType.PENDING, "Pending")  # the queued run goes


def _propose(flow_run_id: UUID, state: State) -> tuple[StateType, str]:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, state)
        found = client.read_flow_run(flow_run_id).state
    assert found is not None
    return found.type, str(found.name)
