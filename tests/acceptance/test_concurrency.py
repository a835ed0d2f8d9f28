"""The seeds' two same-job policies, as the server applies them: a second run while the first holds
the job's only slot is queued (ENQUEUE, the seeds' RUN_IMMEDIATELY) or cancelled (CANCEL_NEW,
WAIT_FOR_NEXT).

The first run takes the slot by going Pending then Running, as a worker's run does; nothing is
executed (the states are set through the client), so the test needs no worker slot of its own.
"""

from __future__ import annotations

import pytest
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelled, Pending, Running

from tests.acceptance.conftest import Stack

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(300)]


@pytest.mark.parametrize(
    ("deployment_name", "expected"),
    [
        ("import-csv-from-ftp/products-from-erp-ftp", (StateType.SCHEDULED, "AwaitingConcurrencySlot")),
        ("import-csv-from-ftp/offers-from-erp-ftp", (StateType.CANCELLED, "Cancelled")),
    ],
    ids=["ENQUEUE", "CANCEL_NEW"],
)
def test_a_second_run_while_the_first_holds_the_slot(
    stack: Stack, deployment_name: str, expected: tuple[StateType, str]
) -> None:
    with stack.client() as client:
        deployment = client.read_deployment_by_name(deployment_name)
        # Paused, so that no worker picks the test's runs up: only the slot is under test.
        client.pause_deployment(deployment.id)
        runs = []
        try:
            first = client.create_flow_run_from_deployment(deployment.id)
            runs.append(first)
            assert client.set_flow_run_state(first.id, Pending()).state.type == StateType.PENDING
            client.set_flow_run_state(first.id, Running())
            second = client.create_flow_run_from_deployment(deployment.id)
            runs.append(second)
            client.set_flow_run_state(second.id, Pending())
            state = client.read_flow_run(second.id).state
            assert state is not None
            assert (state.type, state.name) == expected
        finally:
            for run in runs:
                client.set_flow_run_state(run.id, Cancelled(), force=True)  # gives the slot back
            client.resume_deployment(deployment.id)
