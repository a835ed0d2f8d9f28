"""Two process workers on one pool share a job's runs, one at a time (ENQUEUE).

A busy job (the PIM products job against a sample API that answers each page after 5 s) gets six
runs at once. Its concurrency limit of 1 with ENQUEUE queues them: the hub's run history must hold
exactly six distinct flow runs, none overlapping another in time, and both workers must have run
at least one.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.objects import StateType

from tests.acceptance.conftest import Stack, prefect_yaml

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

BUSY = "busy-products-from-pim-api"
RUNS = 6


def busy_manifest(path: Path) -> Path:
    """A prefect.yaml holding one deployment: the PIM job, each page 5 s slow, ENQUEUE, no schedule."""
    document: dict[str, Any] = prefect_yaml()
    template = next(d for d in document["deployments"] if d["name"] == "products-from-pim-api")
    busy = copy.deepcopy(template) | {
        "name": BUSY,
        "description": "The PIM job against a slow API: each run takes at least 5 s.",
        "concurrency_limit": {"limit": 1, "collision_strategy": "ENQUEUE"},
        "schedules": [],
    }
    busy["parameters"]["job"]["name"] = BUSY
    busy["parameters"]["job"]["calls"][0]["query"]["delaySeconds"] = "5"
    document["deployments"] = [busy]
    document.pop("definitions", None)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def worker_of(stack: Stack, flow_run_id: str) -> list[str]:
    """The workers that executed this flow run: its process logs its own address into their log.

    ("submitting flow run" is no proof: both workers try to submit a queued run, and the one the
    concurrency slot turns away logs "Aborted submission".)
    """
    return [
        log.stem
        for log in stack.worker_logs
        if f"/runs/flow-run/{flow_run_id}" in log.read_text(errors="replace")
    ]


def test_two_workers_run_six_queued_runs_one_at_a_time(stack: Stack, tmp_path: Path) -> None:
    manifest = busy_manifest(tmp_path / "prefect.yaml")
    stack.run("prefect", "--no-prompt", "deploy", "--prefect-file", str(manifest), "--name", BUSY)
    with stack.client() as client:
        deployment = client.read_deployment_by_name(f"import-json-from-api/{BUSY}")
        runs = [client.create_flow_run_from_deployment(deployment.id) for _ in range(RUNS)]
    finished = [stack.wait_final(run.id, timeout=600) for run in runs]
    assert [run.state_type for run in finished] == [StateType.COMPLETED] * RUNS, stack.logs_text()

    history = stack.hub_rows(
        f"SELECT flow_run_id, started_at, finished_at FROM datahub_runs WHERE job = '{BUSY}' ORDER BY started_at"
    )
    assert sorted(row[0] for row in history) == sorted(str(run.id) for run in runs)
    for earlier, later in itertools.pairwise(history):
        assert earlier[2] <= later[1], f"runs overlap: {earlier} and {later}"
    ran_by = {str(run.id): worker_of(stack, str(run.id)) for run in runs}
    assert all(len(workers) == 1 for workers in ran_by.values()), ran_by
    assert {workers[0] for workers in ran_by.values()} == {"worker-1", "worker-2"}, ran_by
