"""Operate deployments: run one's job locally in-process, pause and resume it on the Prefect server.

Deployment names are `<flow-name>/<deployment-name>` as Prefect shows them (e.g.
`import-csv-from-ftp/products-from-erp-ftp`); a bare deployment name of `prefect.yaml` works too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, ValidationError

from deployments.manifest import PREFECT_YAML, Deployment, load_deployments


def find_deployment(name: str, path: Path = PREFECT_YAML) -> Deployment:
    """Return the deployment of `prefect.yaml` called `name` (`flow/deployment` or `deployment`)."""
    wanted = name.rpartition("/")[2]
    deployments = load_deployments(path)
    for deployment in deployments:
        if deployment.name == wanted:
            return _rooted(deployment, path.parent)
    known = ", ".join(d.name for d in deployments)
    raise LookupError(f"no deployment {wanted!r} in {path}; known: {known}")


def _rooted(deployment: Deployment, root: Path) -> Deployment:
    file, _, function = deployment.entrypoint.partition(":")
    if (root / file).exists():
        return Deployment(
            name=deployment.name,
            entrypoint=f"{root / file}:{function}",
            parameters=deployment.parameters,
            schedules=deployment.schedules,
            concurrency_limit=deployment.concurrency_limit,
        )
    return deployment


def full_name(name: str, path: Path = PREFECT_YAML) -> str:
    """Return `flow-name/deployment-name`, looking the flow name up in `prefect.yaml` when it is missing."""
    if "/" in name:
        return name
    from prefect.flows import load_flow_from_entrypoint

    flow: Any = load_flow_from_entrypoint(find_deployment(name, path).entrypoint)
    return f"{flow.name}/{name}"


def job_of(deployment: Deployment, job_file: Path | None = None, *, force: bool = False) -> BaseModel:
    """Return the deployment's job (or the job of `job_file`) as its flow's model, `force` set if asked."""
    if job_file is not None:
        document = yaml.safe_load(job_file.read_text(encoding="utf-8")) or {}
        raw = document.get("job", document) if isinstance(document, dict) else document
    else:
        raw = deployment.parameters.get("job")
    model = deployment.job_model()
    job = model.model_validate(raw)
    if force:
        if "force" not in type(job).model_fields:
            raise ValueError(f"{model.__name__} has no `force` option")
        job = job.model_copy(update={"force": True})
    return job


def run(name: str, job_file: Path | None = None, *, force: bool = False, path: Path = PREFECT_YAML) -> int:
    """Run one deployment's job locally, in this process, through its flow; return the exit code."""
    from prefect.flows import load_flow_from_entrypoint

    try:
        deployment = find_deployment(name, path)
        job = job_of(deployment, job_file, force=force)
    except (LookupError, ValueError, ValidationError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    flow: Any = load_flow_from_entrypoint(deployment.entrypoint)
    state: State = flow(job=job, return_state=True)
    message = f": {state.message}" if state.message else ""
    print(f"{flow.name}/{deployment.name}: {state.name}{message}")
    return 0 if state.is_completed() else 1


def set_paused(name: str, *, paused: bool, path: Path = PREFECT_YAML) -> int:
    """Pause (the seeds' Disable) or resume (Activate) a deployment on the server; schedules stay."""
    try:
        qualified = full_name(name, path)
    except LookupError as exc:
        print(exc, file=sys.stderr)
        return 2
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(qualified)
        except ObjectNotFound:
            print(f"no deployment {qualified!r} on the server; deploy it first", file=sys.stderr)
            return 2
        if paused:
            client.pause_deployment(deployment.id)
        else:
            client.resume_deployment(deployment.id)
        now = client.read_deployment(deployment.id)
    print(f"{qualified}: {'paused' if now.paused else 'active'}")
    return 0
