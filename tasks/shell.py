"""Shell steps around imports: run a saved `ShellOperation` block (prefect-shell) with a timeout.

A step names a block; the command text only ever comes from that block, never from job parameters
(anyone who can start a run can edit parameters, and a command there would be remote code execution).
What a step needs to know (the file, the run's counts) reaches it as `DATAHUB_*` environment
variables, never spliced into the command text.

- `before_import` runs per downloaded file, before it is parsed, in a folder of its own
  (`DATAHUB_WORK_DIR`) holding only that file (`DATAHUB_FILE`). The job then reads, in this order:
  `DATAHUB_OUTPUT` if the step wrote it; else the one new file the step left in the folder
  (`gunzip "$DATAHUB_FILE"`); else `DATAHUB_FILE` itself (changed in place, or not at all).
  Anything else (the file gone and nothing new, or several new files) fails the file. The file read
  must be a regular file with one link, opened without following a link on the way from the folder
  (`O_NOFOLLOW`, checked on the open descriptor): `unzip` of a hostile archive can leave a link to any
  file the worker may read. What the job reads is a copy taken from that descriptor, so nothing the
  step left running can swap the file afterwards.
- `after_import` runs once per run after the load, on SUCCESS (and PARTIAL with `also_on_partial`),
  with the run's facts (`run_facts`).

Which blocks a run may name is the worker's choice, never the run's: on a self-hosted server whoever
can start a run can also edit blocks and deployments, so `DATAHUB_SHELL_BLOCKS` (in the worker's
environment: comma-separated block names or `fnmatch` patterns) lists them; unset, only the blocks the
project ships (`SHIPPED_SHELL_BLOCKS`) may run. A block's command text may hold a credential, so it is
never logged or reported whole: messages name the block, its first program and a digest of the text.

`ShellOperation` has no timeout of its own: `run_shell_step` triggers it, kills its whole process
group (the shell runs in a session of its own) once `timeout_seconds` pass, and turns a non-zero exit
into a `ShellStepError` carrying the block, the exit code and the last lines of stderr.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from pydantic import ConfigDict, Field

from tasks.errors import BadFileError, ShellStepError
from tasks.run.report import ImportReport
from tasks.ui_schema import FormModel

__all__ = [
    "AfterImportStep",
    "BeforeImportStep",
    "ShellStep",
    "StepResult",
    "after_import",
    "allowed_shell_blocks",
    "before_import",
    "chosen_file",
    "command_label",
    "failure_message",
    "run_facts",
    "run_shell_step",
]

logger = logging.getLogger(__name__)

STDERR_TAIL_LINES = 10
SHELL_BLOCKS_VAR = "DATAHUB_SHELL_BLOCKS"
# The Shell Operation blocks prefect.yaml's deployments name: what a worker runs when it lists none.
SHIPPED_SHELL_BLOCKS = ("shop-reindex",)
# A first word shown in messages: a plain program name or path (never `TOKEN=... cmd`, never quoted text).
PROGRAM = re.compile(r"[A-Za-z0-9_./-]{1,64}")
KILL_GRACE_SECONDS = 3.0
# The log prefix prefect-shell writes before each output line; we set it so stderr lines can be told apart.
LOG_PREFIX = "PID {pid} {label}:\n"
# Loggers prefect-shell's output lines go to: the run loggers, or its own outside a run.
SHELL_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.ShellProcess")
OUTPUT_NAME = "datahub-output"


class ShellStep(FormModel):
    """A command run around an import: a saved Shell Operation block and how long it may take."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Shell step")

    block: str = Field(
        min_length=1,
        description="Name of the Shell Operation block whose commands run (the command is set in the "
        "block, never here).",
    )
    timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        description="The step is killed (with every process it started) when it runs longer than this.",
    )


class BeforeImportStep(ShellStep):
    """Runs on each downloaded file before it is read; gets its path in `DATAHUB_FILE`."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Before-import step")


class AfterImportStep(ShellStep):
    """Runs once per run after the load; gets the run's facts in `DATAHUB_*` variables."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="After-import step")

    also_on_partial: bool = Field(
        default=False,
        description="Also run when the run loaded with rejects (PARTIAL). It never runs on FAILED or SKIPPED.",
    )


@dataclass(frozen=True)
class StepResult:
    """What a finished step did."""

    block: str
    command: str
    return_code: int
    output: list[str]
    seconds: float


def command_label(commands: list[str]) -> str:
    """Return how messages name a block's commands: its first program and a digest, never the text.

    The text may hold a credential (`curl -H "Authorization: ..."`); the digest still tells two versions
    of the block apart.
    """
    lines = [line.strip() for line in commands if line.strip()]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]
    first = lines[0].split()[0] if lines else ""
    shown = f"{first} … " if PROGRAM.fullmatch(first) else "… "
    return f"{shown}({len(lines)} line(s), sha256 {digest})"


def allowed_shell_blocks() -> list[str]:
    """Return the block names (or `fnmatch` patterns) this worker runs: `DATAHUB_SHELL_BLOCKS`, or the shipped ones."""
    listed = os.environ.get(SHELL_BLOCKS_VAR)
    if listed is None:
        return list(SHIPPED_SHELL_BLOCKS)
    return [name.strip() for name in listed.split(",") if name.strip()]


def _check_allowed(name: str, label: str) -> None:
    allowed = allowed_shell_blocks()
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
        return
    raise ShellStepError(
        f"{label} step: this worker does not run the Shell Operation block {name!r}: a run's parameters "
        "may name any block, so the worker's environment lists the blocks it runs. Add the name to "
        f"`{SHELL_BLOCKS_VAR}` on the worker (comma-separated names or patterns; now: "
        f"{', '.join(allowed) or 'none'}), or name an allowed block."
    )


def failure_message(
    label: str,
    block: str,
    command: str,
    *,
    return_code: int | None,
    timeout_seconds: float | None,
    seconds: float,
    stderr: list[str],
) -> str:
    """Return what a failed step did and what to change; a timeout when `timeout_seconds` is given."""
    if timeout_seconds is not None:
        what = (
            f"ran past its timeout of {timeout_seconds:g} s and was killed, with every process it started. "
            "Raise the step's `timeout_seconds`, or make the command faster."
        )
    else:
        what = (
            f"exited with code {return_code} after {seconds:.1f} s. Fix the command in the Shell Operation "
            f"block {block!r} (or what it calls)."
        )
    tail = stderr[-STDERR_TAIL_LINES:]
    shown = "\n".join(f"  {line}" for line in tail) if tail else "  (nothing)"
    return (
        f"{label} step {block!r} (command: {command}) {what} Its output is in the run's logs. "
        f"Last lines of stderr:\n{shown}"
    )


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    # Tests call the tasks' `.fn` outside any run, where Prefect has no run logger to give.
    try:
        return get_run_logger()
    except MissingContextError:
        return logger


class _StderrTail(logging.Handler):
    """Collect the stderr lines prefect-shell logs for one process (it keeps only stdout itself)."""

    def __init__(self, pid: int) -> None:
        super().__init__(level=logging.DEBUG)
        self.prefix = LOG_PREFIX.format(pid=pid, label="stderr").replace("\n", os.linesep)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(self.prefix):
            self.lines.extend(message[len(self.prefix) :].splitlines())
            del self.lines[: -STDERR_TAIL_LINES * 5]


@contextmanager
def _collect_stderr(pid: int) -> Iterator[_StderrTail]:
    handler = _StderrTail(pid)
    loggers = [logging.getLogger(name) for name in SHELL_LOGGERS]
    for each in loggers:
        each.addHandler(handler)
    try:
        yield handler
    finally:
        for each in loggers:
            each.removeHandler(handler)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # prefect-shell starts the shell in a new session, so its process group id is its pid: signalling
    # the group reaches every process the commands started (unless one left the group on purpose).
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _close_pipes(process: Any) -> None:
    # prefect-shell 0.3.7's sync path reads the pipes to the end but never closes them (a
    # ResourceWarning per step); once the reader threads are done nothing else reads them.
    popen = getattr(process, "_process", None)
    for pipe in (getattr(popen, "stdout", None), getattr(popen, "stderr", None)):
        if pipe is not None:
            pipe.close()


def _load_operation(name: str, label: str) -> Any:
    from prefect_shell import ShellOperation

    _check_allowed(name, label)  # before loading: a refused block's commands are never read
    try:
        block = ShellOperation.load(name)
    except ValueError as exc:
        raise ShellStepError(
            f"{label} step: there is no Shell Operation block named {name!r}. Create it (Prefect UI: "
            "Blocks > Shell Operation) or fix the step's `block`."
        ) from exc
    if not isinstance(block, ShellOperation):
        raise ShellStepError(f"{label} step: block {name!r} is not a Shell Operation block.")
    return block


@task(name="shell-step", task_run_name="{label}: {step.block}", cache_policy=NO_CACHE)
def run_shell_step(
    step: ShellStep, label: str, env: dict[str, str], working_dir: Path | None = None
) -> StepResult:
    """Run the step's Shell Operation block with `env` added; kill it past its timeout.

    `working_dir` applies only when the block sets none. Raises `ShellStepError` on a non-zero exit,
    a timeout, a missing block or one the worker does not allow; the output is in the run's logs either way.
    """
    block = _load_operation(step.block, label)
    command = command_label(block.commands)
    operation = block.model_copy(
        update={
            "env": {**block.env, **env},
            "working_dir": block.working_dir or working_dir,
            "stream_output": True,  # the output belongs in the run's logs
            "log_prefix": LOG_PREFIX,
        }
    )
    log = _run_logger()
    log.info("%s step %r: running %s (timeout %g s).", label, step.block, command, step.timeout_seconds)
    started = time.monotonic()
    timed_out = threading.Event()
    with operation:
        # Closing the operation (leaving this block) signals the process group again: background
        # processes a finished command left behind (`sleep 99 &`) do not outlive the step.
        process = operation.trigger()
        pid = int(process.pid)

        def expire() -> None:
            timed_out.set()
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + KILL_GRACE_SECONDS
            while process.return_code is None and time.monotonic() < deadline:
                time.sleep(0.05)
            _signal_group(pid, signal.SIGKILL)

        timer = threading.Timer(step.timeout_seconds, expire)
        timer.daemon = True
        with _collect_stderr(pid) as stderr:
            timer.start()
            try:
                process.wait_for_completion()
            except RuntimeError:
                pass  # a non-zero exit: judged below from the return code
            finally:
                timer.cancel()
                _close_pipes(process)
        output = list(process.fetch_result())
        return_code = process.return_code
    seconds = time.monotonic() - started
    if timed_out.is_set() or return_code != 0:
        message = failure_message(
            label,
            step.block,
            command,
            return_code=return_code,
            timeout_seconds=step.timeout_seconds if timed_out.is_set() else None,
            seconds=seconds,
            stderr=stderr.lines,
        )
        log.error("%s", message)
        raise ShellStepError(message)
    log.info("%s step %r finished in %.1f s.", label, step.block, seconds)
    return StepResult(step.block, command, int(return_code or 0), output, round(seconds, 3))


def chosen_file(original: Path, output: Path, before: set[Path], after: set[Path]) -> Path:
    """Return the file the job reads once a before-import step ran (see the module docstring).

    `before` and `after` are the files of the step's folder before and after it ran.
    """
    if output.is_file():
        return output
    new = sorted(after - before - {output})
    if len(new) == 1:
        return new[0]
    if not new and original.is_file():
        return original
    left = ", ".join(path.name for path in new[:5]) or "no file"
    raise BadFileError(
        f"the before_import step left {left} and "
        + ("removed the downloaded file" if not original.is_file() else "kept the downloaded file")
        + ", so which file to read is ambiguous. Have it leave exactly one new file, or write the file "
        "to read to `$DATAHUB_OUTPUT`."
    )


def _open_regular(work: Path, chosen: Path) -> int:
    """Open `chosen` inside `work` following no link on the way; return its descriptor if it is one regular file.

    The checks are made on the open descriptor: a check of the path before opening it could be raced.
    """
    parts = chosen.relative_to(work).parts
    no_link = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    shown = "/".join(parts)
    folder = os.open(work, no_link | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, no_link | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        # O_NONBLOCK: a FIFO the step left must fail below, not block the run on open.
        fd = os.open(parts[-1], no_link | os.O_NONBLOCK, dir_fd=folder)
    except OSError as exc:
        raise BadFileError(
            f"the before_import step left {shown!r} as a symbolic link (or under one): the job never reads "
            f"where a link points ({exc.strerror}). Have the step write a regular file (e.g. refuse links "
            "when unpacking), or copy the data to `$DATAHUB_OUTPUT`."
        ) from exc
    finally:
        os.close(folder)
    facts = os.fstat(fd)
    if not stat.S_ISREG(facts.st_mode) or facts.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(facts.st_mode) else f"{facts.st_nlink} hard links"
        raise BadFileError(
            f"the before_import step left {shown!r} with {what}: the job reads only a regular file with one "
            "link (a hard link is a second name of another file). Have the step write a new file, or copy "
            "the data to `$DATAHUB_OUTPUT`."
        )
    return fd


def _copy_out(fd: int, destination: Path) -> None:
    # `x`: a fresh file of our own, never one something else already put there.
    with os.fdopen(fd, "rb") as source, destination.open("xb") as copy:
        shutil.copyfileobj(source, copy, 1 << 20)


def _files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


@contextmanager
def before_import(step: ShellStep | None, local_path: Path, facts: dict[str, str]) -> Iterator[Path]:
    """Run `step` on a downloaded file and yield the file to read; without a step yield the file itself.

    The step runs in a folder of its own next to the file, removed (with whatever the step left there)
    when the block exits; `local_path` is moved into that folder. The file yielded is a copy of the one
    chosen, in a second folder the step never saw.
    """
    if step is None:
        yield local_path
        return
    work = Path(tempfile.mkdtemp(dir=local_path.parent, prefix="step-"))
    kept = Path(tempfile.mkdtemp(dir=local_path.parent, prefix="read-"))
    try:
        moved = work / local_path.name
        os.replace(local_path, moved)
        output = work / OUTPUT_NAME
        before = _files_under(work)
        env = {
            **facts,
            "DATAHUB_FILE": str(moved),
            "DATAHUB_OUTPUT": str(output),
            "DATAHUB_WORK_DIR": str(work),
        }
        run_shell_step(step, "before_import", env, work)
        chosen = chosen_file(moved, output, before, _files_under(work))
        read = kept / chosen.name
        _copy_out(_open_regular(work, chosen), read)
        _run_logger().info("before_import: reading %s.", chosen.name)
        yield read
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(kept, ignore_errors=True)


def run_facts(report: ImportReport, status: str) -> dict[str, str]:
    """Return the `DATAHUB_*` variables an after-import step gets: the run's facts, never a secret."""
    return {
        "DATAHUB_JOB": report.job,
        "DATAHUB_ENTITY": report.entity,
        "DATAHUB_RUN_ID": report.run_id,
        "DATAHUB_STATUS": status,
        "DATAHUB_FILE_COUNT": str(len(report.files)),
        # One per line (paths on the server, or URLs without their query string).
        "DATAHUB_FILE_NAMES": "\n".join(f.path for f in report.files),
        "DATAHUB_ROWS_READ": str(report.total("rows_read")),
        "DATAHUB_ROWS_INSERTED": str(report.total("inserted")),
        "DATAHUB_ROWS_UPDATED": str(report.total("updated")),
        "DATAHUB_ROWS_UNCHANGED": str(report.total("unchanged")),
        "DATAHUB_ROWS_REJECTED": str(report.total("rejected")),
    }


def after_import(step: AfterImportStep | None, report: ImportReport) -> StepResult | None:
    """Run `step` once the run's files are loaded, if the run's status calls for it."""
    if step is None:
        return None
    status = report.model_copy(deep=True).settle(datetime.now(UTC))
    wanted = {"SUCCESS", "PARTIAL"} if step.also_on_partial else {"SUCCESS"}
    if status not in wanted:
        _run_logger().info("after_import step %r not run: the run is %s.", step.block, status)
        return None
    return run_shell_step(step, "after_import", run_facts(report, status))
