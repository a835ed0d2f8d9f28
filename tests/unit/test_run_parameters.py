"""The pure parts of issue 15's allow-lists: the export root, internal addresses, allowed shell blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.api.hosts import _internal
from tasks.api.spool import export_folder
from tasks.errors import SourceRejectedError
from tasks.shell import allowed_shell_blocks


def test_a_relative_export_is_a_folder_under_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAHUB_EXPORT_ROOT", f"{tmp_path}/")
    assert export_folder("shop/pages") == f"{tmp_path}/shop/pages"
    assert export_folder(str(tmp_path / "x")) == str(tmp_path / "x")
    assert export_folder("") == str(tmp_path)


@pytest.mark.parametrize("destination", ["../x", "a/../../x", "/etc", "ftp://h/x", "s3://b/x"])
def test_an_export_leaving_a_local_root_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, destination: str
) -> None:
    monkeypatch.setenv("DATAHUB_EXPORT_ROOT", str(tmp_path))
    with pytest.raises(SourceRejectedError, match="DATAHUB_EXPORT_ROOT"):
        export_folder(destination)


def test_a_link_under_the_root_pointing_out_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "out").symlink_to(tmp_path)
    monkeypatch.setenv("DATAHUB_EXPORT_ROOT", str(tmp_path / "root"))
    with pytest.raises(SourceRejectedError, match="not under"):
        export_folder("out/x")


def test_a_url_root_allows_only_what_lies_under_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAHUB_EXPORT_ROOT", "s3://bucket/exports")
    assert export_folder("shop") == "s3://bucket/exports/shop"
    assert export_folder("s3://bucket/exports/a") == "s3://bucket/exports/a"
    for other in ("s3://bucket/exportsX", "s3://other/exports", "gcs://bucket/exports", "/tmp/x"):
        with pytest.raises(SourceRejectedError):
            export_folder(other)


def test_no_root_refuses_every_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAHUB_EXPORT_ROOT", raising=False)
    with pytest.raises(SourceRejectedError, match="DATAHUB_EXPORT_ROOT` is not set"):
        export_folder("x")


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("169.254.169.254", True),
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("fe80::1%eth0", True),
        ("0.0.0.0", True),
        ("93.184.216.34", False),
        ("2606:4700::1111", False),
    ],
)
def test_internal_addresses(address: str, internal: bool) -> None:
    assert _internal(address) is internal


def test_shell_blocks_default_to_the_shipped_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAHUB_SHELL_BLOCKS", raising=False)
    assert allowed_shell_blocks() == ["shop-reindex"]
    monkeypatch.setenv("DATAHUB_SHELL_BLOCKS", " gunzip-*, shop-reindex ,")
    assert allowed_shell_blocks() == ["gunzip-*", "shop-reindex"]
    monkeypatch.setenv("DATAHUB_SHELL_BLOCKS", "")
    assert allowed_shell_blocks() == []
