"""`./dev run|check JOB.yaml` (`python -m flows`): the job's kind from the file, one line per problem.

Each case checks the exact output an engineer reads (issue 16, "a CLI that explains"); nothing runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.__main__ import main


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    return err.splitlines()


def test_help_says_what_the_commands_do_and_exits_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ./dev [-h] {run,check} JOB.yaml\n\nRun or check a job file of any kind")
    assert (
        "  ./dev run JOB.yaml      run the job once, here (no Prefect server needed), and print its report\n"
        in out
    )
    assert "Traceback" not in out


def test_a_missing_file_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert _errors(capsys, ["run", str(missing)]) == [
        f"{missing}: no such file. Give the path of a job file (the README's job file sections show them)."
    ]


def test_a_misspelt_key_names_the_closest_kind_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job = _write(
        tmp_path,
        "typo.yaml",
        "name: pim-products\nconnection: pim-api\nentity: products\n"
        "cals:\n  - name: list\n    path: products\nmapping: {'$.id': productExternalId}\n",
    )
    assert _errors(capsys, ["run", str(job)]) == [
        f"{job}: read as the api job it is closest to (set `kind:` to choose the kind):",
        f"{job}: calls: missing; this key is required.",
        f"{job}: cals: unknown key; did you mean `calls`?",
    ]


def test_nested_keys_are_named_by_their_path_in_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job = _write(
        tmp_path,
        "csv.yaml",
        "job:\n  name: erp-products\n  connection: erp-ftp\n  entity: products\n"
        "  source: {kind: file, file_pth: folder/products.csv}\n  csv: {delimiter: ';'}\n"
        "  reject_threshold_percnt: 5\n",
    )
    assert _errors(capsys, ["check", str(job)]) == [
        f"{job}: read as the csv job it is closest to (set `kind:` to choose the kind):",
        f"{job}: source.file_path: missing; this key is required.",
        f"{job}: source.file_pth: unknown key; did you mean `file_path`?",
        f"{job}: reject_threshold_percnt: unknown key; did you mean `reject_threshold_percent`?",
    ]


def test_an_explicit_kind_is_used_and_checked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shell = _write(
        tmp_path, "shell.yaml", "kind: shell\nname: reindex\noperation: shop-reindex\ntimeout_seconds: 0\n"
    )
    assert _errors(capsys, ["run", str(shell)]) == [
        f"{shell}: timeout_seconds: Input should be greater than 0 (got 0).",
    ]
    unknown = _write(tmp_path, "soap.yaml", "kind: soap\nname: x\n")
    assert _errors(capsys, ["run", str(unknown)]) == [
        f"{unknown}: kind: `soap` is no kind of job; write one of csv, api, shell."
    ]


def test_broken_yaml_and_a_file_that_is_no_job_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = _write(tmp_path, "broken.yaml", "name: x\n  bad: [\n")
    assert _errors(capsys, ["run", str(broken)]) == [
        f"{broken}: line 2, column 6: not valid YAML (mapping values are not allowed here). Check the "
        "indentation and the quotes there."
    ]
    listed = _write(tmp_path, "list.yaml", "- a\n- b\n")
    assert _errors(capsys, ["check", str(listed)]) == [
        f"{listed}: holds no job: a job file is a mapping of the job's keys (`name:`, ...)."
    ]


def test_a_valid_shell_job_has_nothing_to_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shell = _write(tmp_path, "shell.yaml", "name: reindex\noperation: shop-reindex\n")
    assert main(["check", str(shell)]) == 0
    assert capsys.readouterr().out == f"{shell}: a valid shell job; it has no connection to check.\n"
