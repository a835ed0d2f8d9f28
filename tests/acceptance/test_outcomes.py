"""An operator finds every outcome of a job in the deployment's runs list, as the UI first shows it.

One CSV deployment (the products job on its own FTP folder, no schedule) runs three times through a
worker: a drop with one bad row (PARTIAL), then nothing new (SKIPPED), then a file whose key column
is missing (FAILED). The deployment's page, in the v1 and the v2 UI with their default filter ("All
except scheduled"), must list all three runs, each with Prefect's own state badge, the status tag
and the run's name saying the status and the counts or the reason. Screenshots of each list go to tmp_path; with
`DATAHUB_UI_SCREENSHOTS=docs` also to docs/: ui-runs-list-v1.png and -v2.png, and the PARTIAL
run's page, its artifacts, its progress artifact and its summary (v1).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import FloatRect, Page, expect

from tests.acceptance.conftest import ROOT, Stack, one_deployment_manifest, prefect_yaml
from tests.acceptance.ui import ACTION_MS, Version, chromium_page, run_row

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]


JOB = "outcomes-products-from-erp-ftp"
SAMPLE = ROOT / "demo" / "data" / "samples" / "products-2026-11-20.csv"
DOCS = ROOT / "docs"


def outcomes_manifest(path: Path) -> Path:
    """A prefect.yaml holding one deployment: the products job on the folder `outcomes/`, no schedule."""
    entry = next(d for d in prefect_yaml()["deployments"] if d["name"] == "products-from-erp-ftp")
    folders = {
        "inbound_dir": "outcomes/inbound",
        "outbound_dir": "outcomes/outbound",
        "failed_dir": "outcomes/failed",
    }
    source = entry["parameters"]["job"]["source"] | folders
    return one_deployment_manifest(path, "products-from-erp-ftp", JOB, {"source": source})


def run_once(stack: Stack, deployment_id: Any) -> str:
    """Run the deployment through a worker; return the run's id once it is final."""
    with stack.client() as client:
        flow_run = client.create_flow_run_from_deployment(deployment_id)
    return str(stack.wait_final(flow_run.id).id)


def test_every_outcome_is_listed_with_its_counts_or_reason(stack: Stack, tmp_path: Path) -> None:
    inbound = stack.ftp_root / "outcomes" / "inbound"
    for folder in ("inbound", "outbound", "failed"):
        (stack.ftp_root / "outcomes" / folder).mkdir(parents=True, exist_ok=True)
    manifest = outcomes_manifest(tmp_path / "prefect.yaml")
    stack.run("prefect", "--no-prompt", "deploy", "--prefect-file", str(manifest), "--name", JOB)
    with stack.client() as client:
        deployment_id = client.read_deployment_by_name(f"import-csv-from-ftp/{JOB}").id
    try:
        check_outcomes(stack, deployment_id, inbound, tmp_path)
    finally:  # the other tests expect the server to hold prefect.yaml's deployments
        with stack.client() as client:
            client.delete_deployment(deployment_id)


def check_outcomes(stack: Stack, deployment_id: uuid.UUID, inbound: Path, tmp_path: Path) -> None:
    """Run the three outcomes, then look at them in both UIs."""
    shutil.copy(SAMPLE, inbound / "products-a.csv")  # one bad price in 12 records, under the 10 % threshold
    partial = run_once(stack, deployment_id)
    skipped = run_once(stack, deployment_id)  # the inbound folder is empty now
    (inbound / "products-b.csv").write_text("Product Id;Product Names\nP-1;Chair\n", encoding="utf-8")
    failed = run_once(stack, deployment_id)

    expected: dict[str, tuple[str, str, str | re.Pattern[str]]] = {
        partial: ("Completed", "datahub:partial", f"PARTIAL · 1 of 12 rejected · {JOB}"),
        skipped: ("Completed", "datahub:skipped", f"SKIPPED · nothing new to import · {JOB}"),
        failed: (
            "Failed",
            "datahub:failed",
            re.compile(rf"^FAILED · no column is mapped onto the key .* · {JOB}$"),
        ),
    }
    with stack.client() as client:  # the status tag, for filters and automations (a row shows only some tags)
        for run_id, (_, status, _) in expected.items():
            assert status in client.read_flow_run(uuid.UUID(run_id)).tags
    versions: list[Version] = ["v1", "v2"]
    with chromium_page() as page:
        for version in versions:
            prefix = "/v2" if version == "v2" else ""
            page.goto(f"{stack.ui_url}{prefix}/deployments/deployment/{deployment_id}")
            for run_id, (badge, status, outcome) in expected.items():
                row = run_row(page, run_id)
                expect(row, f"{version}: run {run_id} ({status}) is listed").to_be_visible(timeout=ACTION_MS)
                shown = " | ".join(row.inner_text().split("\n"))
                expect(row.get_by_text(badge, exact=True).first, f"{version}: {shown}").to_be_visible()
                # The run's name: the job, its status and its counts or reason.
                expect(row.get_by_role("link", name=outcome), f"{version}: {shown}").to_be_visible()
            shoot(page, tmp_path, f"runs-list-{version}")
        # The PARTIAL run's page: its artifacts, the summary leading with the outcome, the progress at 100 %.
        page.goto(f"{stack.ui_url}/runs/flow-run/{partial}")
        expect(page.get_by_text(f"PARTIAL · 1 of 12 rejected · {JOB}").first).to_be_visible(timeout=ACTION_MS)
        shoot(page, tmp_path, "run-page")
        page.get_by_text("Artifacts", exact=True).first.click()
        expect(page.get_by_text(f"{JOB}-summary").first).to_be_visible(timeout=ACTION_MS)
        expect(page.get_by_text(f"{JOB}-progress").first).to_be_visible()
        shoot(page, tmp_path, "run-artifacts", top=520)
        expect(page.get_by_text("PARTIAL: 1 file, rows read 12").first).to_be_visible(timeout=ACTION_MS)
        page.get_by_text(f"{JOB}-summary").first.click()  # the run's own summary, rendered
        expect(page.get_by_text("Notes:", exact=True).first).to_be_visible(timeout=ACTION_MS)
        shoot(page, tmp_path, "summary-artifact")
        # A key's page: its latest version (the FAILED run's), then every run's outcome, at a glance.
        page.goto(f"{stack.ui_url}/artifacts/key/{JOB}-progress")
        expect(page.get_by_text(f"PARTIAL · 1 of 12 rejected · {JOB}").first).to_be_visible(timeout=ACTION_MS)
        shoot(page, tmp_path, "progress-artifact")


def shoot(page: Page, tmp_path: Path, name: str, top: float = 0) -> None:
    """Save 800 px of the page from `top` to tmp_path, and to docs/ui-NAME.png with DATAHUB_UI_SCREENSHOTS=docs."""
    clip: FloatRect = {"x": 0, "y": top, "width": 1400, "height": 800}  # not the empty page below
    page.screenshot(path=str(tmp_path / f"{name}.png"), clip=clip)
    if os.environ.get("DATAHUB_UI_SCREENSHOTS") == "docs":
        page.screenshot(path=str(DOCS / f"ui-{name}.png"), clip=clip)
