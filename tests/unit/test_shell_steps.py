"""The pure parts of the shell steps: which file a before-import step left, messages, the run's facts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.import_csv_from_ftp import CsvImportJob
from flows.run_shell_job import ShellJob
from tasks.errors import BadFileError
from tasks.run.report import FileReport, ImportReport
from tasks.shell import OUTPUT_NAME, AfterImportStep, chosen_file, command_label, failure_message, run_facts


def _folder(tmp_path: Path, *names: str) -> set[Path]:
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    return {tmp_path / name for name in names}


def test_output_path_wins(tmp_path: Path) -> None:
    before = _folder(tmp_path, "x.csv.gz")
    after = _folder(tmp_path, OUTPUT_NAME, "x.csv", "log.txt")
    assert (
        chosen_file(tmp_path / "x.csv.gz", tmp_path / OUTPUT_NAME, before, before | after)
        == tmp_path / OUTPUT_NAME
    )


def test_the_one_new_file_replaces_the_download(tmp_path: Path) -> None:
    before = _folder(tmp_path, "x.csv.gz")
    (tmp_path / "x.csv.gz").unlink()  # gunzip x.csv.gz
    after = _folder(tmp_path, "x.csv")
    assert chosen_file(tmp_path / "x.csv.gz", tmp_path / OUTPUT_NAME, before, after) == tmp_path / "x.csv"


def test_one_new_file_in_a_sub_folder_next_to_the_kept_download(tmp_path: Path) -> None:
    before = _folder(tmp_path, "x.zip")
    after = before | _folder(tmp_path, "extracted/products.csv")  # unzip, archive kept
    assert (
        chosen_file(tmp_path / "x.zip", tmp_path / OUTPUT_NAME, before, after)
        == tmp_path / "extracted/products.csv"
    )


def test_nothing_new_reads_the_download_changed_in_place(tmp_path: Path) -> None:
    before = _folder(tmp_path, "x.csv")
    assert chosen_file(tmp_path / "x.csv", tmp_path / OUTPUT_NAME, before, before) == tmp_path / "x.csv"


def test_several_new_files_are_ambiguous(tmp_path: Path) -> None:
    before = _folder(tmp_path, "x.zip")
    after = before | _folder(tmp_path, "a.csv", "b.csv")
    with pytest.raises(BadFileError, match=r"left a.csv, b.csv and kept the downloaded file.*DATAHUB_OUTPUT"):
        chosen_file(tmp_path / "x.zip", tmp_path / OUTPUT_NAME, before, after)


def test_a_removed_download_and_nothing_new_is_an_error(tmp_path: Path) -> None:
    before = {tmp_path / "x.csv"}
    with pytest.raises(BadFileError, match="left no file and removed the downloaded file"):
        chosen_file(tmp_path / "x.csv", tmp_path / OUTPUT_NAME, before, set())


def test_failure_message_has_command_exit_code_and_stderr_tail() -> None:
    stderr = [f"line {n}" for n in range(1, 15)]
    message = failure_message(
        "before_import",
        "unpack",
        "gunzip x",
        return_code=2,
        timeout_seconds=None,
        seconds=0.25,
        stderr=stderr,
    )
    assert message.startswith(
        "before_import step 'unpack' (command: gunzip x) exited with code 2 after 0.2 s."
    )
    assert "line 4\n" not in message
    assert message.endswith(
        "line 5\n  line 6\n  line 7\n  line 8\n  line 9\n  line 10\n  line 11\n  line 12\n  line 13\n  line 14"
    )


def test_timeout_message() -> None:
    message = failure_message(
        "shell job", "reindex", "sleep 9", return_code=-15, timeout_seconds=2, seconds=2.0, stderr=[]
    )
    assert "ran past its timeout of 2 s and was killed" in message
    assert "timeout_seconds" in message
    assert message.endswith("Last lines of stderr:\n  (nothing)")


def test_command_label_shows_the_first_program_and_a_digest_never_the_text() -> None:
    label = command_label(["gunzip x", "  ", "ls"])
    assert label.startswith("gunzip … (2 line(s), sha256 ")
    assert label != command_label(["gunzip y", "ls"])  # another version of the block
    hidden = command_label(["TOKEN=s3cret curl -H 'Authorization: s3cret' https://x"])
    assert "s3cret" not in hidden
    assert hidden.startswith("… (1 line(s)")


def test_run_facts_are_the_counts_and_file_names() -> None:
    report = ImportReport(job="j", entity="products", run_id="r1", started_at=datetime.now(UTC))
    report.add(FileReport(path="in/a.csv.gz", status="SUCCESS", rows_read=3, inserted=2, updated=1), [])
    report.add(FileReport(path="in/b.csv.gz", status="PARTIAL", rows_read=2, unchanged=1, rejected=1), [])
    assert run_facts(report, "PARTIAL") == {
        "DATAHUB_JOB": "j",
        "DATAHUB_ENTITY": "products",
        "DATAHUB_RUN_ID": "r1",
        "DATAHUB_STATUS": "PARTIAL",
        "DATAHUB_FILE_COUNT": "2",
        "DATAHUB_FILE_NAMES": "in/a.csv.gz\nin/b.csv.gz",
        "DATAHUB_ROWS_READ": "5",
        "DATAHUB_ROWS_INSERTED": "2",
        "DATAHUB_ROWS_UPDATED": "1",
        "DATAHUB_ROWS_UNCHANGED": "1",
        "DATAHUB_ROWS_REJECTED": "1",
    }


def test_steps_name_a_block_never_a_command() -> None:
    base = {"name": "j", "connection": "ftp", "entity": "products", "csv": {"delimiter": ";"}}
    job = CsvImportJob.model_validate(
        base
        | {
            "source": {"kind": "file", "file_path": "a.csv"},
            "after_import": {"block": "reindex", "also_on_partial": True},
        }
    )
    assert job.after_import == AfterImportStep(block="reindex", also_on_partial=True)
    assert job.after_import.timeout_seconds == 600
    with pytest.raises(ValidationError, match="command"):
        CsvImportJob.model_validate(
            base
            | {
                "source": {"kind": "file", "file_path": "a.csv"},
                "before_import": {"block": "x", "command": "rm -rf /"},
            }
        )
    with pytest.raises(ValidationError, match="timeout_seconds"):
        ShellJob.model_validate({"name": "j", "operation": "reindex", "timeout_seconds": 0})
