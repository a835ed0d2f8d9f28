"""The seeds' two same-job policies, as the server applies them: a second run while the first holds
the job's only slot is queued (ENQUEUE, the seeds' RUN_IMMEDIATELY) or cancelled (CANCEL_NEW,
WAIT_FOR_NEXT).

The first run takes the slot by going Pending then Running, as a worker's run does, through the
client. Only the slot is under test, so the two deployments are copies of the sample CSV jobs on a
work pool that no worker polls: nothing executes them, and the sample files stay for the other tests.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelled, Pending, Running

from tests.acceptance.conftest import Stack, prefect_yaml

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(300)]

IDLE_POOL = "no-workers"
COPIES = {"slot-enqueue": "products-from-erp-ftp", "slot-cancel-new": "offers-from-erp-ftp"}


def idle_manifest(path: Path) -> Path:
    """A prefect.yaml with a copy of each sample CSV job on the idle pool, unscheduled."""
    document: dict[str, Any] = prefect_yaml()
    by_name = {d["name"]: d for d in document["deployments"]}
    copies = []
    for name, original in COPIES.items():
        deployment = copy.deepcopy(by_name[original]) | {
            "name": name,
            "work_pool": {"name": IDLE_POOL, "work_queue_name": "default"},
            "schedules": [],
        }
        deployment["parameters"]["job"]["name"] = name
        copies.append(deployment)
    document["deployments"] = copies
    document.pop("definitions", None)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def idle_copies(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    manifest = idle_manifest(tmp_path_factory.mktemp("concurrency") / "prefect.yaml")
    stack.run("prefect", "work-pool", "create", IDLE_POOL, "--type", "process", "--overwrite")
    names = [arg for name in COPIES for arg in ("--name", name)]
    stack.run("prefect", "--no-prompt", "deploy", "--prefect-file", str(manifest), *names)
    yield
    # The other tests compare the server's deployments with prefect.yaml: leave none of ours behind.
    for name in COPIES:
        stack.run("prefect", "deployment", "delete", f"import-csv-from-ftp/{name}")


@pytest.mark.usefixtures("idle_copies")
@pytest.mark.parametrize(
    ("deployment_name", "expected"),
    [
        ("import-csv-from-ftp/slot-enqueue", (StateType.SCHEDULED, "AwaitingConcurrencySlot")),
        ("import-csv-from-ftp/slot-cancel-new", (StateType.CANCELLED, "Cancelled")),
    ],
    ids=["ENQUEUE", "CANCEL_NEW"],
)
def test_a_second_run_while_the_first_holds_the_slot(
    stack: Stack, deployment_name: str, expected: tuple[StateType, str]
) -> None:
    with stack.client() as client:
        deployment = client.read_deployment_by_name(deployment_name)
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
