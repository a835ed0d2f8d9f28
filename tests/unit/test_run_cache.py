"""Blocks loaded once per flow run: by type and name, never handing one block type for another."""

from __future__ import annotations

import pytest
from prefect import flow
from pydantic import SecretStr

from blocks.database import DatabaseConnection
from blocks.ftp import FtpConnection
from blocks.run_cache import load_block


@pytest.mark.usefixtures("prefect_server")
def test_blocks_of_two_types_may_share_a_name_within_one_run() -> None:
    FtpConnection(host="ftp.example.test", username="u", password=SecretStr("p")).save(
        "shared", overwrite=True
    )
    DatabaseConnection().save("shared", overwrite=True)

    @flow
    def both() -> tuple[object, object, object]:
        return (
            load_block(FtpConnection, "shared"),
            load_block(DatabaseConnection, "shared"),
            load_block(FtpConnection, "shared"),
        )

    ftp, database, ftp_again = both()
    assert isinstance(ftp, FtpConnection)
    assert isinstance(database, DatabaseConnection)
    assert ftp_again is ftp  # loaded once for the run


@pytest.mark.usefixtures("prefect_server")
def test_a_new_run_reads_an_edited_block() -> None:
    FtpConnection(host="old.example.test", username="u", password=SecretStr("p")).save(
        "edited", overwrite=True
    )

    @flow
    def host() -> str:
        return load_block(FtpConnection, "edited").host

    assert host() == "old.example.test"
    FtpConnection(host="new.example.test", username="u", password=SecretStr("p")).save(
        "edited", overwrite=True
    )
    assert host() == "new.example.test"
