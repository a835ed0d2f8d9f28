"""Shell steps end to end: saved Shell Operation blocks around a bulk CSV import over a real FTP server,
and the shell job kind, under the Prefect test server."""

from __future__ import annotations

import gzip
import time
import uuid
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from prefect_shell import ShellOperation
from pydantic import SecretStr, ValidationError
from pytest_httpserver import HTTPServer

from blocks.api import ApiConnection
from blocks.database import DatabaseConnection
from flows.import_csv_from_ftp import CsvImportJob, import_csv_from_ftp
from flows.import_json_from_api import ApiImportJob, import_json_from_api
from flows.run_shell_job import ShellJob, run_shell_job
from tasks.files import CLAIM_DIR
from tests.fixtures_servers import make_block
from tests.flows.hub import rows, run_for_report, status_of

pytestmark = pytest.mark.usefixtures("prefect_server", "shell_blocks_allowed")

HEADER = "Product External Id;Product Names;Product Classification Category Id;Variant External Id;Variant Names;Variant Price"
FILE_A = HEADER + "\nP1;Chair;C1;V1;Chair oak;10.50\nP1;;;V2;Chair black;11.00\n"
FILE_B = HEADER + "\nP2;Table;C2;V3;Table;99\n"


@pytest.fixture
def shell_blocks_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's allow-list of Shell Operation blocks: these tests' blocks (and the missing one).
    monkeypatch.setenv("DATAHUB_SHELL_BLOCKS", "sh-*, no-such-block")
    # The API download test's server is on loopback.
    monkeypatch.setenv("DATAHUB_DOWNLOAD_ALLOW_PRIVATE", "1")


def _shell_block(commands: list[str], **env: str) -> str:
    name = f"sh-{uuid.uuid4().hex[:8]}"
    ShellOperation(commands=commands, env=env).save(name, overwrite=True)
    return name


def _alive(pid: int) -> bool:
    # A zombie (killed, not yet reaped by its new parent) is not running any more.
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" not in state.split()[1]


@pytest.fixture
def ftp_root(ftp_server: Any) -> Path:
    root = Path(ftp_server.root)
    for folder in ("in", "out", "failed"):
        (root / folder).mkdir(exist_ok=True)
    return root


@pytest.fixture
def ftp_block(ftp_server: Any) -> str:
    name = f"ftp-{uuid.uuid4().hex[:8]}"
    make_block(ftp_server).save(name, overwrite=True)
    return name


def _hub_block(url: str) -> str:
    name = f"hub-{uuid.uuid4().hex[:8]}"
    DatabaseConnection(url=SecretStr(url)).save(name, overwrite=True)
    return name


@pytest.fixture
def hub(sqlite_url: str) -> tuple[str, str]:
    return _hub_block(sqlite_url), sqlite_url


def _gz_job(ftp_block: str, hub: str, **steps: Any) -> CsvImportJob:
    return CsvImportJob.model_validate(
        {
            "name": f"gz-{uuid.uuid4().hex[:8]}",
            "connection": ftp_block,
            "entity": "products",
            "source": {
                "kind": "folder",
                "inbound_dir": "in",
                "outbound_dir": "out",
                "failed_dir": "failed",
                "pattern": "*.csv.gz",
                "settle_seconds": 0,
            },
            "csv": {"delimiter": ";"},
            "target": hub,
            **steps,
        }
    )


def test_bulk_gz_files_are_unpacked_before_and_counted_after(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str], tmp_path: Path
) -> None:
    (ftp_root / "in" / "a.csv.gz").write_bytes(gzip.compress(FILE_A.encode()))
    (ftp_root / "in" / "b.csv.gz").write_bytes(gzip.compress(FILE_B.encode()))
    (ftp_root / "in" / "ignored.csv").write_text(FILE_B, encoding="utf-8")  # not `*.csv.gz`
    counts = tmp_path / "counts.txt"
    seen = tmp_path / "seen.txt"
    unpack = _shell_block(
        ['echo "$DATAHUB_REMOTE_PATH $(basename "$DATAHUB_FILE")" >> "$SEEN"', 'gunzip "$DATAHUB_FILE"'],
        SEEN=str(seen),
    )
    write_counts = _shell_block(
        [
            'printf "%s\\n" "$DATAHUB_JOB" "$DATAHUB_ENTITY" "$DATAHUB_STATUS" "$DATAHUB_FILE_COUNT" '
            '"$DATAHUB_ROWS_READ" "$DATAHUB_ROWS_INSERTED" "$DATAHUB_ROWS_UPDATED" '
            '"$DATAHUB_ROWS_UNCHANGED" "$DATAHUB_ROWS_REJECTED" "$DATAHUB_FILE_NAMES" > "$COUNTS"'
        ],
        COUNTS=str(counts),
    )
    job = _gz_job(
        ftp_block,
        hub[0],
        before_import={"block": unpack, "timeout_seconds": 30},
        after_import={"block": write_counts},
    )
    state, report = run_for_report(import_csv_from_ftp, job)

    assert state.is_completed(), state.message
    assert report.status == "SUCCESS"
    assert [(f.path, f.status, f.moved_to) for f in report.files] == [
        ("in/a.csv.gz", "SUCCESS", "out/a.csv.gz"),
        ("in/b.csv.gz", "SUCCESS", "out/b.csv.gz"),
    ]
    # The local copy is named from the remote one (stem, a hash of the path, the same `.csv.gz`).
    assert [line.split() for line in seen.read_text().splitlines()] == [
        ["in/a.csv.gz", f"a-{sha256(b'in/a.csv.gz').hexdigest()[:12]}.csv.gz"],
        ["in/b.csv.gz", f"b-{sha256(b'in/b.csv.gz').hexdigest()[:12]}.csv.gz"],
    ]
    assert rows(hub[1], 'SELECT "variantExternalId" FROM variants ORDER BY 1') == [("V1",), ("V2",), ("V3",)]
    # The ledger holds the remote names and the hash of what was downloaded (the .gz).
    assert rows(hub[1], "SELECT path, moved_to FROM datahub_ledger ORDER BY 1") == [
        ("in/a.csv.gz", "out/a.csv.gz"),
        ("in/b.csv.gz", "out/b.csv.gz"),
    ]
    assert sorted(p.name for p in (ftp_root / "out").iterdir()) == ["a.csv.gz", "b.csv.gz"]
    assert [p.name for p in (ftp_root / "in").iterdir() if p.name != CLAIM_DIR] == ["ignored.csv"]
    assert counts.read_text().splitlines() == [
        job.name,
        "products",
        "SUCCESS",
        "2",
        "3",
        str(report.total("inserted")),
        "0",
        "0",
        "0",
        "in/a.csv.gz",
        "in/b.csv.gz",
    ]
    assert report.total("inserted") > 0

    # The same .gz again: the ledger knows its content, the step does not even run, the file is moved.
    (ftp_root / "in" / "a.csv.gz").write_bytes((ftp_root / "out" / "a.csv.gz").read_bytes())
    counts.unlink()
    state, report = run_for_report(import_csv_from_ftp, job)
    assert report.status == "SKIPPED"
    assert len(seen.read_text().splitlines()) == 2
    assert not counts.exists()  # after_import runs on SUCCESS only


def test_a_failing_before_step_fails_the_file_and_leaves_it_in_inbound(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str], tmp_path: Path
) -> None:
    (ftp_root / "in" / "a.csv.gz").write_bytes(b"not gzip at all")
    counts = tmp_path / "counts.txt"
    failing = _shell_block(
        ['echo "unpacking $(basename "$DATAHUB_FILE")"', 'gunzip "$DATAHUB_FILE"'],
    )
    job = _gz_job(
        ftp_block,
        hub[0],
        before_import={"block": failing},
        after_import={
            "block": _shell_block(['echo ran > "$COUNTS"'], COUNTS=str(counts)),
            "also_on_partial": True,
        },
    )
    state, report = run_for_report(import_csv_from_ftp, job)

    assert state.is_failed()
    assert report.status == "FAILED"
    [file] = report.files
    assert file.status == "FAILED"
    assert f"before_import step {failing!r}" in file.message
    assert "(command: echo … (2 line(s), sha256 " in file.message  # never the text: it may hold a credential
    assert "exited with code 1" in file.message
    assert "not in gzip format" in file.message  # gunzip's stderr
    assert "exited with code 1" in (state.message or "")
    assert file.moved_to is None
    assert [p.name for p in (ftp_root / "in").iterdir() if p.name != CLAIM_DIR] == ["a.csv.gz"]
    assert list((ftp_root / "failed").iterdir()) == []
    assert rows(hub[1], "SELECT count(*) FROM datahub_ledger") == [(0,)]
    assert rows(hub[1], "SELECT job, status FROM datahub_runs") == [(job.name, "FAILED")]
    assert not counts.exists()


def test_a_failing_after_step_fails_the_run_after_the_load(
    ftp_root: Path, ftp_block: str, hub: tuple[str, str]
) -> None:
    (ftp_root / "in" / "a.csv.gz").write_bytes(gzip.compress(FILE_A.encode()))
    reindex = _shell_block(["echo indexing", "echo 'index server said no' >&2", "exit 7"])
    job = _gz_job(
        ftp_block,
        hub[0],
        before_import={"block": _shell_block(['gunzip -c "$DATAHUB_FILE" > "$DATAHUB_OUTPUT"'])},
        after_import={"block": reindex},
    )
    state, report = run_for_report(import_csv_from_ftp, job)

    assert state.is_failed()
    assert report.files[0].status == "SUCCESS"  # loaded and moved before the step ran
    assert report.files[0].moved_to == "out/a.csv.gz"
    assert f"after_import step {reindex!r}" in report.error
    assert "exited with code 7" in report.error
    assert "index server said no" in report.error
    assert "exited with code 7" in report.error
    assert "index server said no" in (state.message or "")
    assert rows(hub[1], "SELECT job, status FROM datahub_runs") == [(job.name, "FAILED")]


def test_shell_job_runs_its_block(tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    block = _shell_block(
        ['echo "$DATAHUB_JOB $REINDEX_SCOPE" > "$OUT"', "echo reindexed 42 products"],
        OUT=str(out),
        REINDEX_SCOPE="all",
    )
    state = run_shell_job(
        ShellJob(name="nightly-reindex", operation=block, timeout_seconds=30), return_state=True
    )

    assert state.is_completed(), state.message
    assert state.result() == ["reindexed 42 products"]
    assert out.read_text() == "nightly-reindex all\n"


def test_shell_job_failure_names_command_exit_code_and_stderr() -> None:
    block = _shell_block(["echo step one", "echo 'disk full' >&2", "echo 'giving up' >&2", "exit 3"])
    state = run_shell_job(ShellJob(name="reindex", operation=block), return_state=True)

    assert state.is_failed()
    message = state.message or ""
    assert f"shell job step {block!r}" in message
    assert "command: echo … (4 line(s), sha256 " in message  # the text itself may hold a credential
    assert "giving up' >&2" not in message
    assert "exited with code 3" in message
    assert message.endswith("disk full\n  giving up")


def test_shell_job_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    block = _shell_block(
        ['echo $$ > "$PIDS/shell"', 'sleep 120 & echo $! > "$PIDS/child"', "echo working >&2", "sleep 120"],
        PIDS=str(tmp_path),
    )
    started = time.monotonic()
    state = run_shell_job(ShellJob(name="slow", operation=block, timeout_seconds=1.5), return_state=True)
    took = time.monotonic() - started

    assert state.is_failed()
    assert "ran past its timeout of 1.5 s and was killed" in (state.message or "")
    assert "working" in (state.message or "")
    assert took < 15
    pids = [int((tmp_path / name).read_text()) for name in ("shell", "child")]
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if _alive(pid)] == [], "orphans left running"


def test_a_missing_block_is_named() -> None:
    state = run_shell_job(ShellJob(name="x", operation="no-such-block"), return_state=True)
    assert state.is_failed()
    assert "no Shell Operation block named 'no-such-block'" in (state.message or "")


def test_background_processes_of_a_finished_step_do_not_outlive_it(tmp_path: Path) -> None:
    # Detached from the step's output (else the step would wait for it, up to its timeout).
    block = _shell_block(
        ['sleep 120 >/dev/null 2>&1 & echo $! > "$PIDS/child"', "echo done"], PIDS=str(tmp_path)
    )
    state = run_shell_job(ShellJob(name="bg", operation=block), return_state=True)

    assert state.is_completed(), state.message
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_api_download_is_unpacked_and_after_step_runs_on_partial(
    httpserver: HTTPServer, sqlite_url: str, tmp_path: Path
) -> None:
    api = f"api-{uuid.uuid4().hex[:8]}"
    ApiConnection(base_url=httpserver.url_for("/"), auth="none").save(api, overwrite=True)
    bad_price = FILE_A + "P9;Lamp;C9;V9;Lamp;twelve\n"
    httpserver.expect_request("/export").respond_with_json({"urlFile": httpserver.url_for("/files/p.csv.gz")})
    httpserver.expect_request("/files/p.csv.gz").respond_with_data(gzip.compress(bad_price.encode()))
    facts = tmp_path / "facts.txt"
    job = ApiImportJob.model_validate(
        {
            "name": f"api-gz-{uuid.uuid4().hex[:8]}",
            "connection": api,
            "entity": "products",
            "calls": [
                {"name": "export", "path": "export"},
                {
                    "name": "download",
                    "pattern": {
                        "kind": "download",
                        "url_from": "$.urlFile",
                        "format": {"kind": "csv", "csv": {"delimiter": ";"}},
                    },
                },
            ],
            "target": _hub_block(sqlite_url),
            "reject_threshold_percent": 50,
            # The download is saved under a `.csv` name: gunzip it to the output path, not in place.
            "before_import": {"block": _shell_block(['gunzip -c "$DATAHUB_FILE" > "$DATAHUB_OUTPUT"'])},
            "after_import": {
                "block": _shell_block(
                    [
                        'echo "$DATAHUB_STATUS $DATAHUB_ROWS_INSERTED $DATAHUB_ROWS_REJECTED $DATAHUB_FILE_NAMES" > "$F"'
                    ],
                    F=str(facts),
                ),
                "also_on_partial": True,
            },
        }
    )
    state, report = run_for_report(import_json_from_api, job)

    assert status_of(state) == "PARTIAL"
    assert report.status == "PARTIAL", report.error or report.files
    assert rows(sqlite_url, 'SELECT "variantExternalId" FROM variants ORDER BY 1') == [("V1",), ("V2",)]
    url = httpserver.url_for("/files/p.csv.gz")
    assert facts.read_text() == f"PARTIAL {report.total('inserted')} 1 {url}\n"


def test_api_job_refuses_a_before_step_without_a_csv_download() -> None:
    with pytest.raises(ValidationError, match="before_import"):
        ApiImportJob.model_validate(
            {
                "name": "no-download",
                "connection": "api",
                "entity": "products",
                "calls": [{"name": "list", "path": "products"}],
                "mapping": {"$.id": "productExternalId"},
                "before_import": {"block": "unpack"},
            }
        )
