"""`prefect.yaml` cannot drift from the job models: every deployment's job validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployments.manifest import PREFECT_YAML, Deployment, load_deployments
from flows.import_json_from_api import ApiImportJob
from tasks.api.calls import CsvFile, DownloadPattern, PagingPattern, RetryPattern

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


def test_check_passes_on_the_project_prefect_yaml() -> None:
    from deployments.__main__ import check_file

    findings = check_file(PREFECT_YAML)
    assert [f for f in findings if f.level != "ok"] == []
    assert {f.deployment for f in findings} == {d.name for d in DEPLOYMENTS}


def test_no_deployment_sets_paused_and_each_names_example_blocks() -> None:
    from prefect_shell import ShellOperation

    from blocks.api import ApiConnection
    from blocks.database import DatabaseConnection
    from blocks.ftp import FtpConnection
    from deployments.blocks import EXAMPLE_BLOCKS

    raw = {
        entry["name"]: entry
        for entry in yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))["deployments"]
    }
    for deployment in DEPLOYMENTS:
        # `prefect deploy` applies a `paused:` key on every redeploy, undoing an operator's pause.
        assert "paused" not in raw[deployment.name], deployment.name
        job = deployment.parameters["job"]
        if "operation" not in job:
            assert EXAMPLE_BLOCKS[job["target"]][0] is DatabaseConnection, deployment.name
        if "operation" in job:  # a shell job: no connection, a Shell Operation block
            assert EXAMPLE_BLOCKS[job["operation"]][0] is ShellOperation, deployment.name
            continue
        block_type = ApiConnection if "calls" in job else FtpConnection
        assert EXAMPLE_BLOCKS[job["connection"]][0] is block_type, deployment.name


def _deployment(name: str) -> Deployment:
    return next(d for d in DEPLOYMENTS if d.name == name)


def test_api_products_deployment_pages_in_the_seed_shape() -> None:
    products = _deployment("products-from-pim-api")
    job = ApiImportJob.model_validate(products.parameters["job"])
    [call] = job.calls
    paging = call.pattern
    assert isinstance(paging, PagingPattern)
    assert call.method == "GET"
    assert (paging.page_number_param, paging.page_size_param, paging.first_page) == (
        "pageNumber",
        "pageSize",
        1,
    )
    assert (paging.total_pages_path, paging.content_path) == ("$.paging.totalPages", "$.elements")
    assert products.concurrency_limit == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert [s["slug"] for s in products.schedules] == ["weekdays-0600"]


def test_api_offers_deployment_generates_polls_and_downloads_a_csv() -> None:
    offers = _deployment("offers-from-erp-api")
    job = ApiImportJob.model_validate(offers.parameters["job"])
    generate, wait, download = job.calls
    assert (generate.method, generate.capture) == ("POST", {"invocationId": "$.invocationId"})
    assert wait.method == "GET"
    assert wait.path_variables == {"id": "${invocationId}"}
    assert isinstance(wait.pattern, RetryPattern)
    assert (wait.pattern.condition_path, wait.pattern.value) == ("$.statusFile", "AVAILABLE")
    assert isinstance(download.pattern, DownloadPattern)
    assert download.pattern.url_from == "$.urlFile"
    assert isinstance(download.pattern.format, CsvFile)
    assert job.mapping is None  # the CSV's standard headers map it
    assert offers.concurrency_limit == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert (offers.schedules[0]["interval"], offers.schedules[0]["slug"]) == (5400, "every-90-minutes")


def test_check_flags_parameters_the_server_would_refuse(tmp_path: Path) -> None:
    from deployments.__main__ import check_file

    document = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    document["deployments"][0]["parameters"]["job"]["reject_threshold_percent"] = "10"  # pydantic reads 10
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    errors = [f for f in check_file(path) if f.level == "error"]

    assert [(f.deployment, f.aspect) for f in errors] == [(document["deployments"][0]["name"], "schema")]
    assert "parameters.job.reject_threshold_percent: '10' is not of type 'number'" in errors[0].detail
