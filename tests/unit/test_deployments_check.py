"""`python -m deployments check`: Prefect placeholders in jobs, and the blocks the jobs name (no server).

`missing_blocks` itself asks a real server; the acceptance suite runs it against one.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import yaml
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.__main__ import block_findings, check_file, needed_blocks, placeholder_findings
from deployments.manifest import PREFECT_YAML, Deployment, load_deployments

DEPLOYMENTS = {d.name: d for d in load_deployments()}


def _with_job(tmp_path: Path, name: str, edit: dict[str, Any]) -> Path:
    document = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    entry = next(e for e in document["deployments"] if e["name"] == name)
    entry["parameters"]["job"] |= edit
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_a_placeholder_is_one_error_row_with_its_path_and_the_fix(tmp_path: Path) -> None:
    calls = DEPLOYMENTS["offers-from-erp-api"].parameters["job"]["calls"]
    calls = [calls[0], calls[1] | {"path_variables": {"id": "{{invocationId}}"}}, calls[2]]
    path = _with_job(tmp_path, "offers-from-erp-api", {"calls": calls})
    errors = [f for f in check_file(path) if f.level == "error"]
    # The job model refuses the same string; only the `template` row says it, with the full path.
    assert [(f.deployment, f.aspect, f.detail) for f in errors] == [
        (
            "offers-from-erp-api",
            "template",
            "parameters.job.calls[1].path_variables.id: `{{invocationId}}` would be replaced by "
            "`prefect deploy`'s templating; write `${invocationId}`",
        )
    ]


def test_placeholders_in_keys_and_in_any_job_kind_are_found() -> None:
    products = DEPLOYMENTS["products-from-erp-ftp"]
    job = products.parameters["job"] | {"mapping": {"{{ header }}": "productExternalId"}}
    found = placeholder_findings(Deployment(products.name, products.entrypoint, {"job": job}))
    assert [f.detail for f in found] == [
        "parameters.job.mapping: the key `{{ header }}` is a `prefect deploy` placeholder; write `${header}`"
    ]
    assert all(placeholder_findings(d) == [] for d in DEPLOYMENTS.values())


def test_the_blocks_each_job_names() -> None:
    named = {
        name: [(ref.field, ref.block_type.get_block_type_slug(), ref.name) for ref in needed_blocks(d)]
        for name, d in DEPLOYMENTS.items()
    }
    assert named["products-from-erp-ftp"][0] == ("connection", "ftp-connection", "erp-ftp")
    assert named["products-from-pim-api"][0] == ("connection", "api-connection", "pim-api")
    assert named["offers-from-erp-api"][0] == ("connection", "api-connection", "erp-api")
    assert named["nightly-shop-reindex"] == [("operation", "shell-operation", "shop-reindex")]
    for name, refs in named.items():
        target = DEPLOYMENTS[name].parameters["job"].get("target")
        assert (("target", "hub-database", target) in refs) is bool(target), name


def test_shell_steps_and_target_blocks_are_named_too() -> None:
    products = DEPLOYMENTS["products-from-erp-ftp"]
    job = products.parameters["job"] | {
        "target": "warehouse",
        "before_import": {"block": "unzip"},
        "after_import": {"block": "reindex"},
    }
    refs = needed_blocks(Deployment(products.name, products.entrypoint, {"job": job}))
    assert [(r.field, r.block_type.get_block_type_slug(), r.name) for r in refs] == [
        ("connection", "ftp-connection", "erp-ftp"),
        ("target", "hub-database", "warehouse"),
        ("before_import.block", "shell-operation", "unzip"),
        ("after_import.block", "shell-operation", "reindex"),
    ]
    no_target = products.parameters["job"] | {"target": None}
    assert [
        r.field for r in needed_blocks(Deployment(products.name, products.entrypoint, {"job": no_target}))
    ] == [
        "connection"  # no target: the embedded SQLite database, no block
    ]


def test_an_invalid_job_names_no_block() -> None:
    products = DEPLOYMENTS["products-from-erp-ftp"]
    assert needed_blocks(Deployment(products.name, products.entrypoint, {"job": {"name": "x"}})) == []


def test_without_an_api_url_the_blocks_are_not_checked_and_it_says_so() -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        findings = block_findings(list(DEPLOYMENTS.values()))
    assert [(f.deployment, f.aspect, f.level) for f in findings] == [
        (name, "blocks", "warn") for name in DEPLOYMENTS
    ]
    assert {f.detail for f in findings} == {
        "blocks not checked: set PREFECT_API_URL to the server the deployments run on"
    }


def test_an_unreachable_server_is_one_error_row() -> None:
    with socket.socket() as closed:  # a port nothing listens on once this socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    with temporary_settings(updates={PREFECT_API_URL: url}):
        findings = block_findings(list(DEPLOYMENTS.values()))
    assert [(f.deployment, f.aspect, f.level) for f in findings] == [("-", "blocks", "error")]
    assert findings[0].detail.startswith(f"blocks not checked: the Prefect API at {url} does not answer (")
    assert findings[0].detail.endswith(
        "); start it or set PREFECT_API_URL to the server the deployments run on"
    )
