"""Deploying `prefect.yaml` as users do, then running every sample deployment as the docs do.

The stack deployed the project's own `prefect.yaml` with `prefect --no-prompt deploy --all`. What the
server stores must be what the file says (Prefect's deploy templating once emptied a job's
`path_variables`), every stored job must pass the server's parameter validation, and every sample
deployment, run in the order of docs/server.md with `prefect deployment run`, must be executed by a
worker to Completed with a non-failed report.
"""

from __future__ import annotations

from typing import Any

import pytest
from prefect.client.schemas.objects import StateType
from prefect.utilities.schema_tools.validation import validate

from tests.acceptance.conftest import (
    DOCS_ORDER,
    Stack,
    deployment_busy,
    prefect_yaml,
    started_run_id,
    wait_for,
)

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]


def manifest() -> list[dict[str, Any]]:
    """The deployments of the project's `prefect.yaml`, anchors resolved."""
    deployments: list[dict[str, Any]] = prefect_yaml()["deployments"]
    return deployments


def first_import_status(stack: Stack, job: str, run_id: str) -> str:
    """The status of our run, or of the scheduled run of the same job that imported the data first.

    The sample schedules stay on (offers every 15 minutes, the ERP export every 90): a scheduled run
    may import the sample data before ours, which then finds nothing new (SKIPPED, correctly).
    """
    ((ours, started),) = stack.hub_rows(
        f"SELECT status, started_at FROM datahub_runs WHERE flow_run_id = '{run_id}'"
    )
    if ours != "SKIPPED":
        return str(ours)
    earlier = [
        status
        for (status,) in stack.hub_rows(
            f"SELECT status FROM datahub_runs WHERE job = '{job}' AND status <> 'SKIPPED' AND started_at < "
            f"(SELECT started_at FROM datahub_runs WHERE flow_run_id = '{run_id}') ORDER BY started_at"
        )
    ]
    assert earlier, f"{job}: our run was SKIPPED (started {started}) and no other run imported the data"
    return str(earlier[-1])


def test_the_server_stores_every_job_as_prefect_yaml_says(stack: Stack) -> None:
    with stack.client() as client:
        stored = {d.name: d for d in client.read_deployments()}
    assert sorted(stored) == sorted(entry["name"] for entry in manifest())
    for entry in manifest():
        deployment = stored[entry["name"]]
        assert deployment.parameters == entry["parameters"], entry["name"]
        assert [s.slug for s in deployment.schedules] == [s["slug"] for s in entry["schedules"]]
        errors = validate(deployment.parameters, deployment.parameter_openapi_schema or {})
        assert errors == [], f"{entry['name']}: {[e.message for e in errors]}"
        assert deployment.enforce_parameter_schema is True


def test_every_sample_deployment_succeeds_in_the_docs_order(stack: Stack) -> None:
    # Every deployment of prefect.yaml is in the docs' order: a new one must be placed there too.
    assert sorted(n.rpartition("/")[2] for n in DOCS_ORDER) == sorted(e["name"] for e in manifest())
    outcomes = {}
    for name in DOCS_ORDER:
        # A scheduled run of the same job (offers every 15 minutes) would cancel ours (CANCEL_NEW).
        with stack.client() as client:
            deployment_id = client.read_deployment_by_name(name).id
            wait_for(f"{name} idle", lambda i=deployment_id: not deployment_busy(client, i), 300)
        flow_run = stack.wait_final(started_run_id(stack.run("prefect", "deployment", "run", name)))
        outcomes[name] = (flow_run.id, flow_run.state_type, flow_run.state and flow_run.state.message)
        assert flow_run.state_type == StateType.COMPLETED, f"{name}: {outcomes[name]}\n{stack.logs_text()}"
    expected = {
        "products-from-erp-ftp": "PARTIAL",
        "products-from-pim-api": "SUCCESS",
        "offers-from-erp-api": "SUCCESS",
        "offers-from-erp-ftp": "SUCCESS",
    }  # the shell job writes no hub database, so no run history
    for name, (run_id, _, _) in outcomes.items():
        job = name.rpartition("/")[2]
        if job in expected:
            assert first_import_status(stack, job, str(run_id)) == expected[job], (job, outcomes)
    assert stack.hub_rows('SELECT "stockExternalId", "stockNumber" FROM offer_stocks ORDER BY 1') == [
        ("S-1001-B", 4),
        ("S-1001-N", 118),
        ("S-1002", 6),
        ("S-1006", 2),
    ]
    assert sorted(p.name for p in (stack.ftp_root / "offers/done").iterdir()) == ["offers.csv"]
