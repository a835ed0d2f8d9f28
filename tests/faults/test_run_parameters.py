"""Issue 15: what a run parameter may reach. Anyone who can start a run edits its parameters (and, on a
self-hosted server, its blocks), so the allow-lists live in the worker's environment: these tests set
them explicitly, against real local servers (HTTP on loopback, the Prefect test server)."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect_shell import ShellOperation
from pydantic import SecretStr
from pytest_httpserver import HTTPServer

from blocks.api import ApiConnection
from flows.import_json_from_api import ApiImportJob, import_json_from_api
from flows.run_shell_job import ShellJob, run_shell_job
from tasks.run.report import ImportReport, render_markdown
from tests.faults.harness import save_hub
from tests.flows.hub import run_for_report, status_of

pytestmark = pytest.mark.usefixtures("prefect_server")

HEADER = "Product External Id;Product Names;Product Classification Category Id;Variant External Id;Variant Names;Variant Price"
PRODUCTS_CSV = HEADER + "\nP1;Chair;C1;V1;Chair oak;10.50\n"
SECRET = "TOPSECRET-metadata-4711"
FAST_HTTP = {"transport_initial_wait_seconds": 0.01, "timeout_seconds": 5, "call_deadline_seconds": 10}


@pytest.fixture
def other_host() -> Iterator[HTTPServer]:
    """A second server on another host (127.0.0.2, while `httpserver` is `localhost`)."""
    server = HTTPServer(host="127.0.0.2", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def _everything(report: ImportReport) -> str:
    return json.dumps(report.model_dump(mode="json")) + render_markdown(report)


def _api_block(server: HTTPServer) -> str:
    name = f"api-{uuid.uuid4().hex[:8]}"
    ApiConnection(base_url=server.url_for("/"), auth="api_key", api_key=SecretStr("k-15")).save(name)
    return name


def _download_job(connection: str, hub_url: str, **overrides: Any) -> ApiImportJob:
    calls = [
        {"name": "export", "path": "export"},
        {
            "name": "download",
            "pattern": {
                "kind": "download",
                "url_from": "$.urlFile",
                "format": {"kind": "csv", "csv": {"delimiter": ";"}},
            },
        },
    ]
    job = {
        "name": f"p15-{uuid.uuid4().hex[:8]}",
        "connection": connection,
        "entity": "products",
        "calls": calls,
        "target": save_hub(hub_url),
        "http": FAST_HTTP,
    }
    return ApiImportJob.model_validate(job | overrides)


# --- finding 4: export_pages_to -----------------------------------------------------------------------


def _paging_job(server: HTTPServer, hub_url: str, export_to: str) -> ApiImportJob:
    body = {"paging": {"totalPages": 1}, "elements": [{"id": "P1", "name": "Chair", "category": "C1"}]}
    server.expect_request("/products").respond_with_json(body)
    paging = {
        "kind": "paging",
        "page_number_param": "page",
        "page_size_param": "size",
        "page_size": 2,
        "first_page": 1,
        "total_pages_path": "$.paging.totalPages",
        "content_path": "$.elements",
        "export_pages_to": export_to,
    }
    return ApiImportJob.model_validate(
        {
            "name": f"p15-{uuid.uuid4().hex[:8]}",
            "connection": _api_block(server),
            "entity": "products",
            "calls": [{"name": "products", "path": "products", "pattern": paging}],
            "mapping": {
                "$.id": "productExternalId",
                "$.name": "productNames",
                "$.category": "productClassificationCategoryId",
            },
            "target": save_hub(hub_url),
            "http": FAST_HTTP,
        }
    )


@pytest.mark.parametrize("where", ["unset", "outside", "dotdot", "url"])
def test_export_pages_to_is_refused_outside_the_worker_export_root(
    httpserver: HTTPServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    if where == "unset":
        monkeypatch.delenv("DATAHUB_EXPORT_ROOT", raising=False)
        target = str(root)
    else:
        monkeypatch.setenv("DATAHUB_EXPORT_ROOT", str(root))
        target = {
            "outside": str(elsewhere),
            "dotdot": str(root / ".." / "elsewhere"),
            "url": "ftp://127.0.0.1:1/exports",
        }[where]
    state, report = run_for_report(import_json_from_api, _paging_job(httpserver, sqlite_url, target))

    assert state.is_failed()
    assert "DATAHUB_EXPORT_ROOT" in (report.error or ""), report.error
    assert not elsewhere.exists()
    assert list(root.iterdir()) == []


def test_export_pages_to_under_the_root_is_kept(
    httpserver: HTTPServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAHUB_EXPORT_ROOT", str(tmp_path))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # a relative folder is under the root, never the worker's folder
    state, report = run_for_report(import_json_from_api, _paging_job(httpserver, sqlite_url, "pages/shop"))

    assert status_of(state) == "SUCCESS", report.error
    [exported] = list((tmp_path / "pages" / "shop").glob("*.ndjson.gz"))
    with gzip.open(exported, "rt", encoding="utf-8") as lines:
        assert len(lines.readlines()) == 1


# --- finding 5: download URLs from a response ---------------------------------------------------------


@pytest.mark.parametrize("how", ["direct", "redirect"])
def test_a_download_url_on_a_host_not_allowed_is_never_fetched(
    httpserver: HTTPServer,
    other_host: HTTPServer,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    monkeypatch.setenv("DATAHUB_DOWNLOAD_ALLOW_PRIVATE", "1")  # loopback servers: allowed explicitly
    monkeypatch.delenv("DATAHUB_DOWNLOAD_HOSTS", raising=False)
    foreign = other_host.url_for("/latest/meta-data")
    other_host.expect_request("/latest/meta-data").respond_with_data(SECRET)
    if how == "redirect":
        httpserver.expect_request("/files/p.csv").respond_with_data("", 302, {"Location": foreign})
        url = httpserver.url_for("/files/p.csv")
    else:
        url = foreign
    httpserver.expect_request("/export").respond_with_json({"urlFile": url})
    state, report = run_for_report(import_json_from_api, _download_job(_api_block(httpserver), sqlite_url))

    assert state.is_failed()
    assert other_host.log == []
    assert "DATAHUB_DOWNLOAD_HOSTS" in (report.error or ""), report.error
    assert SECRET not in _everything(report)


def test_a_private_address_is_refused_unless_the_worker_allows_it(
    httpserver: HTTPServer, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATAHUB_DOWNLOAD_ALLOW_PRIVATE", raising=False)
    httpserver.expect_request("/export").respond_with_json({"urlFile": httpserver.url_for("/files/p.csv")})
    httpserver.expect_request("/files/p.csv").respond_with_data(PRODUCTS_CSV)
    job = _download_job(_api_block(httpserver), sqlite_url)
    state, report = run_for_report(import_json_from_api, job)

    assert state.is_failed()
    assert "DATAHUB_DOWNLOAD_ALLOW_PRIVATE" in (report.error or ""), report.error
    assert [r.path for r, _ in httpserver.log] == ["/export"]

    monkeypatch.setenv("DATAHUB_DOWNLOAD_ALLOW_PRIVATE", "1")
    state, report = run_for_report(import_json_from_api, job)
    assert status_of(state) == "SUCCESS", report.error


def test_an_allowed_other_host_body_is_never_quoted(
    httpserver: HTTPServer, other_host: HTTPServer, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAHUB_DOWNLOAD_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("DATAHUB_DOWNLOAD_HOSTS", f"127.0.0.2:{other_host.port}")
    other_host.expect_request("/f.csv").respond_with_data(SECRET, 404)
    httpserver.expect_request("/export").respond_with_json({"urlFile": other_host.url_for("/f.csv")})
    state, report = run_for_report(import_json_from_api, _download_job(_api_block(httpserver), sqlite_url))

    assert state.is_failed()
    assert "404" in (report.error or ""), report.error
    assert SECRET not in _everything(report)


# --- finding 6: what a before_import step leaves --------------------------------------------------------


def _shell_block(commands: list[str], **env: str) -> str:
    name = f"sh-{uuid.uuid4().hex[:8]}"
    ShellOperation(commands=commands, env=env).save(name, overwrite=True)
    return name


@pytest.mark.parametrize(
    "command",
    [
        'ln -s "$SECRET_FILE" "$DATAHUB_OUTPUT"',
        'rm "$DATAHUB_FILE" && ln -s "$SECRET_FILE" "$DATAHUB_WORK_DIR/products.csv"',  # unzip of a hostile zip
        'rm "$DATAHUB_FILE" && ln -s "$SECRET_FILE" "$DATAHUB_FILE"',
        'ln "$SECRET_FILE" "$DATAHUB_OUTPUT"',  # a hard link: a second name for the same file
    ],
    ids=["output", "new-file", "in-place", "hard-link"],
)
def test_a_before_step_link_to_another_file_is_refused(
    httpserver: HTTPServer, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("DATAHUB_DOWNLOAD_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("DATAHUB_SHELL_BLOCKS", "sh-*")
    secret_file = tmp_path / "local.csv"
    secret_file.write_text(HEADER + f"\nP9;{SECRET};C9;V9;x;1\n")  # a local file the run must not import
    httpserver.expect_request("/export").respond_with_json({"urlFile": httpserver.url_for("/files/p.csv")})
    httpserver.expect_request("/files/p.csv").respond_with_data(PRODUCTS_CSV)
    step = {"block": _shell_block([command], SECRET_FILE=str(secret_file))}
    job = _download_job(_api_block(httpserver), sqlite_url, before_import=step)
    _state, report = run_for_report(import_json_from_api, job)

    assert report.status == "FAILED"
    assert report.total("rows_read") == 0
    assert "link" in (report.error or ""), report.error
    assert SECRET not in _everything(report)
    assert SECRET in secret_file.read_text()  # the linked file is left as it was


# --- finding 8: which Shell Operation blocks a run may name ---------------------------------------------


def test_a_shell_block_not_allowed_by_the_worker_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAHUB_SHELL_BLOCKS", "nightly-*")
    ran = tmp_path / "ran"
    block = _shell_block([f"touch {ran}"])
    state = run_shell_job(ShellJob(name="p15-shell", operation=block), return_state=True)

    assert state.is_failed()
    assert "DATAHUB_SHELL_BLOCKS" in str(state.message)
    assert block in str(state.message)
    assert not ran.exists()


def test_a_step_command_is_never_shown_whole(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DATAHUB_SHELL_BLOCKS", "sh-*")
    block = _shell_block([f"curl -s -H 'Authorization: {SECRET}' http://127.0.0.1:1/ || exit 3"])
    with caplog.at_level("DEBUG"):
        state = run_shell_job(ShellJob(name="p15-shell-cmd", operation=block), return_state=True)

    assert state.is_failed()
    assert "exited with code 3" in str(state.message)
    assert SECRET not in str(state.message)
    assert SECRET not in "\n".join(
        r.getMessage() for r in caplog.records if not r.getMessage().startswith("PID")
    )
