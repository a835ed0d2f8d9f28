"""Command line of the deployments: `python -m deployments schedule|check|blocks|run|preview|pause|resume|deploy|runs|ledger|rejects|forget`.

`schedule "<preset>"` prints the native YAML of a preset (see `deployments.schedules`) and its next 5
runs. `check [prefect.yaml]` validates every deployment of a `prefect.yaml` and prints one table row per
finding; it exits with 1 when any row is an error, 0 otherwise. Besides each job against its model, the
server's parameter schema, schedules, concurrency and target, it runs Prefect's own placeholder pattern
over every string of every job (`prefect deploy` would template a `{{ name }}` away) and, when
PREFECT_API_URL is set, asks that server for every block the jobs name (`missing_blocks`).
`blocks` registers the block types and saves the example block documents from the environment or
`blocks.local.yaml` (`deployments.blocks`).
`run <deployment> [--job-file F] [--force]` runs one deployment's job locally in-process;
`preview <deployment> [--job-file F] [--rows N] [--allow-writes]` reads the first file or page for real
and shows its first records mapped and validated, writing nothing (`deployments.preview`);
`pause <deployment>` / `resume <deployment>` pause or resume it on the Prefect server
(`deployments.operate`). `deploy [--prefect-file F] [--name D ...]` (re)deploys them on the server, removes
schedules no longer in the file and keeps an operator's pause (`deployments.deploy`).
`runs JOB`, `ledger JOB`, `rejects RUN` and `forget JOB FILE` read the hub's own history: a job's last
runs, the files it imported, a run's rejects, and forget one imported file so that the next run
imports it again (`deployments.history`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from prefect.client.orchestration import SyncPrefectClient
from prefect.exceptions import ObjectNotFound
from pydantic import ValidationError

from deployments.manifest import PREFECT_YAML, Deployment, load_deployments
from tasks.job_model import PLACEHOLDER_ERROR, BlockRef, placeholder_hits

COLLISION_STRATEGIES = ("ENQUEUE", "CANCEL_NEW")
LOCAL_PROCESS_POOLS = frozenset({"local-process"})
"""Work pools whose workers run on this machine, where the embedded SQLite hub database lives."""

Level = Literal["ok", "warn", "error"]


@dataclass(frozen=True)
class Finding:
    """One row of the `check` table: a deployment, the aspect checked, the verdict and why."""

    deployment: str
    aspect: str
    level: Level
    detail: str


# --- schedule -------------------------------------------------------------------------------------------


def show_schedule(preset: str) -> int:
    """Print the YAML schedule of a preset, its cron traps and its next 5 runs; return the exit code."""
    from deployments.schedules import cron_warnings, next_runs, parse_preset

    try:
        schedule = parse_preset(preset)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(yaml.safe_dump({"schedules": [schedule]}, sort_keys=False).rstrip())
    for warning in cron_warnings(schedule.get("cron", "")):
        print(f"warning: {warning}")
    zone = schedule["timezone"]
    print(f"\nNext 5 runs:\n  {'UTC':<27}{zone}")
    for run in next_runs(schedule):
        print(f"  {run.astimezone(UTC).isoformat():<27}{run.isoformat()}")
    return 0


# --- check ----------------------------------------------------------------------------------------------


def check_file(path: Path) -> list[Finding]:
    """Return the findings of every deployment of a `prefect.yaml` file."""
    raw_entries: list[dict[str, Any]] = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(
        "deployments"
    ) or []
    try:
        deployments = load_deployments(path)
    except KeyError as exc:
        return [Finding("-", "file", "error", f"a deployment has no {exc.args[0]!r}; add it")]
    findings = _name_findings(deployments)
    for deployment, entry in zip(deployments, raw_entries, strict=True):
        located = _locate_entrypoint(deployment, path.parent)
        findings += placeholder_findings(deployment)
        findings += _job_findings(located)
        findings += _server_schema_findings(located)
        findings += _schedule_findings(deployment)
        findings.append(_concurrency_finding(deployment))
        if "target" in _job_fields(located):  # a shell job writes no hub database
            findings.append(_target_finding(deployment, entry.get("work_pool")))
    return findings


def _locate_entrypoint(deployment: Deployment, root: Path) -> Deployment:
    # Entrypoints are relative to the project folder, which is the folder of prefect.yaml.
    file, _, function = deployment.entrypoint.partition(":")
    candidate = root / file
    if candidate.exists():
        return dataclasses.replace(deployment, entrypoint=f"{candidate}:{function}")
    return deployment


def _name_findings(deployments: list[Deployment]) -> list[Finding]:
    names = Counter(d.name for d in deployments)
    job_names = Counter(_job(d).get("name") for d in deployments)
    findings = [
        Finding(name, "name", "error", f"deployment name {name!r} is used {count} times; rename all but one")
        for name, count in names.items()
        if count > 1
    ]
    findings += [
        Finding(
            d.name, "name", "error", f"parameters.job.name {name!r} is used by {count} jobs; make it unique"
        )
        for d in deployments
        if (name := _job(d).get("name")) is not None and (count := job_names[name]) > 1
    ]
    return findings


def _job(deployment: Deployment) -> dict[str, Any]:
    job = deployment.parameters.get("job")
    return job if isinstance(job, dict) else {}


def _job_findings(deployment: Deployment) -> list[Finding]:
    if "job" not in deployment.parameters:
        return [Finding(deployment.name, "job", "error", "parameters.job is missing; add the job")]
    try:
        model = deployment.job_model()
    except Exception as exc:  # any failure to import the flow is reported, not raised
        return [Finding(deployment.name, "job", "error", f"entrypoint {deployment.entrypoint!r}: {exc}")]
    try:
        job = model.model_validate(deployment.parameters["job"])
    except ValidationError as exc:
        return [
            Finding(deployment.name, "job", "error", f"parameters.job.{_loc(error['loc'])}: {error['msg']}")
            for error in exc.errors()
            if error["type"] != PLACEHOLDER_ERROR  # a `template` row per string says it with its path
        ]
    name = getattr(job, "name", None)
    if name != deployment.name:
        detail = f"parameters.job.name is {name!r}, not the deployment name; set it to {deployment.name!r}"
        return [Finding(deployment.name, "job", "error", detail)]
    return [Finding(deployment.name, "job", "ok", f"valid {model.__name__}")]


def placeholder_findings(deployment: Deployment) -> list[Finding]:
    """Return an error per string of the parameters (keys too) that `prefect deploy` would template.

    The pattern is Prefect's (`tasks.job_model`); the job models refuse the same strings.
    """
    return [
        Finding(deployment.name, "template", "error", hit.message())
        for hit in placeholder_hits(deployment.parameters, where="parameters")
    ]


def _server_schema_findings(deployment: Deployment) -> list[Finding]:
    """Validate the parameters as the server does before it creates a run (`enforce_parameter_schema`).

    The JSON schema may be stricter than pydantic: pydantic reads `"10"` as a number where the schema
    wants one, and the schema is what the server checks (`tasks.ui_schema` shapes the mappings' part).
    """
    if "job" not in deployment.parameters:
        return []
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import validate

    try:
        flow: Any = load_flow_from_entrypoint(deployment.entrypoint)
    except Exception:  # reported by the job check
        return []
    schema = parameter_schema(flow).model_dump(mode="json")
    errors = validate({"job": deployment.parameters["job"]}, schema)
    return [
        Finding(
            deployment.name,
            "schema",
            "error",
            f"parameters.{error.json_path.removeprefix('$.')}: {error.message}; the server would refuse "
            "runs of it (leave an empty optional field out rather than writing null)",
        )
        for error in errors
    ]


def _loc(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(root)"


def _schedule_findings(deployment: Deployment) -> list[Finding]:
    from deployments.schedules import cron_warnings, schedule_problems

    if not deployment.schedules:
        return [Finding(deployment.name, "schedule", "warn", "no schedule: it runs only when triggered")]
    findings = []
    for index, schedule in enumerate(deployment.schedules):
        where = f"schedules[{index}] {schedule.get('slug') or ''}".rstrip()
        problems = schedule_problems(schedule)
        findings += [Finding(deployment.name, "schedule", "error", f"{where}: {p}") for p in problems]
        warnings = cron_warnings(str(schedule.get("cron") or ""))
        findings += [Finding(deployment.name, "schedule", "warn", f"{where}: {w}") for w in warnings]
        if not problems and not warnings:
            findings.append(Finding(deployment.name, "schedule", "ok", f"{where}: {_describe(schedule)}"))
    return findings


def _describe(schedule: dict[str, Any]) -> str:
    from deployments.schedules import next_runs

    kind = next(key for key in ("cron", "rrule", "interval") if key in schedule)
    first = next_runs(schedule, n=1)
    when = f", next {first[0].isoformat()}" if first else ", no future run"
    return f"{kind} {schedule[kind]!r} ({schedule.get('timezone') or 'UTC'}){when}"


def _concurrency_finding(deployment: Deployment) -> Finding:
    limit = deployment.concurrency_limit
    fix = "set concurrency_limit: {limit: 1, collision_strategy: ENQUEUE} (or CANCEL_NEW)"
    if not isinstance(limit, dict):
        return Finding(deployment.name, "concurrency", "error", f"concurrency_limit is {limit!r}; {fix}")
    strategy = limit.get("collision_strategy")
    if strategy not in COLLISION_STRATEGIES:
        detail = f"collision_strategy {strategy!r} is not one of {', '.join(COLLISION_STRATEGIES)}; {fix}"
        return Finding(deployment.name, "concurrency", "error", detail)
    return Finding(deployment.name, "concurrency", "ok", f"limit {limit.get('limit')}, {strategy}")


def _job_fields(deployment: Deployment) -> set[str]:
    try:
        return set(deployment.job_model().model_fields)
    except Exception:  # an unloadable flow is reported by the job check; keep checking the target
        return {"target"}


def _target_finding(deployment: Deployment, work_pool: Any) -> Finding:
    pool = work_pool.get("name") if isinstance(work_pool, dict) else work_pool
    if _job(deployment).get("target"):
        return Finding(deployment.name, "target", "ok", f"block {_job(deployment)['target']!r}")
    if pool in LOCAL_PROCESS_POOLS:
        return Finding(deployment.name, "target", "ok", f"embedded SQLite, on local pool {pool!r}")
    detail = (
        f"no parameters.job.target: the embedded SQLite database is written inside the worker of pool "
        f"{pool!r}, not shared; set target to a Hub Database block"
    )
    return Finding(deployment.name, "target", "warn", detail)


# --- blocks ---------------------------------------------------------------------------------------------

BLOCK_FIX = "create it (Blocks > + in the UI, or in blocks.local.yaml and `python -m deployments blocks`)"
NO_SERVER = "set PREFECT_API_URL to the server the deployments run on"


def needed_blocks(deployment: Deployment) -> list[BlockRef]:
    """Return the blocks the deployment's job names; none when the job does not validate (the job row says why)."""
    try:
        job: Any = deployment.job_model().model_validate(deployment.parameters.get("job"))
    except Exception:  # an unloadable flow or an invalid job is reported by the job check
        return []
    refs: list[BlockRef] = job.blocks()
    return refs


def missing_blocks(
    deployments: Sequence[Deployment], client: SyncPrefectClient, *, root: Path = PREFECT_YAML.parent
) -> list[Finding]:
    """Ask the client's server for every block the deployments' jobs name; an error row per missing one.

    Each deployment gets an `ok` row naming the blocks found, or one `error` row per block missing.
    An unreachable server is one error row (deployment `-`) saying so. `root` is the folder the
    entrypoints are relative to (the prefect.yaml's).
    """
    findings: list[Finding] = []
    api_url = str(client.api_url).rstrip("/")
    try:
        for deployment in deployments:
            refs = needed_blocks(_locate_entrypoint(deployment, root))
            missing = [ref for ref in refs if not _block_exists(client, ref)]
            findings += [_missing_block(deployment, ref, api_url) for ref in missing]
            if refs and not missing:
                found = ", ".join(ref.label() for ref in refs)
                verb = "exists" if len(refs) == 1 else "exist"
                findings.append(Finding(deployment.name, "blocks", "ok", f"{found} {verb}"))
    except httpx.HTTPError as exc:
        return [_unreachable(api_url, exc)]
    return findings


def _block_exists(client: SyncPrefectClient, ref: BlockRef) -> bool:
    try:
        client.read_block_document_by_name(ref.name, ref.block_type.get_block_type_slug())
    except ObjectNotFound:
        return False
    return True


def _missing_block(deployment: Deployment, ref: BlockRef, api_url: str) -> Finding:
    detail = f"parameters.job.{ref.field}: the block {ref.label()} does not exist on {api_url}; {BLOCK_FIX}"
    return Finding(deployment.name, "blocks", "error", detail)


def _unreachable(api_url: str, exc: Exception) -> Finding:
    reason = str(exc) or type(exc).__name__
    detail = f"blocks not checked: the Prefect API at {api_url} does not answer ({reason}); start it or {NO_SERVER}"
    return Finding("-", "blocks", "error", detail)


def block_findings(deployments: Sequence[Deployment], *, root: Path = PREFECT_YAML.parent) -> list[Finding]:
    """Check the blocks on the server PREFECT_API_URL names; without it, a warning row per deployment.

    No ephemeral server is started: it would take 20 s and hold none of the operators' blocks.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    if not api_url:
        return [Finding(d.name, "blocks", "warn", f"blocks not checked: {NO_SERVER}") for d in deployments]
    try:
        with get_client(sync_client=True) as client:
            return missing_blocks(deployments, client, root=root)
    except httpx.HTTPError as exc:  # raised when the client opens, before any block is asked for
        return [_unreachable(api_url, exc)]


def print_findings(findings: list[Finding]) -> None:
    """Print the findings as an aligned table followed by a one-line summary."""
    width = max([len("DEPLOYMENT"), *(len(f.deployment) for f in findings)])
    print(f"{'DEPLOYMENT':<{width}}  {'CHECK':<13}{'RESULT':<8}DETAIL")
    for f in findings:
        print(f"{f.deployment:<{width}}  {f.aspect:<13}{f.level:<8}{f.detail}")
    counts = Counter(f.level for f in findings)
    deployments = len({f.deployment for f in findings})
    print(f"\n{deployments} deployment(s): {counts['error']} error(s), {counts['warn']} warning(s).")


def check(path: Path) -> int:
    """Check a `prefect.yaml`, print the table and return the exit code (1 when anything is an error)."""
    if not path.is_file():
        print(f"{path} does not exist; pass the path of a prefect.yaml.", file=sys.stderr)
        return 1
    findings = check_file(path)
    try:
        deployments = load_deployments(path)
    except KeyError:  # reported by check_file
        deployments = []
    findings += block_findings(deployments, root=path.parent)
    order = {name: index for index, name in enumerate(["-", *(d.name for d in deployments)])}
    print_findings(sorted(findings, key=lambda f: order.get(f.deployment, len(order))))
    return 1 if any(f.level == "error" for f in findings) else 0


def _deploy(args: argparse.Namespace) -> int:
    from deployments.alerts import alert_block
    from deployments.deploy import AlertSettings, deploy, parse_span

    alerts = None
    if not args.no_alerts:
        try:
            alerts = AlertSettings(alert_block(args.alert_block), parse_span(args.quiet_after))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return deploy(args.prefect_file, args.name, alerts)


def _history_commands(commands: Any) -> None:
    target = {"default": None, "help": "the Hub Database block (default: the job's `target` in prefect.yaml)"}
    runs = commands.add_parser("runs", help="the job's last runs in the hub: status, counts, message")
    runs.add_argument("job", help="the job's name (its `name`), e.g. products-from-erp-ftp")
    ledger = commands.add_parser("ledger", help="the files the job imported: when, by which run, moved where")
    ledger.add_argument("job", help="the job's name, e.g. products-from-erp-ftp")
    for listing in (runs, ledger):
        listing.add_argument("--limit", type=int, default=20, help="rows to show, newest first (default 20)")
    rejects = commands.add_parser(
        "rejects", help="a run's rejects kept in the hub: file, record, column, value, code"
    )
    rejects.add_argument("run", help="the run's id (the `run` column of `runs JOB`; the flow run's id)")
    rejects.add_argument("--limit", type=int, default=100, help="rejects to show (default 100)")
    forget = commands.add_parser(
        "forget", help="forget one imported file: the job's next run imports it again"
    )
    forget.add_argument("job", help="the job's name, e.g. products-from-erp-ftp")
    forget.add_argument("file", help="the file's path as `ledger JOB` shows it, or its name")
    for command in (runs, ledger, rejects, forget):
        command.add_argument("--target", **target)
        command.add_argument("--prefect-file", type=Path, default=PREFECT_YAML, help="default: the project's")


def _history(args: argparse.Namespace) -> int:
    from deployments import history

    job = getattr(args, "job", None)
    target = args.target or history.job_target(job, args.prefect_file)
    if args.command == "runs":
        return history.show_runs(args.job, target=target, limit=args.limit)
    if args.command == "ledger":
        return history.show_ledger(args.job, target=target, limit=args.limit)
    if args.command == "rejects":
        return history.show_rejects(args.run, target=target, limit=args.limit)
    return history.forget(args.job, args.file, target=target)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = argparse.ArgumentParser(prog="python -m deployments", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    schedule = commands.add_parser("schedule", help="print the native YAML and next runs of a preset")
    schedule.add_argument("preset", help="e.g. 'monthly on last weekday at 18:00 in Europe/Paris'")
    checker = commands.add_parser("check", help="validate every deployment of a prefect.yaml")
    checker.add_argument("path", nargs="?", type=Path, default=PREFECT_YAML, help="default: the project's")
    blocks = commands.add_parser("blocks", help="register block types, save blocks from env / local file")
    blocks.add_argument("--file", type=Path, default=None, help="default: blocks.local.yaml (git-ignored)")
    runner = commands.add_parser("run", help="run one deployment's job locally, in this process")
    runner.add_argument("deployment", help="e.g. import-csv-from-ftp/products-from-erp-ftp")
    runner.add_argument("--job-file", type=Path, default=None, help="a job YAML instead of the deployment's")
    runner.add_argument("--force", action="store_true", help="import files the ledger has already seen")
    runner.add_argument("--prefect-file", type=Path, default=PREFECT_YAML, help="default: the project's")
    previewer = commands.add_parser("preview", help="dry run: first file or page, mapped, nothing written")
    previewer.add_argument("deployment", help="e.g. import-json-from-api/products-from-pim-api")
    previewer.add_argument(
        "--job-file", type=Path, default=None, help="a job YAML instead of the deployment's"
    )
    previewer.add_argument("--rows", type=int, default=10, help="records to show (default 10)")
    previewer.add_argument(
        "--allow-writes", action="store_true", help="also send POST/PUT/PATCH/DELETE calls (API jobs)"
    )
    previewer.add_argument("--prefect-file", type=Path, default=PREFECT_YAML, help="default: the project's")
    for verb in ("pause", "resume"):
        pauser = commands.add_parser(verb, help=f"{verb} a deployment on the Prefect server")
        pauser.add_argument("deployment", help="e.g. import-csv-from-ftp/products-from-erp-ftp")
        pauser.add_argument("--prefect-file", type=Path, default=PREFECT_YAML, help="default: the project's")
    deployer = commands.add_parser("deploy", help="(re)deploy prefect.yaml: prune schedules, keep pauses")
    deployer.add_argument("--prefect-file", type=Path, default=PREFECT_YAML, help="default: the project's")
    deployer.add_argument(
        "--name", action="append", default=[], help="a deployment to deploy (repeat; default: all)"
    )
    deployer.add_argument(
        "--alert-block",
        default=None,
        help="TYPE/NAME of the notification block alerts go to (default: $DATAHUB_ALERT_BLOCK or "
        "custom-webhook/datahub-alerts; without it no automation is made)",
    )
    deployer.add_argument(
        "--quiet-after",
        default="26h",
        help="alert when an import job has no successful run within this span (default 26h; 90m, 15s)",
    )
    deployer.add_argument("--no-alerts", action="store_true", help="leave the automations as they are")
    _history_commands(commands)
    commands.add_parser("entities", help="print docs/entities.md: every entity's fields and standard headers")
    args = parser.parse_args(argv)
    if args.command == "entities":
        from tasks.hub import catalogue_markdown

        print(catalogue_markdown(), end="")
        return 0
    if args.command in ("runs", "ledger", "rejects", "forget"):
        return _history(args)
    if args.command == "schedule":
        return show_schedule(args.preset)
    if args.command == "blocks":
        from deployments import blocks as block_documents

        return block_documents.main(args.file or block_documents.LOCAL_FILE)
    if args.command == "run":
        from deployments.operate import run

        return run(args.deployment, args.job_file, force=args.force, path=args.prefect_file)
    if args.command == "preview":
        from deployments.preview import run_preview

        return run_preview(
            args.deployment,
            args.job_file,
            rows=args.rows,
            allow_writes=args.allow_writes,
            path=args.prefect_file,
        )
    if args.command == "deploy":
        return _deploy(args)
    if args.command in ("pause", "resume"):
        from deployments.operate import set_paused

        return set_paused(args.deployment, paused=args.command == "pause", path=args.prefect_file)
    return check(args.path)


if __name__ == "__main__":
    raise SystemExit(main())
