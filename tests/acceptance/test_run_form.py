"""The Custom run form of every deployment, filled and submitted in a real browser, run by a worker.

For each deployment of `prefect.yaml`, through the v2 UI's own inputs only (tests/acceptance/ui.py):
the form is submitted as it opens, then once more with `reject_threshold_percent` edited (import jobs
only: the shell job has no such field); then the deployment is run as docs/server.md does, with
`prefect deployment run`. The v1 UI's form is submitted once too, for the CSV job without a mapping
(the job whose form once sent `mapping: null`).

- each form run's stored parameters are the job of `prefect.yaml`, both read through the flow's job
  model: the form writes out every field with its default, where the file leaves them out;
- each run is executed by a worker, and every run of a deployment ends in the state type of its
  `prefect deployment run` run.

The runs are made once for the module (`form_runs`), one deployment after the other run by run (a
concurrency limit of 1 with CANCEL_NEW would cancel an overlapping run), the deployments side by side
(two workers), except `offers-from-erp-ftp`, which updates the offers `offers-from-erp-api` creates and
starts once the first run of that one is done (docs/server.md's order). One browser submits every form.

Screenshots of every form, before Submit, go to the module's tmp folder; with
`DATAHUB_UI_SCREENSHOTS=docs` the CSV and API forms are also saved as docs/ui-run-form-*.png.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import time
import typing
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect
from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType
from pydantic import BaseModel

from tests.acceptance.conftest import (
    DOCS_ORDER,
    FINAL,
    ROOT,
    Stack,
    deployment_busy,
    prefect_yaml,
    started_run_id,
)
from tests.acceptance.ui import RunForm, Version, chromium_page, field_label

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

DEPLOYMENTS = [name.rpartition("/")[2] for name in DOCS_ORDER]
# The offers file only updates offers: it waits for the first run of the export that creates them.
STARTS_AFTER = {"offers-from-erp-ftp": "offers-from-erp-api"}
EDITED_THRESHOLD = 25
V1_DEPLOYMENT = "products-from-erp-ftp"
DOCS_SCREENSHOTS = {
    "offers-from-erp-ftp": "ui-run-form-csv.png",
    "products-from-pim-api": "ui-run-form-api.png",
}
RUN_TIMEOUT = 300  # from a run's creation to its final state
ALL_TIMEOUT = 720  # every run of the module


@dataclass(frozen=True)
class Deployment:
    """One deployment of `prefect.yaml`, with its flow's job model."""

    name: str
    flow_name: str
    job: dict[str, Any]
    model: type[BaseModel]

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    def stored_job(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """A run's stored job, read through the flow's job model (defaults written out)."""
        assert sorted(parameters) == ["job"], parameters
        return self.model.model_validate(parameters["job"]).model_dump(mode="json")

    def expected_job(self, **edits: Any) -> dict[str, Any]:
        """The job of `prefect.yaml` (with the form's edits), read through the flow's job model."""
        return self.model.model_validate(self.job | edits).model_dump(mode="json")


def manifest() -> dict[str, Deployment]:
    """The deployments of the project's `prefect.yaml`, each with its flow's name and job model."""
    found = {}
    for entry in prefect_yaml()["deployments"]:
        module, _, function = entry["entrypoint"].partition(".py:")
        flow = getattr(importlib.import_module(module.replace("/", ".")), function)
        assert isinstance(flow, Flow), entry["entrypoint"]
        model = typing.get_type_hints(flow.fn)["job"]
        found[entry["name"]] = Deployment(entry["name"], flow.name, entry["parameters"]["job"], model)
    return found


@dataclass
class Step:
    """One run of a deployment: made by a form (v1 / v2, maybe edited) or by `prefect deployment run`."""

    deployment: Deployment
    deployment_id: uuid.UUID
    version: Version | None = None  # None: `prefect deployment run`
    threshold: int | None = None
    run: FlowRun | None = None  # as created
    final: FlowRun | None = None  # once a worker finished it
    error: str | None = None
    submitted_in: float = 0.0

    @property
    def how(self) -> str:
        if self.version is None:
            return "prefect deployment run"
        edited = f", reject_threshold_percent {self.threshold}" if self.threshold is not None else ""
        return f"{self.version} form{edited}"

    @property
    def label(self) -> str:
        edited = f"-threshold-{self.threshold}" if self.threshold is not None else ""
        return f"{self.version or 'cli'}-{self.deployment.name}{edited}"

    @property
    def done(self) -> bool:
        return self.final is not None or self.error is not None

    @property
    def state(self) -> StateType | None:
        return self.final.state_type if self.final else None

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.how}: {self.error}"
        run, final = self.run, self.final
        if run is None or final is None:
            return f"{self.how}: not finished"
        waited = (final.start_time - run.created).total_seconds() if final.start_time and run.created else -1
        message = (final.state.message or "")[:160] if final.state else ""
        return (
            f"{self.how}: {run.name} {final.state_type.value if final.state_type else None} "
            f"(submitted in {self.submitted_in:.0f}s, started {waited:.0f}s after, ran {final.total_run_time.total_seconds():.0f}s) "
            f"{message}"
        )


def _run_named(client: SyncPrefectClient, deployment_id: uuid.UUID, name: str) -> FlowRun:
    """The flow run of a deployment that a form created under this name."""
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])),
    )
    assert len(runs) == 1, f"{len(runs)} flow runs named {name!r} for deployment {deployment_id}"
    return runs[0]


@dataclass
class FormRuns:
    """Every step of the module, by deployment, and where the form screenshots are."""

    steps: dict[str, list[Step]]
    shots: Path

    def report(self) -> str:
        return "\n".join(
            f"{name}:\n  " + "\n  ".join(s.describe() for s in steps) for name, steps in self.steps.items()
        )


class Campaign:
    """Starts each deployment's steps in turn, as soon as it may, and follows their runs to the end."""

    def __init__(self, stack: Stack, page: Page, runs: FormRuns) -> None:
        self.stack, self.page, self.runs = stack, page, runs

    def start(self, step: Step) -> None:
        began = time.monotonic()
        try:
            if step.version is None:
                output = self.stack.run("prefect", "deployment", "run", step.deployment.full_name)
                with self.stack.client() as client:
                    step.run = client.read_flow_run(started_run_id(output))
            else:
                name = self.submit_form(step)
                with self.stack.client() as client:
                    step.run = _run_named(client, step.deployment_id, name)
        except (AssertionError, PlaywrightError, subprocess.SubprocessError) as exc:
            # The form refused the run, the page did not answer, or the CLI failed: noted, carry on.
            step.error = f"{type(exc).__name__}: {exc}"
            if step.version is not None:
                with contextlib.suppress(PlaywrightError):  # what the page showed, for the report
                    self.page.screenshot(
                        path=str(self.runs.shots / f"failed-{step.label}.png"), full_page=True
                    )
        step.submitted_in = time.monotonic() - began

    def submit_form(self, step: Step) -> str:
        assert step.version is not None
        name = step.deployment.name
        form = RunForm.open(self.page, self.stack.ui_url, step.version, str(step.deployment_id), name)
        if step.threshold is not None:
            form.fill("Reject Threshold Percent", str(step.threshold))
        form.screenshot(self.runs.shots / f"{step.label}.png")
        first_v2 = step.version == "v2" and step.threshold is None
        if first_v2 and name in DOCS_SCREENSHOTS and os.environ.get("DATAHUB_UI_SCREENSHOTS") == "docs":
            form.screenshot(ROOT / "docs" / DOCS_SCREENSHOTS[name], full_page=False)
        return form.submit()

    def follow(self, step: Step, client: SyncPrefectClient) -> None:
        assert step.run is not None
        run = client.read_flow_run(step.run.id)
        if run.state_type in FINAL:
            step.final = run
        elif step.run.created and datetime.now(UTC) - step.run.created > timedelta(seconds=RUN_TIMEOUT):
            step.error = f"{run.name} still {run.state_name} {RUN_TIMEOUT}s after its creation"

    def ready(self, name: str, client: SyncPrefectClient) -> bool:
        before = STARTS_AFTER.get(name)
        if before is not None and not self.runs.steps[before][0].done:
            return False
        return not deployment_busy(client, self.runs.steps[name][0].deployment_id)

    def run_all(self) -> None:
        deadline = time.monotonic() + ALL_TIMEOUT
        while True:
            pending = [
                (name, next((s for s in steps if not s.done), None))
                for name, steps in self.runs.steps.items()
            ]
            todo = [(name, step) for name, step in pending if step is not None]
            if not todo:
                return
            assert time.monotonic() < deadline, (
                f"not done after {ALL_TIMEOUT}s:\n{self.runs.report()}\n{self.stack.logs_text()}"
            )
            for name, step in todo:
                with self.stack.client() as client:
                    if step.run is not None:
                        self.follow(step, client)
                        continue
                    may_start = self.ready(name, client)
                if may_start:
                    self.start(step)
            time.sleep(1)


@pytest.fixture(scope="module")
def form_runs(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> FormRuns:
    """Every run of the module, made through the forms and the CLI, each followed to its final state."""
    deployments = manifest()
    assert sorted(deployments) == sorted(DEPLOYMENTS), "a deployment of prefect.yaml is not covered here"
    with stack.client() as client:
        ids = {name: client.read_deployment_by_name(d.full_name).id for name, d in deployments.items()}
    steps: dict[str, list[Step]] = {}
    for name in DEPLOYMENTS:
        deployment, deployment_id = deployments[name], ids[name]
        chain = [Step(deployment, deployment_id, "v2")]
        if "reject_threshold_percent" in deployment.model.model_fields:
            chain.append(Step(deployment, deployment_id, "v2", EDITED_THRESHOLD))
        if name == V1_DEPLOYMENT:
            chain.append(Step(deployment, deployment_id, "v1"))
        chain.append(Step(deployment, deployment_id))
        steps[name] = chain
    runs = FormRuns(steps, tmp_path_factory.mktemp("run-forms"))
    started = time.monotonic()
    with chromium_page() as page:
        Campaign(stack, page, runs).run_all()
    print(
        f"\n{runs.report()}\nall runs done in {time.monotonic() - started:.0f}s; form screenshots in {runs.shots}"
    )
    return runs


def _created(step: Step) -> FlowRun:
    """The run a step created; fails with what went wrong when it created none."""
    assert step.error is None, f"{step.deployment.name}, {step.how}: {step.error}"
    assert step.run is not None, step.describe()
    return step.run


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_the_v2_custom_run_form_runs_every_deployment(form_runs: FormRuns, name: str) -> None:
    *forms, cli = form_runs.steps[name]
    v2 = [step for step in forms if step.version == "v2"]
    deployment = v2[0].deployment
    # The form as it opens holds the job of prefect.yaml.
    assert deployment.stored_job(_created(v2[0]).parameters) == deployment.expected_job()
    # The edited form stores the edit, and the rest of the job unchanged.
    for edited in v2[1:]:
        parameters = _created(edited).parameters
        assert parameters["job"]["reject_threshold_percent"] == EDITED_THRESHOLD
        assert deployment.stored_job(parameters) == deployment.expected_job(
            reject_threshold_percent=EDITED_THRESHOLD
        )
    # A worker ran each, to the state type `prefect deployment run` gives.
    _created(cli)
    assert cli.state in FINAL, cli.describe()
    assert [step.state for step in v2] == [cli.state] * len(v2), form_runs.report()


def test_the_v1_custom_run_form_runs_a_csv_job_without_mapping(form_runs: FormRuns) -> None:
    steps = form_runs.steps[V1_DEPLOYMENT]
    [v1] = [step for step in steps if step.version == "v1"]
    assert "mapping" not in v1.deployment.job  # the job whose forms sent `mapping: null`
    assert v1.deployment.stored_job(_created(v1).parameters) == v1.deployment.expected_job()
    _created(steps[-1])
    assert v1.state == steps[-1].state, form_runs.report()


# Each paginator of an API call is its own option of the call's pattern (issue 15), with a field that
# only it has. An operator switching a call to another paginator sees that paginator's fields; back on
# the first one, the deployment's values are there again.
PAGINATOR_TABS = {
    "Offset and limit": "Offset Param",
    "Cursor": "Cursor Path",
    "Next-page link": "Next Url Path",
    "Page number": "Page Number Param",
}
API_DEPLOYMENT = "products-from-pim-api"


def test_the_api_form_switches_between_the_paginators(stack: Stack, tmp_path: Path) -> None:
    deployment = manifest()[API_DEPLOYMENT]
    pattern = deployment.job["calls"][0]["pattern"]
    assert pattern["kind"] in ("page_number", "paging"), "the test starts from a page-number call"
    with stack.client() as client:
        deployment_id = client.read_deployment_by_name(deployment.full_name).id
    with chromium_page() as page:
        form = RunForm.open(page, stack.ui_url, "v2", str(deployment_id), API_DEPLOYMENT)
        expect(form.option("Page number"), "the deployment's paginator is chosen").to_have_attribute(
            "aria-selected", "true"
        )
        for tab, own_field in PAGINATOR_TABS.items():
            form.choose(tab)
            expect(form.option(tab)).to_have_attribute("aria-selected", "true")
            for name in PAGINATOR_TABS.values():  # its own field, and no other paginator's
                expect(page.get_by_text(field_label(name)), f"{tab!r} shows {name!r}").to_have_count(
                    1 if name == own_field else 0
                )
            form.screenshot(tmp_path / f"pattern-{tab}.png")
        expect(form.field("Page Number Param")).to_have_value(pattern["page_number_param"])
