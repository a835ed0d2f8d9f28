"""What the job flows share: the job name rule, reading a job file, and the command line that runs or checks a job."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from tasks.run import render_text, run_job

JOB_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"

JobT = TypeVar("JobT", bound=BaseModel)


def load_job_file(model: type[JobT], path: Path) -> JobT:
    """Read a `model` job from a YAML file holding either the job itself or `{job: ...}`."""
    import yaml

    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return model.model_validate(document.get("job", document))


def command_line(
    argv: list[str],
    *,
    module: str,
    model: type[JobT],
    flow: Callable[..., Any],
    check: Callable[[JobT], int],
) -> int:
    """Run the job file given on the command line through `flow` (with --check: `check` it instead).

    `check` prints what it found and returns the exit code.
    """
    checking = "--check" in argv
    paths = [arg for arg in argv if arg != "--check"]
    if len(paths) != 1:
        print(f"usage: python -m {module} [--check] JOB.yaml", file=sys.stderr)
        return 2
    job = load_job_file(model, Path(paths[0]))
    if checking:
        return check(job)
    state, report = run_job(flow, job)
    print(render_text(report) if report else f"{state.name}: {state.message}")
    return 0 if state.is_completed() else 1
