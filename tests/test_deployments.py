"""`prefect.yaml` cannot drift from the job models: every deployment's job validates."""

from __future__ import annotations

import pytest

from deployments.manifest import Deployment, load_deployments

DEPLOYMENTS = load_deployments()


def test_prefect_yaml_has_deployments() -> None:
    assert len(DEPLOYMENTS) >= 2


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d.name)
def test_job_parameters_match_the_flow_model(deployment: Deployment) -> None:
    job = deployment.job_model().model_validate(deployment.parameters["job"])
    assert getattr(job, "name") == deployment.name  # noqa: B009


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d.name)
def test_schedules_are_native_and_keep_their_ids(deployment: Deployment) -> None:
    for schedule in deployment.schedules:
        assert len({"cron", "rrule", "interval"} & set(schedule)) == 1
        assert schedule.get("slug"), "a schedule without a slug gets a new id on every deploy"
    assert deployment.concurrency_limit is not None
    assert deployment.concurrency_limit["collision_strategy"] in {"ENQUEUE", "CANCEL_NEW"}
