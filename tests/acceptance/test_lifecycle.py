"""A deployment's life as operators live it: redeploy, pause, resume, delete, with `python -m deployments`.

Every step edits a copy of the project's `prefect.yaml` in tmp_path (only what the step needs) and
deploys it with `python -m deployments deploy --prefect-file COPY`, run from the project folder as the
docs do: the copy's relative entrypoints are found there, and the server stores them as written, so
the unchanged copy is the same deployments as the real file. The stack is shared with the other
acceptance modules: each test leaves the deployments as `prefect.yaml` says (redeployed with the same
command) and none paused.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound

from tests.acceptance.conftest import Stack, prefect_yaml, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(600)]

PRODUCTS = "import-csv-from-ftp/products-from-erp-ftp"
SHELL = "run-shell-job/nightly-shop-reindex"
LOOP_SECONDS = 2  # PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS of the stack's server


def manifest() -> dict[str, Any]:
    """The project's prefect.yaml, anchors resolved."""
    document: dict[str, Any] = prefect_yaml()
    return document


def entry(document: dict[str, Any], full_name: str) -> dict[str, Any]:
    """The deployment entry of a prefect.yaml document named `flow/name`."""
    name = full_name.rpartition("/")[2]
    found: dict[str, Any] = next(e for e in document["deployments"] if e["name"] == name)
    return found


def copy_of_prefect_yaml(tmp_path: Path, change: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """A copy of prefect.yaml in tmp_path with `change` applied to it (entrypoints left relative)."""
    document = manifest()
    if change is not None:
        change(document)
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def deploy(stack: Stack, *args: str) -> list[str]:
    """`python -m deployments deploy ARGS` from the project folder; its lines about deployments (all printed).

    The lines about alerts (`alerts: ...`, tests/acceptance/test_alerts.py) are left out.
    """
    output = stack.run(sys.executable, "-m", "deployments", "deploy", *args)
    print(f"$ python -m deployments deploy {' '.join(args)}\n{output}")
    return [line for line in output.splitlines() if not line.startswith("alerts: ")]


def operate(stack: Stack, verb: str, full_name: str) -> str:
    """`python -m deployments pause|resume NAME`."""
    return stack.run(sys.executable, "-m", "deployments", verb, full_name).strip()


def runs_of(client: SyncPrefectClient, deployment_id: uuid.UUID) -> list[FlowRun]:
    """Every flow run of a deployment (its few hundred at most)."""
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])), limit=200
    )


def scheduled(runs: list[FlowRun]) -> list[FlowRun]:
    return [run for run in runs if run.state_type == StateType.SCHEDULED]


def by_scheduler(run: FlowRun) -> bool:
    """Whether the server's scheduler made the run (no client call creates such a run)."""
    return run.auto_scheduled and (run.idempotency_key or "").startswith("scheduled ")


def differences(stack: Stack) -> list[str]:
    """How the server's deployments of prefect.yaml differ from it (paused, parameters, schedule slugs)."""
    with stack.client() as client:
        stored = {d.name: d for d in client.read_deployments()}
    found = []
    for raw in manifest()["deployments"]:
        deployment = stored.get(raw["name"])
        if deployment is None:
            found.append(f"{raw['name']}: missing")
            continue
        slugs = [s.slug for s in deployment.schedules]
        if deployment.paused or deployment.parameters != raw["parameters"]:
            found.append(f"{raw['name']}: paused {deployment.paused}, parameters as stored differ")
        if slugs != [s["slug"] for s in raw["schedules"]]:
            found.append(f"{raw['name']}: schedules {slugs}")
    return found


@pytest.fixture
def restore(stack: Stack) -> Iterator[None]:
    """After the test: if the deployments differ from prefect.yaml, resume them and redeploy the file."""
    yield
    if not differences(stack):
        return
    names = [e["name"] for e in manifest()["deployments"]]
    with stack.client() as client:
        for deployment in client.read_deployments():
            if deployment.name in names and deployment.paused:
                client.resume_deployment(deployment.id)
    deploy(stack)
    assert differences(stack) == []


def test_redeploying_the_unchanged_file_changes_nothing(stack: Stack, tmp_path: Path) -> None:
    document = manifest()
    lines = deploy(stack, "--prefect-file", str(copy_of_prefect_yaml(tmp_path)))
    with stack.client() as client:
        stored = {d.name: d for d in client.read_deployments()}
        flows = {flow.id: flow.name for flow in client.read_flows()}
    full_names = [f"{flows[stored[e['name']].flow_id]}/{e['name']}" for e in document["deployments"]]
    assert lines == [f"unchanged {name}" for name in full_names]
    for raw in document["deployments"]:
        assert stored[raw["name"]].parameters == raw["parameters"], raw["name"]


@pytest.mark.usefixtures("restore")
def test_a_renamed_schedule_replaces_the_old_one_and_a_pause_survives_a_redeploy(
    stack: Stack, tmp_path: Path
) -> None:
    def daily_0300(document: dict[str, Any]) -> None:
        entry(document, PRODUCTS)["schedules"] = [
            {"cron": "0 3 * * *", "timezone": "UTC", "slug": "daily-0300", "active": True}
        ]

    copy = copy_of_prefect_yaml(tmp_path, daily_0300)
    lines = deploy(stack, "--prefect-file", str(copy), "--name", PRODUCTS)
    assert lines == [f"updated {PRODUCTS}: schedule daily-0300 added, daily-0200 removed"]
    with stack.client() as client:
        deployment = client.read_deployment_by_name(PRODUCTS)
        schedules = client.read_deployment_schedules(deployment.id)
        assert [(s.slug, s.schedule.model_dump().get("cron"), s.active) for s in schedules] == [
            ("daily-0300", "0 3 * * *", True)
        ]
        assert not deployment.paused

    assert operate(stack, "pause", PRODUCTS) == f"{PRODUCTS}: paused"
    lines = deploy(stack, "--prefect-file", str(copy))
    assert f"unchanged {PRODUCTS}; kept paused" in lines
    assert sum("kept paused" in line for line in lines) == 1, lines
    with stack.client() as client:
        assert client.read_deployment_by_name(PRODUCTS).paused is True
    assert operate(stack, "resume", PRODUCTS) == f"{PRODUCTS}: active"


@pytest.mark.usefixtures("restore")
def test_a_paused_deployment_gets_no_new_runs_and_a_resumed_one_does(stack: Stack, tmp_path: Path) -> None:
    def every_10_seconds(document: dict[str, Any]) -> None:
        entry(document, SHELL)["schedules"].append(
            {
                "interval": 10,
                "anchor_date": "2026-01-01T00:00:00+00:00",
                "timezone": "UTC",
                "slug": "every-10-seconds",
                "active": True,
            }
        )

    lines = deploy(
        stack, "--prefect-file", str(copy_of_prefect_yaml(tmp_path, every_10_seconds)), "--name", SHELL
    )
    assert lines == [f"updated {SHELL}: schedule every-10-seconds added"]
    with stack.client() as client:
        deployment = client.read_deployment_by_name(SHELL)
        interval = next(
            s for s in client.read_deployment_schedules(deployment.id) if s.slug == "every-10-seconds"
        )

        def of_interval(runs: list[FlowRun]) -> list[FlowRun]:
            return [r for r in runs if by_scheduler(r) and str(interval.id) in (r.idempotency_key or "")]

        wait_for(
            "the scheduler's runs of the interval schedule",
            lambda: of_interval(scheduled(runs_of(client, deployment.id))),
            30,
            0.5,
            (stack.server_log,),
        )

        # Pause: Prefect deletes every auto-scheduled run still to come; the ones already due stay
        # Scheduled (a worker may still pick them up: the worker's query does not look at `paused`).
        before = of_interval(scheduled(runs_of(client, deployment.id)))
        assert operate(stack, "pause", SHELL) == f"{SHELL}: paused"
        paused_at = client.read_deployment(deployment.id).updated  # the server's time of the pause
        assert paused_at is not None
        left = scheduled(runs_of(client, deployment.id))
        assert [
            r for r in left if r.next_scheduled_start_time and r.next_scheduled_start_time > paused_at
        ] == []

        time.sleep(4 * LOOP_SECONDS + 1)  # more than 3 scheduler loops
        runs = runs_of(client, deployment.id)
        assert [r.name for r in runs if r.created and r.created > paused_at] == [], (
            "a paused deployment got runs"
        )
        to_come = [
            r
            for r in scheduled(runs)
            if r.next_scheduled_start_time and r.next_scheduled_start_time > paused_at
        ]
        assert to_come == []

        print(
            f"scheduled by the interval before the pause: {len(before)}; left Scheduled after it "
            f"(already due): {len(left)}; those {sorted({str(r.state_name) for r in runs if r.id in {x.id for x in left}})} "
            "after 4 loops"
        )
        assert operate(stack, "resume", SHELL) == f"{SHELL}: active"
        resumed_at = client.read_deployment(deployment.id).updated
        assert resumed_at is not None
        made = wait_for(
            "a run the scheduler makes after the resume",
            lambda: [
                r
                for r in of_interval(scheduled(runs_of(client, deployment.id)))
                if r.created and r.created > resumed_at
            ],
            30,
            0.5,
            (stack.server_log,),
        )
        assert all(r.auto_scheduled and (r.idempotency_key or "").startswith("scheduled ") for r in made)

    # Remove the interval again (an interval queues up to 100 runs): redeploy the real file.
    assert deploy(stack, "--name", SHELL) == [f"updated {SHELL}: schedule every-10-seconds removed"]
    with stack.client() as client:
        assert of_interval(scheduled(runs_of(client, deployment.id))) == []


@pytest.mark.usefixtures("restore")
def test_a_deleted_deployment_is_gone_its_history_is_kept_and_deploy_restores_it(stack: Stack) -> None:
    output = stack.run("prefect", "deployment", "run", SHELL)
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    assert match, output
    flow_run = stack.wait_final(uuid.UUID(match.group(1)))
    with stack.client() as client:
        old_id = client.read_deployment_by_name(SHELL).id

    stack.run("prefect", "deployment", "delete", SHELL)
    with stack.client() as client:
        with pytest.raises(ObjectNotFound):
            client.read_deployment_by_name(SHELL)
        kept = client.read_flow_run(flow_run.id)
        assert (kept.deployment_id, kept.state_type) == (old_id, flow_run.state_type)
        assert scheduled(runs_of(client, old_id)) == []  # its scheduled runs went with it

    assert deploy(stack, "--name", SHELL) == [f"created {SHELL} (schedules: daily-0330)"]
    with stack.client() as client:
        restored = client.read_deployment_by_name(SHELL)
        assert restored.id != old_id
        assert not restored.paused
        assert restored.parameters == entry(manifest(), SHELL)["parameters"]
        assert [s.slug for s in restored.schedules] == ["daily-0330"]
        assert client.read_flow_run(flow_run.id).deployment_id == old_id
