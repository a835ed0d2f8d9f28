"""The file session against real FTP, FTPS and SFTP servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from tasks.errors import ImportJobError, SourceRejectedError, SourceUnavailableError
from tasks.files import PROBE_PREFIX, check_connection, open_session, watch_listing
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


@pytest.fixture(params=["ftp", "ftps", "sftp"])
def server(request: pytest.FixtureRequest) -> LocalServer:
    """Each of the three servers in turn, with `inbound` and `outbound` folders."""
    local: LocalServer = request.getfixturevalue(f"{request.param}_server")
    (local.root / "inbound").mkdir()
    (local.root / "outbound").mkdir()
    return local


def put(server: LocalServer, path: str, content: bytes, *, mtime: float | None = None) -> Path:
    target = server.root / path
    target.write_bytes(content)
    if mtime is not None:
        os.utime(target, (mtime, mtime))
    return target


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- Listing and stat ------------------------------------------------------------------------------


def test_list_files_matches_the_pattern_oldest_first(server: LocalServer) -> None:
    put(server, "inbound/b.csv", b"b", mtime=HOUR_AGO + 20)
    put(server, "inbound/c.csv", b"cc", mtime=HOUR_AGO)
    put(server, "inbound/a.csv", b"aaa", mtime=HOUR_AGO + 20)
    put(server, "inbound/notes.txt", b"x", mtime=HOUR_AGO - 50)
    (server.root / "inbound" / "folder.csv").mkdir()
    with open_session(make_block(server)) as session:
        files = session.list_files("inbound", "*.csv")
    assert [(file.path, file.size) for file in files] == [
        ("inbound/c.csv", 2),
        ("inbound/a.csv", 3),
        ("inbound/b.csv", 1),
    ]
    assert files[0].modified is not None
    assert files[0].modified.tzinfo is not None
    assert abs(files[0].modified.timestamp() - HOUR_AGO) < 1.5


def test_list_files_skips_names_with_control_characters(server: LocalServer) -> None:
    put(server, "inbound/good.csv", b"g")
    put(server, "inbound/bad\x01name.csv", b"b")
    with open_session(make_block(server)) as session:
        assert [file.path for file in session.list_files("inbound", "*.csv")] == ["inbound/good.csv"]


def test_list_files_in_a_missing_folder_names_it_and_the_fix(server: LocalServer) -> None:
    with open_session(make_block(server)) as session, pytest.raises(SourceRejectedError) as caught:
        session.list_files("nowhere", "*.csv")
    assert "'nowhere'" in str(caught.value)
    assert "Create the folder" in str(caught.value)


def test_list_files_refuses_paths_outside_the_root(server: LocalServer) -> None:
    with open_session(make_block(server, root_dir="inbound")) as session:
        for path in ["../outbound", "/outbound"]:
            with pytest.raises(SourceRejectedError, match="root folder"):
                session.list_files(path, "*")


def test_root_dir_makes_paths_relative(server: LocalServer) -> None:
    put(server, "inbound/a.csv", b"a")
    with open_session(make_block(server, root_dir="/inbound")) as session:
        assert [file.path for file in session.list_files("", "*.csv")] == ["a.csv"]
        assert session.stat("/inbound/a.csv") == session.stat("a.csv")


def test_stat_present_and_absent(server: LocalServer) -> None:
    put(server, "inbound/a.csv", b"12345")
    with open_session(make_block(server)) as session:
        found = session.stat("inbound/a.csv")
        assert found is not None
        assert (found.path, found.size) == ("inbound/a.csv", 5)
        assert session.stat("inbound/missing.csv") is None
        assert session.stat("inbound") is None  # a folder is not a file


# --- Download --------------------------------------------------------------------------------------


def test_download_streams_the_bytes_and_their_sha256(server: LocalServer, tmp_path: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    put(server, "inbound/big.csv", content)
    local = tmp_path / "big.csv"
    with open_session(make_block(server)) as session:
        remote, sha256 = session.download("inbound/big.csv", local)
    assert sha256 == hashlib.sha256(content).hexdigest()
    assert local.read_bytes() == content
    assert (remote.path, remote.size) == ("inbound/big.csv", len(content))


def test_download_of_a_missing_file_is_rejected(server: LocalServer, tmp_path: Path) -> None:
    with (
        open_session(make_block(server)) as session,
        pytest.raises(SourceRejectedError, match="does not exist"),
    ):
        session.download("inbound/missing.csv", tmp_path / "missing.csv")
    assert not (tmp_path / "missing.csv").exists()


@pytest.fixture(params=["ftp", "sftp"])
def cutting_server(
    request: pytest.FixtureRequest, tmp_path: Path, sftp_host_key: asyncssh.SSHKey
) -> Iterator[LocalServer]:
    """A server that drops the connection after about 256 KiB of a download."""
    cut = 256 * 1024
    if request.param == "ftp":
        with serve_ftp(tmp_path / "cut-ftp", cut_after_bytes=cut) as local:
            yield local
    else:
        with serve_sftp(tmp_path / "cut-sftp", sftp_host_key, cut_after_bytes=cut) as local:
            yield local


def test_download_dropped_midway_leaves_no_partial_file(cutting_server: LocalServer, tmp_path: Path) -> None:
    put(cutting_server, "big.csv", os.urandom(2 * 1024 * 1024))
    local = tmp_path / "big.csv"
    with pytest.raises(SourceUnavailableError), open_session(make_block(cutting_server)) as session:
        session.download("big.csv", local)
    assert not local.exists()


@pytest.mark.parametrize("protocol", ["ftp", "ftps"])
def test_active_mode_transfers(protocol: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    local: LocalFtp = request.getfixturevalue(f"{protocol}_server")
    put(local, "a.csv", b"active")
    with open_session(make_block(local, passive=False)) as session:
        assert [file.path for file in session.list_files("", "*.csv")] == ["a.csv"]
        _, sha256 = session.download("a.csv", tmp_path / "a.csv")
    assert sha256 == hashlib.sha256(b"active").hexdigest()


# --- Move ------------------------------------------------------------------------------------------


def test_move_into_outbound(server: LocalServer) -> None:
    put(server, "inbound/offers.csv", b"offers")
    with open_session(make_block(server)) as session:
        assert session.move("inbound/offers.csv", "outbound") == "outbound/offers.csv"
    assert (server.root / "outbound" / "offers.csv").read_bytes() == b"offers"
    assert not (server.root / "inbound" / "offers.csv").exists()


def test_move_on_a_name_clash_adds_a_timestamp_and_overwrites_nothing(server: LocalServer) -> None:
    put(server, "inbound/offers.csv", b"new")
    put(server, "outbound/offers.csv", b"old")
    with open_session(make_block(server)) as session:
        target = session.move("inbound/offers.csv", "outbound")
        put(server, "inbound/offers.csv", b"newer")
        third = session.move("inbound/offers.csv", "outbound")
    assert re.fullmatch(r"outbound/offers\.\d{8}T\d{6}Z\.csv", target)
    assert (server.root / target).read_bytes() == b"new"
    assert (server.root / "outbound" / "offers.csv").read_bytes() == b"old"
    assert third != target
    assert (server.root / third).read_bytes() == b"newer"


@pytest.mark.parametrize("folder", ["missing", READ_ONLY_DIR])
def test_move_into_a_missing_or_locked_folder_leaves_the_source(server: LocalServer, folder: str) -> None:
    put(server, "inbound/offers.csv", b"offers")
    with open_session(make_block(server)) as session, pytest.raises(SourceRejectedError) as caught:
        session.move("inbound/offers.csv", folder)
    assert repr(folder) in str(caught.value)
    assert "create it" in str(caught.value) or "write into the folder" in str(caught.value)
    assert (server.root / "inbound" / "offers.csv").read_bytes() == b"offers"


def test_move_of_a_missing_file_is_rejected(server: LocalServer) -> None:
    with (
        open_session(make_block(server)) as session,
        pytest.raises(SourceRejectedError, match="does not exist"),
    ):
        session.move("inbound/gone.csv", "outbound")


# --- Login, TLS and host keys ----------------------------------------------------------------------


def test_wrong_password_is_a_login_error_without_the_password(server: LocalServer) -> None:
    wrong = "not-the-pw-4711"
    with pytest.raises(SourceRejectedError) as caught, open_session(make_block(server, password=wrong)):
        pass
    message = str(caught.value)
    assert "login" in message
    assert "check the username and password" in message
    assert wrong not in message
    assert server.password not in message


@pytest.mark.parametrize("protocol", ["ftp", "ftps", "sftp"])
def test_server_down_is_unavailable(protocol: str) -> None:
    port = closed_port()
    block = make_block(
        LocalFtp(host="127.0.0.1", port=port, root=Path(), username="u", password="p"), protocol=protocol
    )
    with pytest.raises(SourceUnavailableError) as caught, open_session(block):
        pass
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "check that the server is up and the port is right" in str(caught.value)


@pytest.mark.parametrize("protocol", ["ftp", "sftp"])
def test_a_silent_server_times_out(protocol: str) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever says hello
        local = LocalFtp(
            host="127.0.0.1", port=silent.getsockname()[1], root=Path(), username="u", password="p"
        )
        block = make_block(local, protocol=protocol, timeout_seconds=0.3, insecure_accept_any_host_key=True)
        problems = check_connection(block)
    assert len(problems) == 1
    assert f"127.0.0.1:{local.port}" in problems[0]
    assert "check that the server is up and the port is right" in problems[0]


def test_unknown_host_is_unavailable(ftp_server: LocalFtp) -> None:
    problems = check_connection(make_block(ftp_server, host="no-such-host.invalid"))
    assert len(problems) == 1
    assert "Cannot resolve host 'no-such-host.invalid'" in problems[0]


def test_ftps_without_the_ca_fails_certificate_verification(ftps_server: LocalFtp) -> None:
    with pytest.raises(SourceRejectedError) as caught, open_session(make_block(ftps_server, ca_bundle=None)):
        pass
    assert "certificate" in str(caught.value)
    assert "ca_bundle" in str(caught.value)


def test_ftps_checks_the_host_name_unless_told_not_to(ftps_server: LocalFtp) -> None:
    by_name = make_block(ftps_server, host="localhost")  # the certificate names 127.0.0.1 only
    with pytest.raises(SourceRejectedError, match="certificate"), open_session(by_name):
        pass
    assert check_connection(make_block(ftps_server, host="localhost", tls_verify_hostname=False)) == []


def test_ftps_insecure_opt_in_skips_verification(ftps_server: LocalFtp) -> None:
    block = make_block(ftps_server, ca_bundle=None, insecure_skip_tls_verify=True)
    with open_session(block) as session:
        assert session.list_files("", "*") == []


def test_ftps_with_an_unreadable_ca_bundle(ftps_server: LocalFtp, tmp_path: Path) -> None:
    problems = check_connection(make_block(ftps_server, ca_bundle=str(tmp_path / "nope.pem")))
    assert "Cannot read the CA file" in problems[0]


def test_ftps_refuses_plain_ftp_logins(ftps_server: LocalFtp) -> None:
    problems = check_connection(make_block(ftps_server, protocol="ftp"))
    assert len(problems) == 1  # tls_control_required: the password never travels in clear


def test_sftp_with_a_wrong_fingerprint_names_both(sftp_server: LocalSftp) -> None:
    wrong = "SHA256:" + "A" * 43
    with (
        pytest.raises(SourceRejectedError) as caught,
        open_session(make_block(sftp_server, host_key_fingerprint=wrong)),
    ):
        pass
    assert "host key" in str(caught.value)
    assert wrong in str(caught.value)
    assert sftp_server.host_key_fingerprint in str(caught.value)


def test_sftp_with_nothing_configured_and_an_empty_known_hosts(
    sftp_server: LocalSftp, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    block = make_block(sftp_server, host_key_fingerprint=None, known_hosts_file=str(empty))
    with pytest.raises(SourceRejectedError) as caught, open_session(block):
        pass
    assert "is unknown" in str(caught.value)
    assert f"host_key_fingerprint: '{sftp_server.host_key_fingerprint}'" in str(caught.value)


def test_sftp_with_a_missing_known_hosts_file(sftp_server: LocalSftp, tmp_path: Path) -> None:
    block = make_block(sftp_server, host_key_fingerprint=None, known_hosts_file=str(tmp_path / "absent"))
    problems = check_connection(block)
    assert "does not exist" in problems[0]
    assert "host_key_fingerprint" in problems[0]


def test_sftp_known_hosts_accepts_the_listed_key(sftp_server: LocalSftp) -> None:
    block = make_block(sftp_server, host_key_fingerprint=None, known_hosts_file=sftp_server.known_hosts_path)
    assert check_connection(block) == []


def test_sftp_known_hosts_with_another_key_is_a_mismatch(sftp_server: LocalSftp, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{sftp_server.host}]:{sftp_server.port} {other}\n")
    problems = check_connection(
        make_block(sftp_server, host_key_fingerprint=None, known_hosts_file=str(known_hosts))
    )
    assert "does not match" in problems[0]


def test_sftp_insecure_opt_in_accepts_any_key(sftp_server: LocalSftp, tmp_path: Path) -> None:
    block = make_block(
        sftp_server,
        host_key_fingerprint=None,
        known_hosts_file=str(tmp_path / "absent"),
        insecure_accept_any_host_key=True,
    )
    assert check_connection(block) == []


# --- Connection check ------------------------------------------------------------------------------


def test_check_reports_unreadable_and_unwritable_folders(server: LocalServer) -> None:
    with open_session(make_block(server)) as session:
        problems = session.check(["inbound", "no-inbound"], ["outbound", READ_ONLY_DIR, "no-outbound"])
    assert len(problems) == 3, problems
    assert "'no-inbound'" in problems[0]
    assert READ_ONLY_DIR in problems[1]
    assert "'no-outbound'" in problems[2]
    assert not [p for p in (server.root / "outbound").iterdir() if p.name.startswith(PROBE_PREFIX)]


def test_check_of_a_good_setup_is_empty(server: LocalServer) -> None:
    with open_session(make_block(server)) as session:
        assert session.check(["inbound"], ["outbound"]) == []


# --- Settle: files still being written ----------------------------------------------------------------


def test_watch_listing_reports_a_file_that_grows_between_looks(server: LocalServer) -> None:
    put(server, "inbound/done.csv", b"done", mtime=HOUR_AGO)
    growing = put(server, "inbound/partial.csv", b"part", mtime=HOUR_AGO)

    def append_later() -> None:
        time.sleep(0.2)
        with growing.open("ab") as out:
            out.write(b"-more")

    writer = threading.Thread(target=append_later)
    writer.start()
    with open_session(make_block(server)) as session:
        listing = watch_listing(session, "inbound", "*.csv", settle_seconds=0.6, min_age_seconds=0)
    writer.join()
    assert [file.path for file in listing.ready] == ["inbound/done.csv"]
    assert [file.path for file in listing.growing] == ["inbound/partial.csv"]


def test_watch_listing_without_settle_holds_back_young_files(ftp_server: LocalFtp) -> None:
    (ftp_server.root / "inbound").mkdir()
    put(ftp_server, "inbound/old.csv", b"o", mtime=HOUR_AGO)
    put(ftp_server, "inbound/new.csv", b"n")
    with open_session(make_block(ftp_server)) as session:
        listing = watch_listing(session, "inbound", "*.csv", settle_seconds=0, min_age_seconds=600)
    assert [file.path for file in listing.ready] == ["inbound/old.csv"]
    assert [file.path for file in listing.growing] == ["inbound/new.csv"]


# --- Servers without MLSD/MLST --------------------------------------------------------------------


def test_fallback_to_nlst_size_mdtm(tmp_path: Path, tls_files: TlsFiles) -> None:
    with serve_ftp(tmp_path / "old-ftp", mlsd=False) as old:
        (old.root / "inbound").mkdir()
        (old.root / "outbound").mkdir()
        put(old, "inbound/b.csv", b"bb", mtime=HOUR_AGO + 5)
        put(old, "inbound/a.csv", b"a", mtime=HOUR_AGO + 5)
        put(old, "inbound/c.csv", b"ccc", mtime=HOUR_AGO)
        (old.root / "inbound" / "sub.csv").mkdir()
        with open_session(make_block(old)) as session:
            files = session.list_files("inbound", "*.csv")
            assert [file.path for file in files] == ["inbound/c.csv", "inbound/a.csv", "inbound/b.csv"]
            assert files[0].modified is not None
            assert abs(files[0].modified.timestamp() - HOUR_AGO) < 1.5
            assert session.move("inbound/c.csv", "outbound") == "outbound/c.csv"
            with pytest.raises(SourceRejectedError, match="does not exist"):
                session.move("inbound/a.csv", "missing")
            with pytest.raises(ImportJobError):
                session.list_files("missing", "*")
