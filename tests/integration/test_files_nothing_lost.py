"""Issue 14 in tasks/files against real FTP, FTPS and SFTP servers on 127.0.0.1: listings that survive
unreadable entries, and the single-file settle.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler

from tasks.errors import BadFileError
from tasks.files import open_session, watch_file, watch_listing
from tests.fixtures_servers import (
    LocalFtp,
    LocalSftp,
    TlsFiles,
    make_block,
    serve_ftp,
    serve_sftp,
)

pytest_plugins = ["tests.fixtures_servers"]

LocalServer = LocalFtp | LocalSftp
HOUR_AGO = time.time() - 3600
BAD_NAME = os.fsdecode(b"b-poison-\xff\xfe.csv")
LENIENT = {"unicode_errors": "surrogateescape"}  # pyftpdlib sends such names as the bytes they are


@pytest.fixture(params=["ftp", "ftps", "sftp"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path, tls_files: TlsFiles, sftp_host_key: asyncssh.SSHKey
) -> Iterator[LocalServer]:
    """Each server in turn, with `in` and `out` folders; the FTP ones list names that are not UTF-8."""
    root = tmp_path / request.param
    local: LocalServer
    if request.param == "sftp":
        with serve_sftp(root, sftp_host_key) as local:
            yield _folders(local)
    else:
        tls = tls_files if request.param == "ftps" else None
        with serve_ftp(root, tls=tls, handler_attrs=LENIENT) as local:
            yield _folders(local)


def _folders(local: LocalServer) -> LocalServer:
    (local.root / "in").mkdir()
    (local.root / "out").mkdir()
    return local


def put(server: LocalServer, path: str, content: bytes, *, mtime: float | None = HOUR_AGO) -> Path:
    target = server.root / path
    target.write_bytes(content)
    if mtime is not None:
        os.utime(target, (mtime, mtime))
    return target


# -- 1. listings survive entries they cannot read ---------------------------------------------------


def test_a_name_that_is_not_utf8_is_skipped_and_reported(server: LocalServer) -> None:
    put(server, "in/a.csv", b"a")
    put(server, f"in/{BAD_NAME}", b"bad")
    put(server, "in/c.csv", b"c")
    with open_session(make_block(server)) as session:
        listing = watch_listing(session, "in", "*.csv", settle_seconds=0, min_age_seconds=0)
        assert session.stat("in/c.csv") is not None  # the connection is still fine afterwards
    assert [file.path for file in listing.ready] == ["in/a.csv", "in/c.csv"]
    assert len(listing.unreadable) == 1
    assert "in/b-poison-\\xff\\xfe.csv" in listing.unreadable[0]
    assert "stays on the server" in listing.unreadable[0]
    assert (server.root / "in" / BAD_NAME).exists()


def test_a_name_that_is_not_utf8_out_of_the_pattern_is_not_reported(server: LocalServer) -> None:
    put(server, "in/a.csv", b"a")
    put(server, f"in/{BAD_NAME}", b"bad")
    with open_session(make_block(server)) as session:
        listing = watch_listing(session, "in", "*.txt", settle_seconds=0, min_age_seconds=0)
    assert (listing.ready, listing.unreadable) == ([], [])


def test_nlst_fallback_skips_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    with serve_ftp(tmp_path / "old-ftp", mlsd=False, handler_attrs=LENIENT) as old:
        _folders(old)
        put(old, "in/a.csv", b"a")
        put(old, f"in/{BAD_NAME}", b"bad")
        with open_session(make_block(old)) as session:
            scan = session.scan("in", "*.csv")
            assert [file.path for file in scan.files] == ["in/a.csv"]
            assert session.move("in/a.csv", "out") == "out/a.csv"
    assert len(scan.unreadable) == 1
    assert "not valid UTF-8" in scan.unreadable[0]


class _BadSizeFS(AbstractedFS):  # type: ignore[misc]
    """Reports a size fact that is not a number for files whose name holds `badsize`."""

    def format_mlsx(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        for line in super().format_mlsx(*args, **kwargs):
            yield re.sub(rb"size=\d+;", b"size=12k;", line) if b"badsize" in line else line


def _bad_size_reply(handler: FTPHandler, path: str) -> None:
    # An old server without MLSD whose SIZE answer for one file is not a number.
    if "badsize" in path:
        handler.respond("213 12k")
    else:
        FTPHandler.ftp_SIZE(handler, path)


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param({"abstracted_fs": _BadSizeFS}, id="mlsd-size-fact"),
        pytest.param({"ftp_SIZE": _bad_size_reply, "mlsd": False}, id="size-answer"),
    ],
)
def test_a_size_that_is_not_a_number_is_skipped_and_reported(tmp_path: Path, attrs: dict[str, Any]) -> None:
    handler_attrs = {key: value for key, value in attrs.items() if key != "mlsd"}
    with serve_ftp(tmp_path / "ftp", mlsd=attrs.get("mlsd", True), handler_attrs=handler_attrs) as local:
        _folders(local)
        put(local, "in/a-badsize.csv", b"12345")
        put(local, "in/b.csv", b"b")
        with open_session(make_block(local)) as session:
            listing = watch_listing(session, "in", "*.csv", settle_seconds=0, min_age_seconds=0)
            single = watch_file(session, "in/a-badsize.csv", settle_seconds=0, min_age_seconds=0)
            with pytest.raises(BadFileError, match="'12k'"):
                session.stat("in/a-badsize.csv")
            assert session.stat("in/b.csv") is not None
    assert [file.path for file in listing.ready] == ["in/b.csv"]
    assert len(listing.unreadable) == 1
    assert "in/a-badsize.csv" in listing.unreadable[0]
    assert "'12k', which is not a number of bytes" in listing.unreadable[0]
    assert (single.ready, single.growing, single.unreadable) == ([], [], listing.unreadable)


# -- 3. a single file, looked at twice --------------------------------------------------------------


def test_watch_file_of_an_absent_file_is_empty(server: LocalServer) -> None:
    with open_session(make_block(server)) as session:
        listing = watch_file(session, "in/none.csv", settle_seconds=0.1, min_age_seconds=0)
    assert (listing.ready, listing.growing, listing.unreadable) == ([], [], [])


def test_watch_file_of_a_settled_file_is_ready(server: LocalServer) -> None:
    put(server, "in/a.csv", b"done")
    with open_session(make_block(server)) as session:
        listing = watch_file(session, "/in/a.csv", settle_seconds=0.1, min_age_seconds=60)
    assert [(file.path, file.size) for file in listing.ready] == [("in/a.csv", 4)]
    assert listing.growing == []


def test_watch_file_of_a_file_still_written_is_growing(server: LocalServer) -> None:
    growing = put(server, "in/a.csv", b"part")

    def append_later() -> None:
        time.sleep(0.2)
        with growing.open("ab") as out:
            out.write(b"-more")

    writer = threading.Thread(target=append_later)
    writer.start()
    with open_session(make_block(server)) as session:
        listing = watch_file(session, "in/a.csv", settle_seconds=0.6, min_age_seconds=0)
    writer.join()
    assert listing.ready == []
    assert [(file.path, file.size) for file in listing.growing] == [("in/a.csv", 9)]


def test_watch_file_holds_back_a_young_file(server: LocalServer) -> None:
    put(server, "in/a.csv", b"new", mtime=None)
    with open_session(make_block(server)) as session:
        listing = watch_file(session, "in/a.csv", settle_seconds=0, min_age_seconds=600)
    assert [file.path for file in listing.growing] == ["in/a.csv"]
