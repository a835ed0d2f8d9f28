"""Pure rules of the file transport: safe remote paths, free names, the settle check, error messages."""

from __future__ import annotations

import errno
import ftplib
import re
import socket
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import paramiko
import pytest

from blocks.ftp import FtpConnection
from tasks.errors import BadFileError, SourceRejectedError, SourceUnavailableError
from tasks.files.failures import translate_error
from tasks.files.listing import RemoteFile, classify_listing
from tasks.files.paramiko_backend import ssh_fingerprint
from tasks.files.paths import (
    candidate_names,
    local_file_name,
    relative_to_root,
    resolve_root,
    safe_remote_path,
)

NOW = datetime(2026, 11, 23, 10, 15, 0, tzinfo=UTC)
PASSWORD = "pw-that-must-stay-secret"


@pytest.mark.parametrize(
    ("folder", "name", "expected"),
    [
        pytest.param("inbound", "offers.csv", "inbound/offers.csv", id="plain"),
        pytest.param("", "offers.csv", "offers.csv", id="root-folder"),
        pytest.param("in/bound", "a b.csv", "in/bound/a b.csv", id="space-and-subfolder"),
        pytest.param("inbound", "x/../offers.csv", "inbound/offers.csv", id="dotdot-that-stays-inside"),
        pytest.param("inbound", "..offers.csv", "inbound/..offers.csv", id="leading-dots-are-a-name"),
        pytest.param("inbound", "prix-été.csv", "inbound/prix-été.csv", id="unicode"),
    ],
)
def test_safe_remote_path_joins_names_inside_the_folder(folder: str, name: str, expected: str) -> None:
    assert safe_remote_path(folder, name) == expected


@pytest.mark.parametrize(
    ("folder", "name", "reason"),
    [
        pytest.param("inbound", "", "empty", id="empty"),
        pytest.param("inbound", ".", "leads out of the folder", id="dot"),
        pytest.param("inbound", "..", "leads out of the folder", id="dotdot"),
        pytest.param("inbound", "../outbound/x.csv", "leads out of the folder", id="escape-sibling"),
        pytest.param("inbound", "a/../../x.csv", "leads out of the folder", id="escape-nested"),
        pytest.param("", "../x.csv", "leads out of the folder", id="escape-root"),
        pytest.param("inbound", "/etc/passwd", "absolute", id="absolute"),
        pytest.param("inbound", "x\x00.csv", "control character", id="nul"),
        pytest.param("inbound", "x\r\nDELE y.csv", "control character", id="crlf-injection"),
        pytest.param("inbound", "x\x7f.csv", "control character", id="del"),
        pytest.param("inbound", "x\x85.csv", "control character", id="c1-control"),
    ],
)
def test_safe_remote_path_refuses_unsafe_names(folder: str, name: str, reason: str) -> None:
    with pytest.raises(BadFileError) as caught:
        safe_remote_path(folder, name)
    assert reason in str(caught.value)
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize(
    ("root", "path", "expected"),
    [
        pytest.param("/", "inbound", "inbound", id="relative"),
        pytest.param("/", "inbound/", "inbound", id="trailing-slash"),
        pytest.param("/", "./inbound//a.csv", "inbound/a.csv", id="normalized"),
        pytest.param("/", "", "", id="root-itself"),
        pytest.param("/", "/inbound/a.csv", "inbound/a.csv", id="absolute-under-slash"),
        pytest.param("/data", "/data/inbound", "inbound", id="absolute-inside-root"),
        pytest.param("/data", "/data", "", id="absolute-root"),
        pytest.param("/data", "in/../out", "out", id="dotdot-inside"),
    ],
)
def test_relative_to_root_normalizes(root: str, path: str, expected: str) -> None:
    assert relative_to_root(root, path) == expected


@pytest.mark.parametrize(
    ("root", "path", "message"),
    [
        pytest.param("/data", "../etc", "leads out of the connection's root folder", id="dotdot"),
        pytest.param(
            "/data", "in/../../etc", "leads out of the connection's root folder", id="nested-dotdot"
        ),
        pytest.param(
            "/data", "/etc/passwd", "lies outside the connection's root folder", id="absolute-outside"
        ),
        pytest.param("/data", "/database/x", "lies outside the connection's root folder", id="prefix-trick"),
        pytest.param(
            "/data", "/data/../etc", "lies outside the connection's root folder", id="absolute-dotdot"
        ),
        pytest.param("/", "in\x00bound", "control character", id="nul"),
    ],
)
def test_relative_to_root_refuses_paths_outside(root: str, path: str, message: str) -> None:
    with pytest.raises(SourceRejectedError) as caught:
        relative_to_root(root, path)
    assert message in str(caught.value)
    assert repr(path) in str(caught.value)


@pytest.mark.parametrize(
    ("login_dir", "root_dir", "expected"),
    [
        ("/", "", "/"),
        ("/home/u", "", "/home/u"),
        ("/home/u", "data", "/home/u/data"),
        ("/home/u", "/srv/x/", "/srv/x"),
    ],
)
def test_resolve_root(login_dir: str, root_dir: str, expected: str) -> None:
    assert resolve_root(login_dir, root_dir) == expected


@pytest.mark.parametrize(
    ("path", "stem", "extension"),
    [("inbound/offers.csv", "offers", ".csv"), ("a b.csv", "a_b", ".csv"), ("x/y/", "y", "")],
)
def test_local_file_name_keeps_the_stem_and_extension_around_a_hash(
    path: str, stem: str, extension: str
) -> None:
    assert re.fullmatch(rf"{stem}-[0-9a-f]{{12}}{re.escape(extension)}", local_file_name(path))


@pytest.mark.parametrize("path", ["", ".", "inbound/..", "/"])
def test_local_file_name_refuses_paths_that_name_no_file(path: str) -> None:
    with pytest.raises(BadFileError, match="safe local file name"):
        local_file_name(path)


def test_candidate_names_add_a_utc_timestamp_before_the_extension() -> None:
    names = list(candidate_names("offers.csv", NOW, limit=4))
    assert names == [
        "offers.csv",
        "offers.20261123T101500Z.csv",
        "offers.20261123T101500Z-2.csv",
        "offers.20261123T101500Z-3.csv",
    ]


@pytest.mark.parametrize(
    ("name", "second"),
    [
        ("archive.tar.gz", "archive.tar.20261123T101500Z.gz"),
        ("README", "README.20261123T101500Z"),
        (".hidden", ".hidden.20261123T101500Z"),
    ],
)
def test_candidate_names_for_other_shapes(name: str, second: str) -> None:
    assert list(candidate_names(name, NOW, limit=2)) == [name, second]


def test_candidate_names_use_utc_whatever_the_clock_zone() -> None:
    paris = NOW.astimezone(ZoneInfo("Europe/Paris"))
    assert list(candidate_names("a.csv", paris, limit=2))[1] == "a.20261123T101500Z.csv"


def _file(path: str, size: int, age_seconds: float) -> RemoteFile:
    return RemoteFile(path, size, NOW - timedelta(seconds=age_seconds))


def test_classify_listing_splits_ready_and_growing() -> None:
    stable, grown, young, new = (
        _file("in/a.csv", 10, 600),
        _file("in/b.csv", 10, 600),
        _file("in/c.csv", 10, 5),
        _file("in/d.csv", 10, 600),
    )
    first = [stable, grown, young]
    second = [stable, RemoteFile("in/b.csv", 20, grown.modified), young, new]
    listing = classify_listing(first, second, now=NOW, min_age_seconds=60)
    assert listing.ready == [stable]
    assert [file.path for file in listing.growing] == ["in/b.csv", "in/c.csv", "in/d.csv"]


def test_classify_listing_counts_a_new_modification_time_as_growing() -> None:
    before = _file("in/a.csv", 10, 600)
    after = RemoteFile("in/a.csv", 10, NOW - timedelta(seconds=300))
    assert classify_listing([before], [after], now=NOW, min_age_seconds=0).growing == [after]


def test_classify_listing_single_look_without_times_is_ready() -> None:
    file = RemoteFile("in/a.csv", 10, None)
    assert classify_listing([file], [file], now=NOW, min_age_seconds=3600).ready == [file]


def test_ssh_fingerprint_has_the_ssh_keygen_form() -> None:
    assert ssh_fingerprint(b"") == "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"


# --- Error translation: the messages are part of the contract --------------------------------------


def _block(protocol: str = "ftp") -> FtpConnection:
    return FtpConnection(protocol=protocol, host="ftp.example.test", username="importer", password=PASSWORD)


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        pytest.param(
            socket.gaierror(-2, "Name or service not known"),
            SourceUnavailableError,
            ["Cannot resolve host 'ftp.example.test'"],
            id="dns",
        ),
        pytest.param(
            ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
            SourceUnavailableError,
            ["ftp.example.test:21", "refused", "check that the server is up and the port is right"],
            id="refused",
        ),
        pytest.param(
            TimeoutError("timed out"),
            SourceUnavailableError,
            ["ftp.example.test:21", "did not answer within 30 s"],
            id="timeout",
        ),
        pytest.param(EOFError(), SourceUnavailableError, ["failed or dropped"], id="eof"),
        pytest.param(
            ftplib.error_perm("530 Login incorrect."),
            SourceRejectedError,
            ["FTP login to ftp.example.test:21 as 'importer' failed", "check the username and password"],
            id="ftp-login",
        ),
        pytest.param(
            ftplib.error_temp("421 Too many connections"),
            SourceUnavailableError,
            ["retry later"],
            id="ftp-421",
        ),
        pytest.param(
            ftplib.error_proto("SSH-2.0-OpenSSH_9.6"),
            SourceRejectedError,
            ["check the protocol and port"],
            id="not-ftp",
        ),
    ],
)
def test_translate_error_says_what_failed(
    exc: BaseException, kind: type[Exception], words: list[str]
) -> None:
    error = translate_error(_block(), exc)
    assert type(error) is kind
    for word in words:
        assert word in str(error)


def test_translate_error_sftp_login_and_path_errors() -> None:
    login = translate_error(_block("sftp"), paramiko.AuthenticationException("Authentication failed."))
    assert isinstance(login, SourceRejectedError)
    assert "SFTP login to ftp.example.test:22 as 'importer' failed" in str(login)
    denied = translate_error(
        _block("sftp"),
        PermissionError(errno.EACCES, "denied"),
        action="move",
        path="in/a.csv",
        fix="Grant it.",
    )
    assert isinstance(denied, SourceRejectedError)
    assert (
        str(denied)
        == "Cannot move 'in/a.csv' on sftp://importer@ftp.example.test:22: permission denied. Grant it."
    )


def test_translate_error_never_repeats_the_password() -> None:
    error = translate_error(_block(), ftplib.error_perm(f"530 bad password {PASSWORD}"))
    assert PASSWORD not in str(error)
    assert "***" in str(error)


# --- The block's own helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "port", "label"),
    [
        ({"protocol": "sftp"}, 22, "sftp://importer@ftp.example.test:22"),
        ({"protocol": "ftps", "root_dir": "/data/"}, 21, "ftps://importer@ftp.example.test:21/data"),
        (
            {"protocol": "ftp", "port": 2121, "root_dir": "in"},
            2121,
            "ftp://importer@ftp.example.test:2121/in",
        ),
    ],
)
def test_block_port_and_label_never_show_the_password(
    fields: dict[str, object], port: int, label: str
) -> None:
    block = FtpConnection(host="ftp.example.test", username="importer", password=PASSWORD, **fields)
    assert block.effective_port() == port
    assert block.describe() == label
    assert PASSWORD not in repr(block)


def test_block_wants_the_sha256_fingerprint_form() -> None:
    with pytest.raises(ValueError, match="SHA256:"):
        FtpConnection(host="h", username="u", password="p", host_key_fingerprint="aa:bb:cc")
    block = FtpConnection(host="h", username="u", password="p", host_key_fingerprint=" SHA256:abc= ")
    assert block.host_key_fingerprint == "SHA256:abc"
