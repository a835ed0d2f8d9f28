"""What the job flows share: the job name rule, reading a job file, and the command line that runs or checks a job.

A job file that cannot be used is one line per problem, each naming where it is and what to change
(`JobFileError`): a missing or unreadable file, YAML that does not parse, a document that is no
mapping, and every validation error of the job with its field's path (`calls[0].pattern.page_size`)
and, for a key the job does not know, the closest key it does ("did you mean `calls`?").
"""

from __future__ import annotations

import difflib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from tasks.run import outcome_line, run_job

JOB_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"

JobT = TypeVar("JobT", bound=BaseModel)


class JobFileError(Exception):
    """A job file that cannot be run: each line of `lines` is one problem, with where it is."""

    def __init__(self, path: Path, lines: list[str]) -> None:
        super().__init__("\n".join(f"{path}: {line}" for line in lines))
        self.lines = lines


def read_job_document(path: Path) -> dict[str, Any]:
    """Return the job a YAML file holds (the job itself or `{job: ...}`), or raise JobFileError."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobFileError(
            path, ["no such file. Give the path of a job file (the README's job file sections show them)."]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobFileError(path, [f"cannot be read ({type(exc).__name__}: {exc})."]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f"line {where.line + 1}, column {where.column + 1}: " if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise JobFileError(
            path, [f"{at}not valid YAML ({problem}). Check the indentation and the quotes there."]
        ) from None
    if isinstance(document, dict) and isinstance(document.get("job"), dict):
        document = document["job"]
    if not isinstance(document, dict):
        raise JobFileError(path, ["holds no job: a job file is a mapping of the job's keys (`name:`, ...)."])
    return document


def load_job_file(model: type[JobT], path: Path) -> JobT:
    """Read a `model` job from a YAML file holding either the job itself or `{job: ...}`."""
    document = read_job_document(path)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise JobFileError(path, explain(exc, model, document)) from None


def explain(error: ValidationError, model: type[BaseModel], document: Any) -> list[str]:
    """Return one line per validation error: the field's path, what is wrong, and for an unknown key the closest known one."""
    known = sorted(set(field_names(model)))
    lines = []
    for item in error.errors(include_url=False):
        where = _path(item["loc"], document)
        if item["type"] == "extra_forbidden":
            key = str(item["loc"][-1])
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else "; remove it."
            lines.append(f"{where}: unknown key{hint}")
        elif item["type"] == "missing":
            lines.append(f"{where}: missing; this key is required.")
        else:
            got = item.get("input")
            shown = (
                f" (got {got!r})"
                if isinstance(got, str | int | float | bool) and len(repr(got)) <= 60
                else ""
            )
            lines.append(f"{where}: {item['msg']}{shown}.".replace("..", "."))
    return lines


def field_names(model: type[BaseModel]) -> Iterator[str]:
    """Yield the names of every field of `model` and of the models it holds (and their aliases)."""
    seen: set[type[BaseModel]] = set()
    todo = [model]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, info in current.model_fields.items():
            yield name
            if info.alias:
                yield info.alias
            todo.extend(_models_in(info.annotation))


def _models_in(annotation: Any) -> Iterable[type[BaseModel]]:
    if get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):  # unions, lists, dicts, Annotated
        yield from _models_in(arg)


def _path(loc: tuple[int | str, ...], document: Any) -> str:
    """The field's path in the file: pydantic's location without the union tags it adds (not keys of the file)."""
    text, here = "", document
    for part in loc:
        if isinstance(part, int) and isinstance(here, list) and 0 <= part < len(here):
            text, here = f"{text}[{part}]", here[part]
        elif isinstance(part, str) and (not isinstance(here, dict) or part in here or part == loc[-1]):
            text = f"{text}.{part}" if text else part
            here = here.get(part) if isinstance(here, dict) else None
        # else: a union member's tag (`file`, `CsvFile`, `function-after[...]`): not in the file
    return text or "(the job)"


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
    if len(paths) != 1 or paths[0] in ("-h", "--help"):
        print(f"usage: python -m {module} [--check] JOB.yaml", file=sys.stderr)
        return 2
    try:
        job = load_job_file(model, Path(paths[0]))
    except JobFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    if checking:
        return run_check(check, job)
    return run_and_print(flow, job)


def run_check(check: Callable[[JobT], int], job: JobT) -> int:
    """Run a job's connection check and return its exit code, once Prefect has sent what it queued."""
    try:
        return check(job)
    finally:
        deliver_queued_events()


def deliver_queued_events(timeout_seconds: float = 10.0) -> None:
    """Wait, at most `timeout_seconds`, until Prefect's events worker has sent every queued event.

    Loading a block queues an event. A check's process exits right after; Prefect stops its events
    worker with the event still queued and logs "EventsWorker - Still processing items" at every
    exit. Waiting here first leaves nothing to report. Bounded: an unreachable API never hangs.
    """
    from prefect.events.worker import EventsWorker

    deadline = time.monotonic() + timeout_seconds
    for worker in list(EventsWorker._instances.values()):  # type: ignore[misc]
        while worker._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)


def run_and_print(flow: Callable[..., Any], job: BaseModel) -> int:
    """Run `flow` on `job` in this process; 0 when it completed.

    The flow logs its whole report (the terminal shows it); this prints the outcome once more in one line.
    """
    state, report = run_job(flow, job)
    print(outcome_line(report) if report else f"{state.name}: {state.message}")
    return 0 if state.is_completed() else 1
