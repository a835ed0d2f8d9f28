"""`python -m deployments deploy [--prefect-file PATH] [--name DEPLOYMENT ...]`: (re)deploy on Prefect's client.

It stores what `prefect --no-prompt deploy --all` stores (flow, parameters, the flow's parameter schema,
`enforce_parameter_schema`, description, tags, work pool and queue, schedules, concurrency limit and
collision strategy, the `pull:` steps, version, entrypoint), with what operators need on a redeploy:

- **Schedules are reconciled by slug.** A schedule whose slug is still in the YAML is updated in place
  (its id stays), a new slug is added, and every schedule on the server whose slug the YAML no longer
  lists is deleted: renaming `daily-0200` to `daily-0300` leaves only `daily-0300`. Every schedule
  needs a `slug`; an interval schedule needs an `anchor_date` (else each deploy would move its phase).
- **`paused` of an existing deployment is never sent**: an operator's pause survives a redeploy. A new
  deployment starts active. (`prefect deploy` sends `paused: false` unless the YAML says otherwise.)
- **Nothing is templated.** Parameters reach the server exactly as the YAML writes them (`prefect
  deploy` applies its `{{ name }}` templating to them), and the `pull:` steps keep their placeholders,
  such as `{{ $DATAHUB_PROJECT_DIR }}`, for the worker to resolve when it runs the flow.
- A deployment whose stored fields and schedules already match is not written at all (`unchanged`).

Entrypoints: a relative entrypoint is looked up in the folder of the prefect.yaml, then in the current
folder (where `prefect deploy` looks). The server stores it as written; the worker resolves it in the
folder its pull step moves to. A copy of prefect.yaml elsewhere therefore deploys the same
deployments when the command runs from the project's folder.

Everything is checked before the server is touched (keys, schedules, entrypoints, each job against its
flow's model and the parameter schema the server enforces, the work pools). One line is printed per
deployment (`created ...`, `updated ...: <what changed>`, `unchanged ...`, `; kept paused` when it is
paused); a problem prints one `error:` line saying what, where and the fix, and exits with 1.
Not supported (an error says so): `build:` / `push:` steps, `triggers`, `sla`, `paused`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
import typing
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, DeploymentUpdate
from prefect.client.schemas.objects import ConcurrencyOptions, DeploymentSchedule, VersionInfo
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from pydantic import BaseModel, TypeAdapter, ValidationError

from deployments.alerts import MIN_QUIET_AFTER, AlertTarget, sync_alerts

DEPLOYMENT_KEYS = frozenset(
    {
        "name",
        "description",
        "tags",
        "entrypoint",
        "work_pool",
        "concurrency_limit",
        "schedules",
        "parameters",
        "version",
        "version_type",
        "enforce_parameter_schema",
        "pull",
        "build",
        "push",
    }
)
REFUSED_KEYS = {
    "paused": "it would undo an operator's pause on every deploy; remove it and use "
    "`python -m deployments pause|resume`",
    "schedule": "it is the old single-schedule form; write a `schedules:` list with slugs",
    "triggers": "this command does not deploy triggers; remove them or use `prefect deploy`",
    "sla": "this command does not deploy SLAs; remove them or use `prefect deploy`",
}
SCHEDULE_KINDS = ("cron", "interval", "rrule")
SCHEDULE_KEYS = frozenset(
    {*SCHEDULE_KINDS, "timezone", "anchor_date", "day_or", "slug", "active", "parameters"}
)
API_URL_HINT = "export PREFECT_API_URL=http://127.0.0.1:4200/api"
FIELD_LABELS = {
    "description": "description",
    "parameters": "parameters",
    "tags": "tags",
    "work_pool_name": "work pool",
    "work_queue_name": "work queue",
    "job_variables": "job variables",
    "entrypoint": "entrypoint",
    "enforce_parameter_schema": "enforce_parameter_schema",
    "parameter_openapi_schema": "parameter schema",
    "pull_steps": "pull steps",
    "concurrency_limit": "concurrency limit",
    "concurrency_options": "collision strategy",
}
_JSON = TypeAdapter(dict[str, Any])


class DeployError(Exception):
    """A problem that stops the deploy; its message is the one line printed after `error: `."""


@dataclass(frozen=True)
class FlowFacts:
    """What a deployment takes from its flow."""

    name: str
    description: str | None
    version: str | None
    parameter_schema: dict[str, Any]


@dataclass(frozen=True)
class Spec:
    """One deployment as the server should store it: `fields` are those of a `DeploymentUpdate`."""

    name: str
    flow_name: str
    fields: dict[str, Any]
    schedules: list[DeploymentScheduleCreate]

    @property
    def full_name(self) -> str:
        """`flow-name/deployment-name`, as Prefect names deployments."""
        return f"{self.flow_name}/{self.name}"


@dataclass(frozen=True)
class SchedulePlan:
    """How to bring the server's schedules of one deployment to the YAML's."""

    create: list[DeploymentScheduleCreate]
    update: list[tuple[DeploymentSchedule, DeploymentScheduleCreate]]
    delete: list[DeploymentSchedule]

    def changes(self) -> list[str]:
        """`daily-0300 added`, `hourly changed`, `daily-0200 removed`, in that order."""
        return [
            *(f"{s.slug} added" for s in self.create),
            *(f"{s.slug} changed" for _, s in self.update),
            *(f"{s.slug or s.id} removed" for s in self.delete),
        ]


# --- the YAML (pure) -------------------------------------------------------------------------------------


def read_manifest(path: Path) -> tuple[list[dict[str, Any]], Any]:
    """Return the deployment entries of a prefect.yaml (anchors resolved) and its top-level `pull:`."""
    if not path.is_file():
        raise DeployError(f"{path} does not exist; pass --prefect-file with the path of a prefect.yaml")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DeployError(f"{path} is not valid YAML ({' '.join(str(exc).split())}); fix the file") from exc
    if not isinstance(document, dict) or not isinstance(document.get("deployments"), list):
        raise DeployError(f"{path} has no `deployments:` list; is it a prefect.yaml?")
    for key in ("build", "push"):
        if document.get(key):
            raise DeployError(
                f"{path}: top-level `{key}:` steps are not run by this command; set `{key}: null` "
                "(workers run the code from the project folder the pull step moves to)"
            )
    entries: list[dict[str, Any]] = document["deployments"]
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise DeployError(f"{path}: deployments[{index}] has no `name:`; give every deployment a name")
    twice = [name for name, count in Counter(e["name"] for e in entries).items() if count > 1]
    if twice:
        raise DeployError(f"{path}: deployment name {twice[0]!r} is used more than once; rename all but one")
    return entries, document.get("pull")


def select(entries: list[dict[str, Any]], names: Sequence[str], path: Path) -> list[dict[str, Any]]:
    """Return the entries named (`flow/deployment` or `deployment`), in file order; all when none is."""
    if not names:
        return entries
    known = [entry["name"] for entry in entries]
    for wanted in names:
        if wanted.rpartition("/")[2] not in known:
            raise DeployError(f"--name {wanted!r}: no such deployment in {path}; known: {', '.join(known)}")
    bare = {wanted.rpartition("/")[2] for wanted in names}
    return [entry for entry in entries if entry["name"] in bare]


def check_flow_names(names: Sequence[str], specs: list[Spec], path: Path) -> None:
    """Refuse a `flow/deployment` name whose flow is not the one the deployment's entrypoint gives."""
    flows = {spec.name: spec.flow_name for spec in specs}
    for wanted in names:
        flow, slash, name = wanted.rpartition("/")
        if slash and flows[name] != flow:
            raise DeployError(
                f"--name {wanted!r}: in {path}, {name!r} deploys flow {flows[name]!r}; "
                f"use {flows[name]}/{name}"
            )


def check_keys(entry: dict[str, Any], where: str) -> None:
    """Refuse the keys this command does not deploy, and non-empty `build:` / `push:` steps."""
    for key in entry:
        if key in REFUSED_KEYS:
            raise DeployError(f"{where}: `{key}:` is not deployed: {REFUSED_KEYS[key]}")
        if key not in DEPLOYMENT_KEYS:
            raise DeployError(
                f"{where}: unknown key `{key}:`; remove it (known: {', '.join(sorted(DEPLOYMENT_KEYS))})"
            )
    for key in ("build", "push"):
        if entry.get(key):
            raise DeployError(f"{where}: `{key}:` steps are not run by this command; remove them")


def work_pool(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """Return the entry's `work_pool:` mapping (with a `name`)."""
    pool = entry.get("work_pool")
    if not isinstance(pool, dict) or not pool.get("name"):
        raise DeployError(f"{where}: no `work_pool: {{name: ...}}`; name the pool its workers poll")
    return pool


def pull_steps(entry: dict[str, Any], top_level: Any, where: str) -> list[dict[str, Any]]:
    """The deployment's `pull:` steps, else the file's, exactly as written (placeholders unresolved)."""
    steps = entry.get("pull", top_level)
    if steps is None:
        raise DeployError(
            f"{where}: no `pull:` steps, so a worker would not know where the code is; add the top-level "
            "`pull:` of the project's prefect.yaml (set_working_directory to {{ $DATAHUB_PROJECT_DIR }})"
        )
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        raise DeployError(f"{where}: `pull:` must be a list of steps (mappings); fix it")
    return steps


def concurrency(value: Any, where: str) -> tuple[int | None, ConcurrencyOptions | None]:
    """`concurrency_limit:` (an int, or `{limit, collision_strategy[, grace_period_seconds]}`) as Prefect stores it."""
    if value is None or isinstance(value, int):
        return value, None
    fix = "write {limit: 1, collision_strategy: ENQUEUE} (or CANCEL_NEW)"
    if not isinstance(value, dict) or not isinstance(value.get("limit"), int):
        raise DeployError(f"{where}: concurrency_limit {value!r} has no integer `limit`; {fix}")
    options = {
        key: value[key]
        for key in ("collision_strategy", "grace_period_seconds")
        if value.get(key) is not None
    }
    try:
        return value["limit"], ConcurrencyOptions.model_validate({"collision_strategy": "ENQUEUE"} | options)
    except ValidationError as exc:
        raise DeployError(f"{where}: concurrency_limit: {_first_error(exc)}; {fix}") from exc


def schedule_create(raw: Any, where: str) -> DeploymentScheduleCreate:
    """One YAML schedule entry as a native Prefect schedule (what `prefect deploy` builds of it)."""
    if not isinstance(raw, dict):
        raise DeployError(f"{where}: a schedule must be a mapping (cron / interval / rrule, slug, ...)")
    unknown = sorted(set(raw) - SCHEDULE_KEYS)
    if unknown:
        raise DeployError(
            f"{where}: unknown key `{unknown[0]}:`; remove it (known: {', '.join(sorted(SCHEDULE_KEYS))})"
        )
    kinds = [kind for kind in SCHEDULE_KINDS if raw.get(kind) is not None]
    if len(kinds) != 1:
        raise DeployError(
            f"{where}: give exactly one of cron, interval, rrule (found {', '.join(kinds) or 'none'})"
        )
    if not raw.get("slug"):
        raise DeployError(
            f"{where}: no `slug:`; add one (e.g. slug: daily-0200): redeploys match schedules by slug"
        )
    if kinds[0] == "interval" and raw.get("anchor_date") is None:
        raise DeployError(
            f"{where} ({raw['slug']}): interval without `anchor_date`; add one with a UTC offset, e.g. "
            'anchor_date: "2026-01-01T00:00:00+00:00", or each deploy would move the runs'
        )
    try:
        return DeploymentScheduleCreate(
            schedule=_native_schedule(raw, kinds[0]),
            active=raw.get("active", True),
            parameters=raw.get("parameters") or {},
            slug=raw["slug"],
        )
    except (ValidationError, ValueError, TypeError) as exc:
        detail = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise DeployError(f"{where} ({raw['slug']}): {kinds[0]}: {detail}; fix the schedule") from exc


def _native_schedule(raw: dict[str, Any], kind: str) -> CronSchedule | IntervalSchedule | RRuleSchedule:
    timezone = raw.get("timezone")
    if kind == "cron":
        return CronSchedule(**_given(cron=raw["cron"], timezone=timezone, day_or=raw.get("day_or")))
    if kind == "interval":
        interval = raw["interval"]
        if isinstance(interval, int | float):
            interval = timedelta(seconds=interval)
        anchor = raw["anchor_date"]
        anchor_date = anchor if isinstance(anchor, datetime) else datetime.fromisoformat(str(anchor))
        return IntervalSchedule(**_given(interval=interval, anchor_date=anchor_date, timezone=timezone))
    try:
        schedule = RRuleSchedule(**json.loads(raw["rrule"]))
    except json.JSONDecodeError:
        return RRuleSchedule(rrule=raw["rrule"], timezone=timezone)
    if timezone:
        schedule.timezone = timezone
    return schedule


def _given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def schedules_of(entry: dict[str, Any], where: str) -> list[DeploymentScheduleCreate]:
    """Every schedule of an entry, slugs unique."""
    raw = entry.get("schedules") or []
    if not isinstance(raw, list):
        raise DeployError(f"{where}: `schedules:` must be a list; fix it")
    schedules = [schedule_create(item, f"{where}: schedules[{i}]") for i, item in enumerate(raw)]
    twice = [slug for slug, count in Counter(s.slug for s in schedules).items() if count > 1]
    if twice:
        raise DeployError(f"{where}: schedule slug {twice[0]!r} is used twice; make the slugs unique")
    return schedules


def pick_version(explicit: str | None, flow_version: str | None, inferred: VersionInfo | None) -> VersionInfo:
    """The version `prefect deploy` stores: the YAML's, else the inferred VCS one, else the flow file's hash."""
    if inferred is not None:
        return inferred.model_copy(update={"version": explicit or inferred.version})
    return VersionInfo(type="prefect:simple", version=explicit or flow_version or "")


def deployment_fields(
    entry: dict[str, Any], pull: list[dict[str, Any]], flow: FlowFacts, version: VersionInfo, where: str
) -> dict[str, Any]:
    """The fields of a deployment as the server stores them (`DeploymentUpdate` names), untemplated."""
    pool = work_pool(entry, where)
    limit, options = concurrency(entry.get("concurrency_limit"), where)
    return {
        "version": version.version or None,
        "version_info": version,
        "description": entry.get("description") or flow.description,
        "parameters": _JSON.dump_python(entry.get("parameters") or {}, mode="json"),
        "tags": [str(tag) for tag in entry.get("tags") or []],
        "work_pool_name": pool["name"],
        "work_queue_name": pool.get("work_queue_name"),
        "job_variables": pool.get("job_variables") or {},
        "entrypoint": entry["entrypoint"],
        "enforce_parameter_schema": entry.get("enforce_parameter_schema", True),
        "parameter_openapi_schema": flow.parameter_schema,
        "pull_steps": pull,
        "concurrency_limit": limit,
        "concurrency_options": options,
    }


# --- the server's state against the YAML (pure) --------------------------------------------------------


def plan_schedules(wanted: list[DeploymentScheduleCreate], stored: list[DeploymentSchedule]) -> SchedulePlan:
    """Match schedules by slug: add the new ones, update the changed ones, delete the ones gone."""
    by_slug = {schedule.slug: schedule for schedule in stored if schedule.slug}
    wanted_slugs = {schedule.slug for schedule in wanted}
    return SchedulePlan(
        create=[w for w in wanted if w.slug not in by_slug],
        update=[(by_slug[w.slug], w) for w in wanted if w.slug in by_slug and not _same(by_slug[w.slug], w)],
        delete=[s for s in stored if s.slug not in wanted_slugs],
    )


def _same(stored: DeploymentSchedule, wanted: DeploymentScheduleCreate) -> bool:
    return (
        stored.schedule == wanted.schedule
        and stored.active == wanted.active
        and stored.parameters == wanted.parameters
    )


def stored_fields(deployment: DeploymentResponse) -> dict[str, Any]:
    """A stored deployment's fields under the names of `deployment_fields`."""
    limit = deployment.global_concurrency_limit
    return {
        "version": deployment.version,
        "description": deployment.description,
        "parameters": deployment.parameters,
        "tags": deployment.tags,
        "work_pool_name": deployment.work_pool_name,
        "work_queue_name": deployment.work_queue_name,
        "job_variables": deployment.job_variables,
        "entrypoint": deployment.entrypoint,
        "enforce_parameter_schema": deployment.enforce_parameter_schema,
        "parameter_openapi_schema": deployment.parameter_openapi_schema,
        "pull_steps": deployment.pull_steps,
        "concurrency_limit": limit.limit if limit else None,
        "concurrency_options": deployment.concurrency_options,
    }


def field_changes(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What differs between the stored fields and the wanted ones, as `parameters changed`, `version a → b`."""
    changes = []
    if stored["version"] != wanted["version"]:
        changes.append(f"version {_short(stored['version'])} → {_short(wanted['version'])}")
    for key, label in FIELD_LABELS.items():
        if key == "work_queue_name" and wanted[key] is None:
            continue  # no queue named: the server picks the pool's default queue
        if key == "concurrency_options" and wanted["concurrency_limit"] is None:
            continue  # options of no limit are not used
        if _comparable(stored[key]) != _comparable(wanted[key]):
            changes.append(f"{label} changed")
    return changes


def _short(version: str | None) -> str | None:
    return version[:8] if version and len(version) == 32 else version  # a flow file's md5: 8 digits say it


def _comparable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def outcome_line(
    full_name: str, *, created: bool, schedules: list[str], changes: list[str], paused: bool
) -> str:
    """The line printed for one deployment."""
    if created:
        return f"created {full_name} (schedules: {', '.join(schedules) or 'none'})"
    parts = ([f"schedule {', '.join(schedules)}"] if schedules else []) + changes
    line = f"updated {full_name}: {'; '.join(parts)}" if parts else f"unchanged {full_name}"
    return f"{line}; kept paused" if paused else line


# --- flows, versions, jobs (local, no server) ----------------------------------------------------------


def resolve_entrypoint(entrypoint: Any, root: Path, where: str) -> str:
    """The loadable form of an entrypoint: its file looked up in `root`, then in the current folder."""
    if not isinstance(entrypoint, str) or ":" not in entrypoint:
        raise DeployError(
            f"{where}: entrypoint {entrypoint!r} is not `path/to/file.py:flow_function`; fix it"
        )
    file, _, function = entrypoint.rpartition(":")
    for candidate in (root / file, Path.cwd() / file):
        if candidate.is_file():
            return f"{candidate.resolve()}:{function}"
    raise DeployError(
        f"{where}: entrypoint {entrypoint!r}: no file {file} in {root} (the prefect.yaml's folder) nor in "
        f"{Path.cwd()}; fix the path or run from the project folder"
    )


def load_flow(entrypoint: Any, root: Path, where: str) -> Any:
    """Import the entrypoint's flow."""
    from prefect.flows import load_flow_from_entrypoint

    located = resolve_entrypoint(entrypoint, root, where)
    try:
        return load_flow_from_entrypoint(located)
    except Exception as exc:  # any import failure is the operator's to fix, in one line
        raise DeployError(
            f"{where}: entrypoint {entrypoint!r} does not load: {exc}; fix the flow or the path"
        ) from exc


def flow_facts(flow: Any) -> FlowFacts:
    """What a deployment takes from its flow (the schema as `prefect deploy` sends it)."""
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(flow).model_dump(exclude_unset=True)
    return FlowFacts(
        name=flow.name, description=flow.description, version=flow.version, parameter_schema=schema
    )


def parameter_problem(flow: Any, parameters: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """The first thing wrong with the parameters: an unknown name, a field the flow's model refuses, or
    what the server's schema check (`enforce_parameter_schema`) would refuse runs for."""
    from prefect.utilities.schema_tools.validation import validate

    accepted = inspect.signature(flow.fn).parameters
    unknown = [name for name in parameters if name not in accepted]
    if unknown:
        return f"parameters.{unknown[0]}: flow {flow.name!r} takes no such parameter ({', '.join(accepted)}); remove it"
    hints = typing.get_type_hints(flow.fn)
    for name, value in parameters.items():
        model = hints.get(name)
        if isinstance(model, type) and issubclass(model, BaseModel):
            try:
                model.model_validate(value)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(part) for part in (name, *error["loc"]))
                return f"parameters.{where}: {error['msg']}; fix the field"
    errors = validate(parameters, schema)
    if errors:
        where = errors[0].json_path.removeprefix("$.")
        return f"parameters.{where}: {errors[0].message}; the server would refuse runs of it"
    return None


@functools.cache
def infer_version(version_type: str | None) -> VersionInfo | None:
    """The VCS version `prefect deploy` infers (git commit, CI variables), or None; once per run."""
    from prefect._internal.versioning import get_inferred_version_info

    try:
        return asyncio.run(get_inferred_version_info(version_type))
    except ValueError as exc:
        raise DeployError(f"version_type {version_type!r}: {exc}; fix or remove `version_type:`") from exc


def build_spec(entry: dict[str, Any], top_pull: Any, path: Path) -> Spec:
    """Check one entry of the YAML and return what the server should store of it."""
    where = f"{path}: deployment {entry['name']!r}"
    check_keys(entry, where)
    work_pool(entry, where)
    schedules = schedules_of(entry, where)
    pull = pull_steps(entry, top_pull, where)
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise DeployError(f"{where}: `parameters:` must be a mapping of the flow's parameters; fix it")
    flow = load_flow(entry.get("entrypoint"), path.parent, where)
    facts = flow_facts(flow)
    problem = parameter_problem(flow, parameters, facts.parameter_schema)
    if problem:
        raise DeployError(f"{where}: {problem}")
    version = pick_version(entry.get("version"), facts.version, infer_version(entry.get("version_type")))
    fields = deployment_fields(entry, pull, facts, version, where)
    return Spec(name=entry["name"], flow_name=facts.name, fields=fields, schedules=schedules)


def plan_file(path: Path, names: Sequence[str] = ()) -> list[Spec]:
    """Check the prefect.yaml (the named deployments, or all) and return what to deploy; no server."""
    entries, top_pull = read_manifest(path)
    specs = [build_spec(entry, top_pull, path) for entry in select(entries, names, path)]
    check_flow_names(names, specs, path)
    return specs


# --- the server ------------------------------------------------------------------------------------------


def api_url() -> str:
    """The server this command deploys to (never Prefect's throwaway ephemeral one)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise DeployError(
            "PREFECT_API_URL is not set, so there is no server to deploy to; set it to your server's API, "
            f"e.g. {API_URL_HINT}"
        )
    return url


def check_server(client: SyncPrefectClient, url: str, specs: list[Spec]) -> None:
    """Fail early when the server is unreachable or a work pool is missing."""
    problem = client.api_healthcheck()
    if problem is not None:
        raise DeployError(
            f"cannot reach the Prefect server at {url} ({type(problem).__name__}: {problem}); start it, "
            f"or set PREFECT_API_URL to its API address, e.g. {API_URL_HINT}"
        )
    for pool in sorted({spec.fields["work_pool_name"] for spec in specs}):
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            users = ", ".join(spec.name for spec in specs if spec.fields["work_pool_name"] == pool)
            raise DeployError(
                f"work pool {pool!r} (work_pool.name of {users}) does not exist on {url}; create it: "
                f"prefect work-pool create {pool} --type process"
            ) from None


def apply(client: SyncPrefectClient, spec: Spec) -> tuple[str, UUID]:
    """Create or update one deployment and its schedules; return the line to print and its id."""
    try:
        stored = client.read_deployment_by_name(spec.full_name)
    except ObjectNotFound:
        flow_id = client.create_flow_from_name(spec.flow_name)
        created = client.create_deployment(
            flow_id=flow_id, name=spec.name, paused=False, schedules=spec.schedules, **spec.fields
        )
        slugs = [str(schedule.slug) for schedule in spec.schedules]
        line = outcome_line(spec.full_name, created=True, schedules=slugs, changes=[], paused=False)
        return line, created
    changes = field_changes(stored_fields(stored), spec.fields)
    if changes:  # `paused` is not among the fields: an operator's pause stays
        client.update_deployment(stored.id, DeploymentUpdate(**spec.fields))
    plan = plan_schedules(spec.schedules, client.read_deployment_schedules(stored.id))
    apply_schedules(client, stored.id, plan)
    line = outcome_line(
        spec.full_name, created=False, schedules=plan.changes(), changes=changes, paused=stored.paused
    )
    return line, stored.id


def apply_schedules(client: SyncPrefectClient, deployment_id: UUID, plan: SchedulePlan) -> None:
    """Delete the schedules gone first (no moment with both), then update and add."""
    for schedule in plan.delete:
        client.delete_deployment_schedule(deployment_id, schedule.id)
    for stored, wanted in plan.update:
        client.update_deployment_schedule(
            deployment_id,
            stored.id,
            active=wanted.active,
            schedule=wanted.schedule,
            parameters=wanted.parameters,
        )
    if plan.create:
        client.create_deployment_schedules(deployment_id, plan.create)


def apply_all(specs: list[Spec], alerts: AlertSettings | None = None) -> None:
    """Deploy every spec, printing one line each as it is done, then their alerts (`deployments.alerts`)."""
    url = api_url()
    with get_client(sync_client=True) as client:
        check_server(client, url, specs)
        targets = []
        for spec in specs:
            try:
                line, deployment_id = apply(client, spec)
                print(line, flush=True)
            except PrefectHTTPStatusError as exc:
                raise DeployError(f"{spec.full_name}: the server refused it: {_detail(exc)}") from exc
            except httpx.HTTPError as exc:
                raise DeployError(
                    f"{spec.full_name}: lost the Prefect server at {url} ({type(exc).__name__}: {exc}); "
                    "check it is up and deploy again"
                ) from exc
            if _imports(spec):
                targets.append(
                    AlertTarget(deployment_id, spec.full_name, spec.fields["parameters"]["job"]["name"])
                )
        if alerts is not None:
            for line in sync_alerts(client, targets, alerts.block, quiet_after=alerts.quiet_after):
                print(line, flush=True)


@dataclass(frozen=True)
class AlertSettings:
    """Where the deployments' alerts go and when a job counts as quiet (`deploy --alert-block --quiet-after`)."""

    block: tuple[str, str]
    quiet_after: timedelta

    def __post_init__(self) -> None:
        if self.quiet_after < MIN_QUIET_AFTER:
            raise ValueError(f"--quiet-after {self.quiet_after} is shorter than Prefect's minimum of 10 s")


def _imports(spec: Spec) -> bool:
    # Import jobs (CSV, API) report a run status; a shell job's run is its command's exit code.
    job = (spec.fields.get("parameters") or {}).get("job") or {}
    return isinstance(job, dict) and "entity" in job


def parse_span(text: str) -> timedelta:
    """Return `26h`, `90m` or `15s` as a time span; raise ValueError, explained, for anything else."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise ValueError(f"{text!r} is not a time span like 26h, 90m or 15s")
    return timedelta(seconds=int(number) * units[unit])


def _detail(exc: PrefectHTTPStatusError) -> str:
    try:
        return str(exc.response.json().get("detail") or exc.response.text)
    except ValueError:
        return exc.response.text or str(exc)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    return f"{location}: {error['msg']}" if location else str(error["msg"])


def deploy(path: Path, names: Sequence[str] = (), alerts: AlertSettings | None = None) -> int:
    """Deploy the prefect.yaml's deployments (or the named ones) and their alerts; return the exit code."""
    try:
        apply_all(plan_file(path, names), alerts)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
