"""`HeldSession`: one login for a whole run's files; after a failure the next use logs in again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.errors import SourceRejectedError
from tasks.files import HeldSession, fetch, move
from tests.fixtures_servers import LocalFtp, make_block


def test_many_files_share_one_login(ftp_server: LocalFtp, tmp_path: Path) -> None:
    (ftp_server.root / "in").mkdir()
    (ftp_server.root / "out").mkdir()
    for number in range(5):
        (ftp_server.root / "in" / f"f{number}.csv").write_text(f"a\n{number}\n")
    with HeldSession(make_block(ftp_server)) as held:
        for number in range(5):
            downloaded = fetch(held, f"in/f{number}.csv", tmp_path, claim=True)
            assert downloaded is not None
            assert downloaded.claimed_path is not None
            assert move(held, downloaded.claimed_path, "out") == f"out/f{number}.csv"
        assert held.logins == 1
    assert sorted(p.name for p in (ftp_server.root / "out").iterdir()) == [f"f{n}.csv" for n in range(5)]


def test_a_failure_drops_the_session_and_the_next_use_logs_in_again(ftp_server: LocalFtp) -> None:
    (ftp_server.root / "in").mkdir()
    with HeldSession(make_block(ftp_server)) as held:
        with held.use() as session:
            assert session.list_files("in", "*") == []
        with pytest.raises(SourceRejectedError), held.use() as session:
            session.download("in/missing.csv", ftp_server.root / "nowhere")
        with held.use() as session:
            assert session.list_files("in", "*") == []
        assert held.logins == 2
