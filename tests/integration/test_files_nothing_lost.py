"""Issue 14 in tasks/files against real FTP, FTPS and SFTP servers on 127.0.0.1: listings that survive
unreadable entries, the single-file settle, claims before download, and fetch/move through the tasks.
"""

from __future__ import annotations

import hashlib
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

import tasks.files.tasks
from blocks.ftp import FtpConnection
from tasks.errors import BadFileError, SourceRejectedError
from tasks.files import (
    CLAIM_DIR,
    Downloaded,
    HeldSession,
    fetch,
    move,
    open_session,
    watch_file,
    watch_listing,
)
from tests.fixtures_servers import (
    READ_ONLY_DIR,
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


@pytest.fixture
def blocks(monkeypatch: pytest.MonkeyPatch) -> dict[str, FtpConnection]:
    """The tasks load their block by name; here the name maps straight to a block, no Prefect server."""
    saved: dict[str, FtpConnection] = {}
    monkeypatch.setattr(tasks.files.tasks, "_load_block", saved.__getitem__)
    return saved


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
            claimed = session.claim("in/a.csv")
            assert claimed is not None
            assert session.scan("in", "*").files == []
            assert session.move(claimed.claimed_path, "out") == "out/a.csv"
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


# -- 4. claims --------------------------------------------------------------------------------------


def test_claim_renames_the_file_beside_itself_and_listings_never_show_the_claim_folder(
    server: LocalServer,
) -> None:
    put(server, "in/a.csv", b"old")
    with open_session(make_block(server)) as session:
        claimed = session.claim("in/a.csv")
        assert claimed is not None
        assert (claimed.original.path, claimed.original.size) == ("in/a.csv", 3)
        assert (claimed.claimed_path, claimed.leftover) == (f"in/{CLAIM_DIR}/a.csv", False)
        for pattern in ("*", ".*", CLAIM_DIR, "*.csv"):
            assert session.scan("in", pattern) == ([], [])
        put(server, "in/a.csv", b"new")  # the partner uploads a new version under the same name
        assert session.move(claimed.claimed_path, "out") == "out/a.csv"
    assert (server.root / "out" / "a.csv").read_bytes() == b"old"
    assert (server.root / "in" / "a.csv").read_bytes() == b"new"
    assert list((server.root / "in" / CLAIM_DIR).iterdir()) == []


def test_a_claimed_file_moved_back_to_its_folder_never_overwrites_a_new_upload(server: LocalServer) -> None:
    put(server, "in/a.csv", b"old")
    with open_session(make_block(server)) as session:
        claimed = session.claim("in/a.csv")
        assert claimed is not None
        put(server, "in/a.csv", b"new")
        released = session.move(claimed.claimed_path, "in")  # a failed file, and no failed folder
    assert re.fullmatch(r"in/a\.\d{8}T\d{6}Z\.csv", released)
    assert (server.root / released).read_bytes() == b"old"
    assert (server.root / "in" / "a.csv").read_bytes() == b"new"


def test_claim_of_a_file_that_is_gone_is_none(server: LocalServer) -> None:
    with open_session(make_block(server)) as session:
        assert session.claim("in/none.csv") is None
        assert session.leftover_claims("in", "*.csv") == []


def test_a_claimed_copy_is_taken_again_and_never_overwritten(server: LocalServer) -> None:
    put(server, "in/a.csv", b"first")
    with open_session(make_block(server)) as session:
        first = session.claim("in/a.csv")
        put(server, "in/a.csv", b"second!")
        again = session.claim("in/a.csv")  # a retry, or the next run after a run that stopped
        leftovers = session.leftover_claims("in", "*.csv")
        by_claimed_path = session.claim(f"in/{CLAIM_DIR}/a.csv")
    assert first is not None
    assert again is not None
    assert (again.claimed_path, again.leftover, again.original.size) == (first.claimed_path, True, 5)
    assert [(c.original.path, c.claimed_path, c.leftover) for c in leftovers] == [
        ("in/a.csv", f"in/{CLAIM_DIR}/a.csv", True)
    ]
    assert by_claimed_path == again
    assert (server.root / "in" / CLAIM_DIR / "a.csv").read_bytes() == b"first"
    assert (server.root / "in" / "a.csv").read_bytes() == b"second!"


def test_leftover_claims_match_the_pattern(server: LocalServer) -> None:
    for name in ("a.csv", "b.txt"):
        put(server, f"in/{name}", b"x")
    with open_session(make_block(server)) as session:
        for name in ("a.csv", "b.txt"):
            session.claim(f"in/{name}")
        assert [c.original.path for c in session.leftover_claims("in", "*.csv")] == ["in/a.csv"]
        assert [c.original.path for c in session.leftover_claims("/in", "b.txt")] == ["in/b.txt"]


def test_claim_in_a_folder_without_write_rights_says_so(server: LocalServer) -> None:
    put(server, f"{READ_ONLY_DIR}/a.csv", b"a")
    with open_session(make_block(server)) as session, pytest.raises(SourceRejectedError) as caught:
        session.claim(f"{READ_ONLY_DIR}/a.csv")
    assert f"needs write rights in the folder {READ_ONLY_DIR!r} to claim files" in str(caught.value)
    assert (server.root / READ_ONLY_DIR / "a.csv").read_bytes() == b"a"


def test_claim_refuses_a_claim_folder_that_is_a_file(server: LocalServer) -> None:
    put(server, "in/a.csv", b"a")
    put(server, f"in/{CLAIM_DIR}", b"not a folder")
    with (
        open_session(make_block(server)) as session,
        pytest.raises(SourceRejectedError, match="not a folder"),
    ):
        session.claim("in/a.csv")
    assert (server.root / "in" / "a.csv").read_bytes() == b"a"


# -- 4. the fetch and move tasks --------------------------------------------------------------------


def _fetch(block: FtpConnection, path: str, local_dir: Path, *, claim: bool) -> Downloaded | None:
    with HeldSession(block) as held:
        return fetch(held, path, local_dir, claim=claim)


def _move(block: FtpConnection, path: str, dest_dir: str) -> str:
    with HeldSession(block) as held:
        return move(held, path, dest_dir)


def test_fetch_claims_downloads_and_the_move_takes_what_was_downloaded(
    tmp_path: Path, blocks: dict[str, FtpConnection]
) -> None:
    old, new = b"price;1.00\n", b"price;2.00\n"
    root = tmp_path / "ftp"
    replaced = threading.Event()

    def on_file_sent(handler: FTPHandler, file: str) -> None:
        # The partner re-uploads a.csv, same size, same second, once the job has downloaded it.
        (root / "in" / "a.csv").write_bytes(new)
        os.utime(root / "in" / "a.csv", (HOUR_AGO, HOUR_AGO))
        replaced.set()

    with serve_ftp(root, handler_attrs={"on_file_sent": on_file_sent}) as local:
        _folders(local)
        put(local, "in/a.csv", old)
        blocks["ftp"] = make_block(local)
        downloaded = _fetch(blocks["ftp"], "in/a.csv", tmp_path / "work", claim=True)
        assert downloaded is not None
        assert replaced.is_set()
        moved = _move(blocks["ftp"], downloaded.claimed_path, "out")
    assert (downloaded.remote.path, downloaded.remote.size) == ("in/a.csv", len(old))
    assert downloaded.claimed_path == f"in/{CLAIM_DIR}/a.csv"
    assert downloaded.local_path.read_bytes() == old
    assert downloaded.sha256 == hashlib.sha256(old).hexdigest()
    assert moved == "out/a.csv"
    assert (root / "out" / "a.csv").read_bytes() == old
    assert (root / "in" / "a.csv").read_bytes() == new  # untouched: the next run imports it


def test_fetch_resumes_what_an_earlier_attempt_claimed(
    server: LocalServer, tmp_path: Path, blocks: dict[str, FtpConnection]
) -> None:
    put(server, "in/a.csv", b"claimed")
    blocks["s"] = make_block(server)
    with open_session(blocks["s"]) as session:
        assert session.claim("in/a.csv") is not None  # then the attempt failed mid-download
    downloaded = _fetch(blocks["s"], "in/a.csv", tmp_path / "work", claim=True)
    assert downloaded is not None
    assert (downloaded.remote.path, downloaded.claimed_path) == ("in/a.csv", f"in/{CLAIM_DIR}/a.csv")
    assert downloaded.local_path.read_bytes() == b"claimed"


def test_fetch_without_claim_downloads_in_place(
    server: LocalServer, tmp_path: Path, blocks: dict[str, FtpConnection]
) -> None:
    put(server, "in/a.csv", b"in place")
    blocks["s"] = make_block(server)
    downloaded = _fetch(blocks["s"], "in/a.csv", tmp_path / "work", claim=False)
    assert downloaded is not None
    assert (downloaded.remote.path, downloaded.claimed_path) == ("in/a.csv", None)
    assert downloaded.local_path.read_bytes() == b"in place"
    assert (server.root / "in" / "a.csv").exists()
    assert not (server.root / "in" / CLAIM_DIR).exists()


@pytest.mark.parametrize("claim", [True, False])
def test_fetch_of_a_file_that_is_gone_is_none(
    server: LocalServer, tmp_path: Path, blocks: dict[str, FtpConnection], claim: bool
) -> None:
    blocks["s"] = make_block(server)
    assert _fetch(blocks["s"], "in/none.csv", tmp_path / "work", claim=claim) is None


def test_a_250_character_name_is_fetched_and_moved_under_its_own_name(
    server: LocalServer, tmp_path: Path, blocks: dict[str, FtpConnection]
) -> None:
    name = "a-" + "p" * 244 + ".csv"
    put(server, f"in/{name}", b"long")
    blocks["s"] = make_block(server)
    downloaded = _fetch(blocks["s"], f"in/{name}", tmp_path / "work", claim=True)
    assert downloaded is not None
    assert len(downloaded.local_path.name) <= 80
    assert downloaded.remote.path == f"in/{name}"
    assert downloaded.claimed_path is not None
    assert _move(blocks["s"], downloaded.claimed_path, "out") == f"out/{name}"
    assert (server.root / "out" / name).read_bytes() == b"long"
