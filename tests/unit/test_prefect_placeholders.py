"""No job holds text that `prefect deploy`'s templating rewrites: every job model refuses it, naming the fix.

`prefect deploy` replaced the API job's `{{invocationId}}` (it has no value for it), so the server
stored `path_variables: {}` and every run failed. The pattern is Prefect's own
(`prefect.utilities.templating.find_placeholders`).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from prefect.utilities.templating import apply_values
from pydantic import BaseModel, ValidationError

from deployments.manifest import load_deployments
from flows.import_csv_from_ftp import CsvImportJob
from flows.import_json_from_api import ApiImportJob
from flows.run_shell_job import ShellJob
from tasks.job_model import PLACEHOLDER_ERROR, placeholder_hits

CSV_JOB: dict[str, Any] = {
    "name": "products",
    "connection": "erp-ftp",
    "entity": "products",
    "source": {"kind": "file", "file_path": "in/products.csv"},
    "csv": {"delimiter": ";"},
}
API_JOB: dict[str, Any] = {
    "name": "offers-from-erp-api",
    "connection": "erp-api",
    "entity": "offers",
    "calls": [
        {
            "name": "generate",
            "method": "POST",
            "path": "offers/generate",
            "capture": {"invocationId": "$.id"},
        },
        {"name": "wait", "path": "offers/invocations/{id}", "path_variables": {"id": "${invocationId}"}},
        {
            "name": "download",
            "pattern": {
                "kind": "download",
                "url_from": "$.urlFile",
                "format": {"kind": "csv", "csv": {"delimiter": ";"}},
            },
        },
    ],
}
SHELL_JOB: dict[str, Any] = {"name": "reindex", "operation": "shop-reindex"}


def _refusal(model: type[BaseModel], job: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(job)
    [error] = caught.value.errors()  # refused first, alone: nothing else is validated
    assert error["type"] == PLACEHOLDER_ERROR
    return str(error["msg"])


def test_the_valid_jobs_pass() -> None:
    CsvImportJob.model_validate(CSV_JOB)
    assert ApiImportJob.model_validate(API_JOB).calls[1].path_variables == {"id": "${invocationId}"}
    ShellJob.model_validate(SHELL_JOB)


def test_an_api_job_refuses_double_braces_naming_the_field_and_the_fix() -> None:
    job = copy.deepcopy(API_JOB)
    job["calls"][1]["path_variables"]["id"] = "{{invocationId}}"
    assert _refusal(ApiImportJob, job) == (
        "calls[1].path_variables.id: `{{invocationId}}` would be replaced by `prefect deploy`'s templating; "
        "write `${invocationId}`"
    )


def test_text_around_a_placeholder_and_spaces_inside_it_are_kept_in_the_fix() -> None:
    job = copy.deepcopy(API_JOB)
    job["calls"][1]["headers"] = {"X-Ref": "inv/{{ invocationId }}/{{n}}"}
    assert _refusal(ApiImportJob, job) == (
        "calls[1].headers.X-Ref: `inv/{{ invocationId }}/{{n}}` would be replaced by `prefect deploy`'s "
        "templating; write `inv/${invocationId}/${n}`"
    )


def test_a_csv_job_refuses_them_in_any_field_and_in_dict_keys() -> None:
    job = CSV_JOB | {
        "source": {"kind": "file", "file_path": "in/{{day}}.csv"},
        "mapping": {"{{id}}": "productExternalId", "Name": "{{ field }}"},
    }
    assert _refusal(CsvImportJob, job) == (
        "source.file_path: `in/{{day}}.csv` would be replaced by `prefect deploy`'s templating; write "
        "`in/${day}.csv`; mapping: the key `{{id}}` is a `prefect deploy` placeholder; write `${id}`; "
        "mapping.Name: `{{ field }}` would be replaced by `prefect deploy`'s templating; write `${field}`"
    )


def test_a_shell_job_refuses_them() -> None:
    assert _refusal(ShellJob, SHELL_JOB | {"operation": "{{block}}"}) == (
        "operation: `{{block}}` would be replaced by `prefect deploy`'s templating; write `${block}`"
    )


def test_environment_variables_blocks_and_variables_say_to_write_the_value() -> None:
    message = _refusal(ShellJob, SHELL_JOB | {"operation": "{{ $SHOP_BLOCK }}"})
    assert message == (
        "operation: `{{ $SHOP_BLOCK }}` would be replaced by `prefect deploy`'s templating; write the value "
        "itself instead of `{{ $SHOP_BLOCK }}` (the deploying machine's environment variable)"
    )
    assert "(the Prefect variable)" in _refusal(
        ShellJob, SHELL_JOB | {"operation": "{{ prefect.variables.b }}"}
    )


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("{{x}}", True),
        ("{{ a.b-c[0] }}", True),
        ("a{{x}}b", True),
        ("${x}", False),
        ("{x}", False),
        ("{ {x} }", False),
        ("{{}}", False),
        ("{{ two words }}", False),
    ],
)
def test_the_pattern_is_prefects(text: str, hit: bool) -> None:
    assert bool(placeholder_hits(text)) is hit
    # What Prefect's deploy templating (with no values) leaves alone is exactly what is not a hit.
    assert (apply_values({"v": text}, {}) != {"v": text}) is hit


def test_hits_name_nested_locations() -> None:
    hits = placeholder_hits({"a": [{"b": "{{x}}"}, "ok"], "{{k}}": 1}, where="parameters.job")
    assert [(h.where, h.text, h.is_key) for h in hits] == [
        ("parameters.job.a[0].b", "{{x}}", False),
        ("parameters.job", "{{k}}", True),
    ]


@pytest.mark.parametrize("deployment", load_deployments(), ids=lambda d: d.name)
def test_prefect_deploy_keeps_every_job_of_prefect_yaml_as_written(deployment: Any) -> None:
    job = deployment.parameters["job"]
    assert apply_values(job, {"invocationId": "templated"}, remove_notset=True) == job
