"""`python -m flows run|check JOB.yaml`: run or check a job file of any kind (`./dev run`, `./dev check`).

The job's kind comes from the file, never from a guess at its text: an explicit `kind: csv | api |
shell` key, or else the one job model the file validates against. A file that fits none is explained
against the kind it is closest to (the fewest problems), one line per problem.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from flows._job import JobFileError, explain, read_job_document, run_and_print, run_check

USAGE = """\
Run or check a job file of any kind: a CSV import over FTP/FTPS/SFTP, a REST API import, a shell job.

  ./dev run JOB.yaml      run the job once, here (no Prefect server needed), and print its report
  ./dev check JOB.yaml    check the job file and its connection (a CSV job: its folders too); load nothing

The kind is the file's `kind:` key (csv, api or shell) or, without one, the job model the file fits.
Exit codes: 0 done (SUCCESS, PARTIAL, SKIPPED), 1 the run failed or the check found a problem,
2 the job file cannot be used (each problem on its own line)."""


@dataclass(frozen=True)
class Kind:
    """One kind of job: its name in `kind:`, the module of its flow, its model, flow and check."""

    name: str
    module: str
    model_name: str
    flow_name: str
    check_name: str | None  # prints what it found, returns the exit code; None: nothing to check

    def attribute(self, name: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self.module), name)

    def model(self) -> type[BaseModel]:
        model: type[BaseModel] = self.attribute(self.model_name)
        return model


KINDS = (
    Kind("csv", "flows.import_csv_from_ftp", "CsvImportJob", "import_csv_from_ftp", "check_job"),
    Kind("api", "flows.import_json_from_api", "ApiImportJob", "import_json_from_api", "check_job"),
    Kind("shell", "flows.run_shell_job", "ShellJob", "run_shell_job", None),
)


def job_kind(path: Path, document: dict[str, Any]) -> tuple[Kind, BaseModel]:
    """Return the job's kind and the job, or raise JobFileError explaining the closest kind's problems."""
    given = document.pop("kind", None)
    if given is not None:
        chosen = [kind for kind in KINDS if kind.name == given]
        if not chosen:
            names = ", ".join(kind.name for kind in KINDS)
            raise JobFileError(path, [f"kind: `{given}` is no kind of job; write one of {names}."])
        candidates = chosen
    else:
        candidates = list(KINDS)
    failures: list[tuple[int, Kind, list[str]]] = []
    for kind in candidates:
        model = kind.model()
        try:
            return kind, model.model_validate(document)
        except ValidationError as exc:
            failures.append((exc.error_count(), kind, explain(exc, model, document)))
    _, kind, lines = min(failures, key=lambda failure: failure[0])
    if given is None and len(candidates) > 1:
        lines = [f"read as the {kind.name} job it is closest to (set `kind:` to choose the kind):", *lines]
    raise JobFileError(path, lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="./dev", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("run", "check"), help="run the job, or check it")
    parser.add_argument("job_file", type=Path, metavar="JOB.yaml", help="the job file")
    args = parser.parse_args(argv)
    try:
        kind, job = job_kind(args.job_file, read_job_document(args.job_file))
    except JobFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "run":
        return run_and_print(kind.attribute(kind.flow_name), job)
    if kind.check_name is None:
        print(f"{args.job_file}: a valid {kind.name} job; it has no connection to check.")
        return 0
    return run_check(kind.attribute(kind.check_name), job)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
