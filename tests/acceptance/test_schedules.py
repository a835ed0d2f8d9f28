"""Scheduled imports: the server's scheduler creates the runs, a worker executes them.

The promise that once failed on every fresh install (prefect 3.8 with SQLAlchemy 2.1: the scheduler
raised on every loop and never created a run, while every other test stayed green). Here nothing
creates a run but the scheduler: the test gives a deployment a short interval schedule, as an
operator adds one in the UI, and waits for a run that the scheduler made (`auto_scheduled`, its
idempotency key `scheduled ...`) to be executed by a worker to Completed, on an SQLite-backed and a
PostgreSQL-backed server.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.schedules import IntervalSchedule

from tests.acceptance.conftest import Stack, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(600)]

PRODUCTS = "import-csv-from-ftp/products-from-erp-ftp"


@pytest.mark.parametrize(
    "stack_fixture", ["sqlite_stack", "stack"], ids=["sqlite-server", "postgresql-server"]
)
def test_the_scheduler_creates_runs_that_a_worker_completes(
    stack_fixture: str, request: pytest.FixtureRequest
) -> None:
    stack: Stack = request.getfixturevalue(stack_fixture)
    with stack.client() as client:
        deployment = client.read_deployment_by_name(PRODUCTS)
        # Two runs ahead at most: an interval schedule would otherwise queue up to 100.
        added = client.create_deployment_schedules(
            deployment.id,
            [(IntervalSchedule(interval=timedelta(seconds=5)), True)],
            max_scheduled_runs=2,
        )
        by_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))

        def scheduled_run_completed() -> FlowRun | None:
            runs = client.read_flow_runs(deployment_filter=by_deployment)
            done = [r for r in runs if r.auto_scheduled and r.state_type == StateType.COMPLETED]
            return done[0] if done else None

        try:
            flow_run: FlowRun = wait_for(
                "a run created by the scheduler and completed by a worker",
                scheduled_run_completed,
                300,
                1,
                (stack.server_log, *stack.worker_logs),
            )
        finally:
            # Remove the schedule and the runs it queued, as an operator would after trying it.
            for schedule in added:
                client.delete_deployment_schedule(deployment.id, schedule.id)
            for run in client.read_flow_runs(deployment_filter=by_deployment):
                if run.auto_scheduled and run.state_type == StateType.SCHEDULED:
                    client.delete_flow_run(run.id)
    assert flow_run.idempotency_key is not None
    assert flow_run.idempotency_key.startswith("scheduled "), flow_run.idempotency_key
    assert flow_run.deployment_id == deployment.id
    statuses = [
        status
        for (status,) in stack.hub_rows(
            f"SELECT status FROM datahub_runs WHERE flow_run_id = '{flow_run.id}'"
        )
    ]
    assert statuses in (["SUCCESS"], ["PARTIAL"], ["SKIPPED"]), statuses
