"""Notifications as code, against the stack's real server: each automation fires and a webhook hears it.

A Custom Webhook notification block points at a small HTTP server of this test (loopback); the alerts
deployment (the products job on its own FTP folder, no failed folder, so a bad file stays and fails
every run) is deployed with `python -m deployments deploy --quiet-after 15s`, which makes its three
automations. Then, through a real worker:

1. a file whose key column is missing fails the run: one FAILED message with job, status, counts and
   reason;
2. the same file fails the next run the same way: no second message (alerts once);
3. the bad file removed and a file with one bad row dropped: a PARTIAL run, one "has rejects" message;
4. with no successful run within 15 s (before the first good run), the proactive "quiet" automation
   fires: a QUIET message.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.acceptance.conftest import ROOT, Stack, one_deployment_manifest, prefect_yaml, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

JOB = "alerts-products-from-erp-ftp"
SAMPLE = ROOT / "demo" / "data" / "samples" / "products-2026-11-20.csv"
BROKEN = "Product Id;Product Names\nP-1;Chair\n"
QUIET = "15s"
QUIET_SECONDS = 15
HEARD_WITHIN = 180  # seconds: event -> trigger -> action -> webhook, on a busy 2-core machine


class Webhook:
    """A loopback HTTP server that keeps the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        heard = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                heard.append(json.loads(body or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def about(self, subject: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("subject") == subject]


def alerts_manifest(path: Path) -> Path:
    """A prefect.yaml holding one deployment: the products job on `alerts/`, no failed folder, no schedule."""
    entry = next(d for d in prefect_yaml()["deployments"] if d["name"] == "products-from-erp-ftp")
    source = {k: v for k, v in entry["parameters"]["job"]["source"].items() if k != "failed_dir"}
    source |= {"inbound_dir": "alerts/inbound", "outbound_dir": "alerts/outbound"}
    return one_deployment_manifest(path, "products-from-erp-ftp", JOB, {"source": source})


def logs(stack: Stack) -> tuple[Path, ...]:
    return (*stack.worker_logs, stack.server_log)


def run_once(stack: Stack, deployment_id: Any) -> StateType | None:
    with stack.client() as client:
        flow_run = client.create_flow_run_from_deployment(deployment_id)
    return stack.wait_final(flow_run.id).state_type


def test_each_alert_fires_once_and_says_job_status_and_counts(
    stack: Stack, webhook: Webhook, tmp_path: Path
) -> None:
    with temporary_settings({PREFECT_API_URL: stack.api_url}):
        CustomWebhookNotificationBlock(
            name="datahub alerts",
            url=webhook.url,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save("datahub-alerts", overwrite=True)
    inbound = stack.ftp_root / "alerts" / "inbound"
    for folder in ("inbound", "outbound"):
        (stack.ftp_root / "alerts" / folder).mkdir(parents=True, exist_ok=True)
    manifest = alerts_manifest(tmp_path / "prefect.yaml")
    deployed = stack.run(
        sys.executable, "-m", "deployments", "deploy", "--prefect-file", str(manifest), "--quiet-after", QUIET
    )
    for kind in ("failed", "rejects", "quiet"):
        assert f"alerts: datahub: {JOB} {kind}: created" in deployed, deployed
    again = stack.run(
        sys.executable, "-m", "deployments", "deploy", "--prefect-file", str(manifest), "--quiet-after", QUIET
    )
    for kind in ("failed", "rejects", "quiet"):
        assert f"alerts: datahub: {JOB} {kind}: unchanged" in again, again
    with stack.client() as client:
        deployment_id = client.read_deployment_by_name(f"import-csv-from-ftp/{JOB}").id

    (inbound / "products-broken.csv").write_text(BROKEN, encoding="utf-8")
    assert run_once(stack, deployment_id) == StateType.FAILED
    failed = wait_for(
        "the FAILED alert", lambda: webhook.about(f"Data Hub: {JOB} FAILED"), HEARD_WITHIN, 2, logs(stack)
    )
    assert failed[0]["body"].startswith(
        f"FAILED: {JOB} (products): 1 file, rows read 0, inserted 0, updated 0, unchanged 0, rejected 0. "
        "alerts/inbound/products-broken.csv: no column is mapped onto the key"
    ), failed

    assert run_once(stack, deployment_id) == StateType.FAILED  # the same file, the same failure
    (inbound / "products-broken.csv").unlink()
    shutil.copy(SAMPLE, inbound / "products-a.csv")  # one bad price in 12 records
    assert run_once(stack, deployment_id) == StateType.COMPLETED
    rejects = wait_for(
        "the rejects alert",
        lambda: webhook.about(f"Data Hub: {JOB} has rejects"),
        HEARD_WITHIN,
        2,
        logs(stack),
    )
    assert rejects[0]["body"].startswith(f"PARTIAL: {JOB} (products): 1 file, rows read 12, "), rejects
    assert "rejected 1 (run " in rejects[0]["body"]
    # The repeated failure said nothing: the rejects alert came after it, and one FAILED message only.
    assert len(webhook.about(f"Data Hub: {JOB} FAILED")) == 1, webhook.messages

    # No successful run in the first 15 s after the deploy (two failures first): the job was quiet.
    quiet = wait_for(
        "the quiet alert", lambda: webhook.about(f"Data Hub: {JOB} is quiet"), HEARD_WITHIN, 2, logs(stack)
    )
    assert quiet[0]["body"] == f"QUIET: no successful run of {JOB} (import-csv-from-ftp/{JOB}) within 15 s."
    changed = stack.run(
        sys.executable, "-m", "deployments", "deploy", "--prefect-file", str(manifest), "--quiet-after", "1h"
    )
    assert f"alerts: datahub: {JOB} quiet: updated" in changed, changed
    assert f"alerts: datahub: {JOB} failed: unchanged" in changed, changed


@pytest.fixture
def webhook(stack: Stack) -> Iterator[Webhook]:
    """The webhook, answering until this test's deployment and automations are gone.

    The quiet automation fires every 15 s, and a notification the server cannot deliver is an ERROR
    in its log, which fails the session. The deployment goes too (the other tests expect the server
    to hold prefect.yaml's deployments), and the block (their deploys make no automations then).
    """
    hook = Webhook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    yield hook
    with stack.client() as client:
        try:
            deployment = client.read_deployment_by_name(f"import-csv-from-ftp/{JOB}")
        except ObjectNotFound:
            deployment = None
        if deployment is not None:
            client.delete_resource_owned_automations(f"prefect.deployment.{deployment.id}")
            client.delete_deployment(deployment.id)
        for automation in client.read_automations():
            if automation.name.startswith(f"datahub: {JOB} "):
                client.delete_automation(automation.id)
        # No later deploy of the other tests makes automations that would send to this webhook.
        block = client.read_block_document_by_name("datahub-alerts", "custom-webhook")
        client.delete_block_document(block.id)
    time.sleep(QUIET_SECONDS)  # an action already queued is delivered before the server goes
    hook.server.shutdown()
    hook.server.server_close()
