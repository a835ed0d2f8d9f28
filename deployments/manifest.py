"""Read `prefect.yaml` into deployments and find the job model each one's flow takes."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"


@dataclass(frozen=True)
class Deployment:
    """One deployment of `prefect.yaml`: what the checks need of it."""

    name: str
    entrypoint: str
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: dict[str, Any] | None = None

    def job_model(self) -> type[BaseModel]:
        """Return the pydantic model of the flow's `job` parameter (the flow signature is the registry)."""
        from prefect.flows import load_flow_from_entrypoint

        flow: Any = load_flow_from_entrypoint(self.entrypoint)
        model = typing.get_type_hints(flow.fn)["job"]
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{self.entrypoint}: the flow's `job` parameter is not a pydantic model")
        return model


def load_deployments(path: Path = PREFECT_YAML) -> list[Deployment]:
    """Return the deployments of a `prefect.yaml` file (YAML anchors resolved)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Deployment(
            name=entry["name"],
            entrypoint=entry["entrypoint"],
            parameters=entry.get("parameters") or {},
            schedules=entry.get("schedules") or [],
            concurrency_limit=entry.get("concurrency_limit"),
        )
        for entry in document.get("deployments") or []
    ]
