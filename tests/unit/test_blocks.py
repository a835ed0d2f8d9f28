"""Blocks document every field (the UI shows the descriptions) and never show their secrets."""

from __future__ import annotations

import pytest
from prefect.blocks.core import Block
from pydantic import SecretStr

from blocks.api import ApiConnection
from blocks.database import DatabaseConnection, embedded_sqlite_url
from blocks.ftp import FtpConnection

BLOCKS: list[type[Block]] = [FtpConnection, DatabaseConnection, ApiConnection]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.__name__)
def test_every_block_field_is_described_for_the_ui(block: type[Block]) -> None:
    for name, field in block.model_fields.items():
        assert field.description, f"{block.__name__}.{name} has no description"
        assert field.description.rstrip("`").endswith((".", ")")), (
            f"{block.__name__}.{name}: end it with a period"
        )


def test_database_url_password_is_masked_for_reports() -> None:
    database = DatabaseConnection(url=SecretStr("postgresql+psycopg://hub:pa55w0rd-x@db.example:5432/hub"))
    assert "pa55w0rd-x" not in database.display_url()
    assert "pa55w0rd-x" not in repr(database)
    assert "pa55w0rd-x" not in database.model_dump_json()
    assert database.display_url() == "postgresql+psycopg://hub:***@db.example:5432/hub"


def test_database_defaults_to_the_embedded_sqlite_file() -> None:
    assert DatabaseConnection().sqlalchemy_url() == embedded_sqlite_url()
    assert embedded_sqlite_url().endswith("/hub.db")


def test_ftp_password_never_in_repr_or_json() -> None:
    block = FtpConnection(
        protocol="ftps", host="ftp.example", username="u", password=SecretStr("s3cr3t-pw-1")
    )
    assert "s3cr3t-pw-1" not in repr(block)
    assert "s3cr3t-pw-1" not in block.model_dump_json()
    assert "s3cr3t-pw-1" not in block.describe()
    assert block.effective_port() == 21
