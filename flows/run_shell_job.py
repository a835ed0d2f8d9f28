"""Run a shell job: a saved Shell Operation block on a schedule, with no connection (e.g. re-indexation).

`ShellJob` is the flow's only parameter, like the import jobs' models: it names the block whose
commands run (never the command itself: anyone who can start a run can edit parameters) and the
timeout past which the step is killed. The step gets `DATAHUB_JOB` and `DATAHUB_RUN_ID`. Run one
locally with `python -m flows.run_shell_job job.yaml`.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed
from prefect_shell import ShellOperation
from pydantic import ConfigDict, Field

from flows._job import JOB_NAME, JobFileError, load_job_file, run_and_print
from tasks.errors import ShellStepError
from tasks.job_model import BlockRef, JobModel
from tasks.shell import ShellStep, run_shell_step


class ShellJob(JobModel):
    """One shell job: which Shell Operation block runs, and how long it may take."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Shell job")

    name: str = Field(
        pattern=JOB_NAME,
        description="Unique job name (letters, digits, `-`, `_`, `.`); also the deployment's name.",
    )
    operation: str = Field(
        min_length=1,
        description="Name of the Shell Operation block whose commands run (the command is set in the "
        "block, never here).",
    )
    timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=86400,
        description="The job is killed (with every process it started) when it runs longer than this.",
    )

    def blocks(self) -> list[BlockRef]:
        """Return the saved block the job names: its Shell Operation."""
        return [BlockRef("operation", ShellOperation, self.operation)]


@flow(name="run-shell-job", flow_run_name="{job.name}", validate_parameters=True)
def run_shell_job(job: ShellJob) -> State:
    """Run the job's Shell Operation block; fail with the block, exit code and stderr tail if it fails.

    The worker's `DATAHUB_SHELL_BLOCKS` decides which blocks may run (see `tasks.shell`).
    """
    run_id = str(runtime.flow_run.id or uuid.uuid4())
    step = ShellStep(block=job.operation, timeout_seconds=job.timeout_seconds)
    env = {"DATAHUB_JOB": job.name, "DATAHUB_RUN_ID": run_id}
    try:
        result = run_shell_step(step, "shell job", env)
    except ShellStepError as exc:
        _publish(job, f"# {job.name}: FAILED\n\n```\n{exc}\n```\n")
        return Failed(message=str(exc))
    last = result.output[-1] if result.output else ""
    _publish(
        job,
        f"# {job.name}: SUCCESS\n\n{result.command} exited 0 in {result.seconds:.1f} s; "
        f"{len(result.output)} line(s) of output, the last: `{last[:200]}`.\n",
    )
    return Completed(message=f"{job.operation}: exit code 0 in {result.seconds:.1f} s", data=result.output)


def _publish(job: ShellJob, markdown: str) -> None:
    key = "".join(ch if ch.isalnum() else "-" for ch in job.name.lower()).strip("-") or "shell-job"
    create_markdown_artifact(key=f"{key}-summary", markdown=markdown, description="Shell job summary")


def load_job(path: Path) -> ShellJob:
    """Read a job from a YAML file holding either the job itself or `{job: ...}`."""
    return load_job_file(ShellJob, path)


def main(argv: list[str]) -> int:
    """Run the job file given on the command line."""
    if len(argv) != 1:
        print("usage: python -m flows.run_shell_job JOB.yaml", file=sys.stderr)
        return 2
    try:
        job = load_job(Path(argv[0]))
    except JobFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    return run_and_print(run_shell_job, job)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
