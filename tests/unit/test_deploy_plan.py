"""`python -m deployments deploy`, the parts that need no server: reading prefect.yaml, the payload, the
schedule plan by slug, the field diff and the printed lines (deployments/deploy.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import DeploymentSchedule, VersionInfo
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.__main__ import main
from deployments.deploy import (
    DeployError,
    FlowFacts,
    deployment_fields,
    field_changes,
    outcome_line,
    pick_version,
    plan_file,
    plan_schedules,
    read_manifest,
    resolve_entrypoint,
    schedule_create,
    select,
    stored_fields,
)

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "prefect.yaml"
PLACEHOLDER = "{{ $DATAHUB_PROJECT_DIR }}"


def entries() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    return loaded


def entry(name: str) -> dict[str, Any]:
    return next(e for e in entries() if e["name"] == name)


def write_copy(tmp_path: Path, change: Any = None) -> Path:
    """A copy of the project's prefect.yaml in tmp_path, `change(document)` applied."""
    document = yaml.safe_load(PREFECT_YAML.read_text())
    if change is not None:
        change(document)
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def stored_schedule(slug: str | None, schedule: Any, active: bool = True) -> DeploymentSchedule:
    return DeploymentSchedule(id=uuid.uuid4(), schedule=schedule, active=active, slug=slug)


def cron(expression: str, slug: str = "daily-0200") -> DeploymentScheduleCreate:
    return schedule_create({"cron": expression, "timezone": "UTC", "slug": slug}, "here")


# --- schedules from the YAML ---------------------------------------------------------------------------


def test_cron_interval_and_rrule_entries_become_prefect_schedules() -> None:
    assert cron("0 2 * * *").schedule == CronSchedule(cron="0 2 * * *", timezone="UTC")
    interval = schedule_create(
        {"interval": 5400, "anchor_date": "2026-01-01T00:00:00+00:00", "timezone": "UTC", "slug": "s"}, "here"
    )
    assert interval.schedule == IntervalSchedule(
        interval=timedelta(seconds=5400), anchor_date=datetime(2026, 1, 1, tzinfo=UTC), timezone="UTC"
    )
    rrule = schedule_create(
        {"rrule": "FREQ=DAILY", "timezone": "Europe/Paris", "slug": "r", "active": False}, "x"
    )
    assert isinstance(rrule.schedule, RRuleSchedule)  # Prefect adds a DTSTART, on the server's copy too
    assert (rrule.schedule.rrule.splitlines()[-1], rrule.schedule.timezone) == ("FREQ=DAILY", "Europe/Paris")
    assert (rrule.active, rrule.slug, rrule.parameters) == (False, "r", {})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param({"cron": "0 2 * * *"}, "no `slug:`; add one", id="no-slug"),
        pytest.param(
            {"cron": "0 2 * * *", "interval": 60, "slug": "s"}, "exactly one of cron", id="two-kinds"
        ),
        pytest.param({"interval": 60, "slug": "s"}, "interval without `anchor_date`", id="no-anchor"),
        pytest.param({"cron": "0 2 * *", "slug": "s"}, "cron: ", id="bad-cron"),
        pytest.param(
            {"cron": "0 2 * * *", "slug": "s", "replaces": "t"}, "unknown key `replaces:`", id="unknown"
        ),
    ],
)
def test_a_bad_schedule_entry_says_where_and_what(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(DeployError, match=r"^here") as caught:
        schedule_create(raw, "here")
    assert message in str(caught.value)


# --- the plan by slug ------------------------------------------------------------------------------------


def test_a_renamed_slug_adds_the_new_schedule_and_removes_the_old() -> None:
    old = stored_schedule("daily-0200", CronSchedule(cron="0 2 * * *", timezone="UTC"))
    plan = plan_schedules([cron("0 3 * * *", "daily-0300")], [old])
    assert [s.slug for s in plan.create] == ["daily-0300"]
    assert plan.update == []
    assert plan.delete == [old]
    assert plan.changes() == ["daily-0300 added", "daily-0200 removed"]


def test_a_schedule_whose_slug_stayed_is_updated_in_place_only_when_it_changed() -> None:
    same = stored_schedule("daily-0200", CronSchedule(cron="0 2 * * *", timezone="UTC"))
    assert plan_schedules([cron("0 2 * * *")], [same]).changes() == []
    moved = plan_schedules([cron("0 4 * * *")], [same])
    assert [(stored.id, wanted.schedule) for stored, wanted in moved.update] == [
        (same.id, CronSchedule(cron="0 4 * * *", timezone="UTC"))
    ]
    assert moved.changes() == ["daily-0200 changed"]
    inactive = DeploymentScheduleCreate(schedule=same.schedule, active=False, slug="daily-0200")
    assert plan_schedules([inactive], [same]).changes() == ["daily-0200 changed"]


def test_an_interval_anchor_written_with_another_offset_is_the_same_schedule() -> None:
    wanted = schedule_create(
        {"interval": 5400, "anchor_date": "2026-01-01T01:00:00+01:00", "timezone": "UTC", "slug": "s"}, "x"
    )
    stored = stored_schedule(
        "s", IntervalSchedule(interval=timedelta(seconds=5400), anchor_date=datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert plan_schedules([wanted], [stored]).changes() == []


def test_schedules_without_slug_on_the_server_are_removed() -> None:
    legacy = stored_schedule(None, CronSchedule(cron="0 2 * * *", timezone="UTC"))
    plan = plan_schedules([cron("0 2 * * *")], [legacy])
    assert (len(plan.create), plan.delete) == (1, [legacy])


# --- fields and their diff -------------------------------------------------------------------------------


FACTS = FlowFacts(
    name="import-csv-from-ftp", description="doc", version="abc", parameter_schema={"type": "object"}
)


def test_the_payload_keeps_parameters_and_pull_placeholders_as_written() -> None:
    raw = entry("products-from-erp-ftp")
    pull = [{"prefect.deployments.steps.set_working_directory": {"directory": PLACEHOLDER}}]
    fields = deployment_fields(raw, pull, FACTS, VersionInfo(type="prefect:simple", version="abc"), "here")
    assert fields["parameters"] == raw["parameters"]
    assert fields["pull_steps"] == pull
    assert fields["entrypoint"] == "flows/import_csv_from_ftp.py:import_csv_from_ftp"
    assert (fields["work_pool_name"], fields["work_queue_name"]) == ("local-process", "default")
    assert fields["concurrency_limit"] == 1
    assert fields["concurrency_options"].collision_strategy == "ENQUEUE"
    assert fields["enforce_parameter_schema"] is True
    assert (fields["description"], fields["tags"]) == (raw["description"], ["import", "csv", "products"])
    assert "paused" not in fields


def test_dates_in_parameters_are_sent_as_json_and_the_flow_docstring_is_the_default_description() -> None:
    raw = {
        "name": "n",
        "entrypoint": "f.py:f",
        "work_pool": {"name": "p"},
        "parameters": {"since": datetime(2026, 1, 1)},
    }
    fields = deployment_fields(raw, [], FACTS, VersionInfo(type="prefect:simple", version="abc"), "here")
    assert fields["parameters"] == {"since": "2026-01-01T00:00:00"}
    assert fields["description"] == "doc"
    assert (fields["concurrency_limit"], fields["concurrency_options"], fields["tags"]) == (None, None, [])


def test_the_version_is_the_yaml_one_else_the_vcs_one_else_the_flow_files() -> None:
    git = VersionInfo(type="vcs:git", version="1a2b3c4d", branch="main")
    assert pick_version(None, "abc", None) == VersionInfo(type="prefect:simple", version="abc")
    assert pick_version("2.0", "abc", None).version == "2.0"
    assert pick_version(None, "abc", git) == git
    assert pick_version("2.0", "abc", git).model_dump() == {**git.model_dump(), "version": "2.0"}


def stored_like(fields: dict[str, Any], **changes: Any) -> DeploymentResponse:
    data = {key: value for key, value in fields.items() if key not in ("version_info", "concurrency_limit")}
    data["concurrency_options"] = fields["concurrency_options"].model_dump(mode="json")
    data["global_concurrency_limit"] = {"name": "x", "limit": fields["concurrency_limit"], "active_slots": 0}
    return DeploymentResponse.model_validate({"name": "n", "flow_id": uuid.uuid4(), **data, **changes})


def test_the_diff_names_each_changed_field_and_nothing_when_the_server_matches() -> None:
    fields = deployment_fields(
        entry("offers-from-erp-ftp"), [], FACTS, VersionInfo(type="prefect:simple", version="abc"), "here"
    )
    assert field_changes(stored_fields(stored_like(fields)), fields) == []
    edited = {**fields["parameters"], "job": {**fields["parameters"]["job"], "entity": "products"}}
    changed = stored_like(fields, parameters=edited, tags=["x"], version="0123456789abcdef0123456789abcdef")
    assert field_changes(stored_fields(changed), fields) == [
        "version 01234567 → abc",
        "parameters changed",
        "tags changed",
    ]
    strategy = stored_like(fields, concurrency_options={"collision_strategy": "ENQUEUE"})
    assert field_changes(stored_fields(strategy), fields) == ["collision strategy changed"]


def test_no_queue_in_the_yaml_accepts_the_pools_default_queue() -> None:
    fields = deployment_fields(
        {**entry("offers-from-erp-ftp"), "work_pool": {"name": "local-process"}},
        [],
        FACTS,
        VersionInfo(type="prefect:simple", version="abc"),
        "here",
    )
    assert field_changes(stored_fields(stored_like(fields, work_queue_name="default")), fields) == []


# --- printed lines ---------------------------------------------------------------------------------------


def test_one_line_per_deployment() -> None:
    name = "import-csv-from-ftp/products-from-erp-ftp"
    assert outcome_line(name, created=True, schedules=["daily-0200"], changes=[], paused=False) == (
        f"created {name} (schedules: daily-0200)"
    )
    updated = outcome_line(
        name,
        created=False,
        schedules=["daily-0300 added", "daily-0200 removed"],
        changes=["parameters changed"],
        paused=False,
    )
    assert updated == f"updated {name}: schedule daily-0300 added, daily-0200 removed; parameters changed"
    assert outcome_line(name, created=False, schedules=[], changes=[], paused=False) == f"unchanged {name}"
    assert (
        outcome_line(name, created=False, schedules=[], changes=[], paused=True)
        == f"unchanged {name}; kept paused"
    )


# --- the file ---------------------------------------------------------------------------------------------


def test_the_projects_file_plans_every_deployment_untemplated() -> None:
    specs = plan_file(PREFECT_YAML)
    assert [spec.name for spec in specs] == [e["name"] for e in entries()]
    for spec, raw in zip(specs, entries(), strict=True):
        assert spec.fields["parameters"] == raw["parameters"], spec.name
        assert spec.fields["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": PLACEHOLDER}}
        ]
        assert [s.slug for s in spec.schedules] == [s["slug"] for s in raw["schedules"]]
        assert spec.fields["parameter_openapi_schema"]["properties"]["job"]
    assert specs[0].full_name == "import-csv-from-ftp/products-from-erp-ftp"


def test_names_select_deployments_in_file_order_and_an_unknown_name_is_refused() -> None:
    chosen = select(entries(), ["run-shell-job/nightly-shop-reindex", "products-from-erp-ftp"], PREFECT_YAML)
    assert [e["name"] for e in chosen] == ["products-from-erp-ftp", "nightly-shop-reindex"]
    with pytest.raises(
        DeployError, match=r"--name 'nope': no such deployment in .*; known: products-from-erp-ftp"
    ):
        select(entries(), ["nope"], PREFECT_YAML)
    with pytest.raises(DeployError, match="use import-csv-from-ftp/products-from-erp-ftp"):
        plan_file(PREFECT_YAML, ["run-shell-job/products-from-erp-ftp"])


def test_a_copy_elsewhere_finds_relative_entrypoints_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    copy = write_copy(tmp_path)
    spec = plan_file(copy, ["offers-from-erp-ftp"])[0]
    assert (
        spec.fields["entrypoint"] == "flows/import_csv_from_ftp.py:import_csv_from_ftp"
    )  # stored as written
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeployError, match=r"no file flows/run_shell_job\.py in .* nor in .*; fix the path"):
        resolve_entrypoint("flows/run_shell_job.py:run_shell_job", tmp_path, "here")


def set_job_field(name: str, key: str, value: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        next(e for e in document["deployments"] if e["name"] == name)["parameters"]["job"][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            set_job_field("products-from-erp-ftp", "reject_threshold_percent", 500),
            "deployment 'products-from-erp-ftp': parameters.job.reject_threshold_percent: ",
            id="job-field",
        ),
        pytest.param(
            lambda d: d["deployments"][0].update(paused=True),
            "`paused:` is not deployed: it would undo an operator's pause",
            id="paused",
        ),
        pytest.param(
            lambda d: d["deployments"][1]["schedules"][0].pop("slug"),
            "deployment 'offers-from-erp-ftp': schedules[0]: no `slug:`",
            id="slug",
        ),
        pytest.param(
            lambda d: d["deployments"][2].update(parameters={"job": {}, "extra": 1}),
            "parameters.extra: flow 'import-json-from-api' takes no such parameter",
            id="unknown-parameter",
        ),
        pytest.param(lambda d: d.update(pull=None), "no `pull:` steps", id="no-pull"),
        pytest.param(
            lambda d: d["deployments"][3].pop("work_pool"), "no `work_pool: {name: ...}`", id="no-pool"
        ),
    ],
)
def test_a_deployment_that_fails_validation_is_named_with_its_field(
    tmp_path: Path, change: Any, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(DeployError) as caught:
        plan_file(write_copy(tmp_path, change))
    assert message in str(caught.value)


def test_read_manifest_refuses_build_steps(tmp_path: Path) -> None:
    path = write_copy(
        tmp_path, lambda d: d.update(build=[{"prefect.deployments.steps.run_shell_script": {}}])
    )
    with pytest.raises(DeployError, match="top-level `build:` steps are not run"):
        read_manifest(path)


# --- the command, without a server -----------------------------------------------------------------------


def test_the_command_says_to_set_prefect_api_url(capsys: pytest.CaptureFixture[str]) -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["deploy", "--name", "nightly-shop-reindex"]) == 1
    assert "error: PREFECT_API_URL is not set" in capsys.readouterr().err
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert main(["deploy", "--name", "nightly-shop-reindex"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the Prefect server at http://127.0.0.1:9/api")
    assert "set PREFECT_API_URL" in err
    assert len(err.splitlines()) == 1


def test_the_command_refuses_an_unknown_name_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "--name", "nope"]) == 1
    assert capsys.readouterr().err.startswith("error: --name 'nope': no such deployment in ")
