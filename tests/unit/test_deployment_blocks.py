"""`python -m deployments blocks`: which settings become which block documents (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.database import DatabaseConnection
from blocks.ftp import FtpConnection
from deployments.blocks import block_settings, env_prefix, read_local_file, save_blocks


def test_env_prefix_follows_the_block_name() -> None:
    assert env_prefix("erp-ftp") == "DATAHUB_ERP_FTP_"
    assert env_prefix("hub-db") == "DATAHUB_HUB_DB_"


def test_environment_overrides_the_local_file_field_by_field() -> None:
    local = {"erp-ftp": {"host": "file-host", "username": "u", "password": "p", "port": 22}}
    env = {
        "DATAHUB_ERP_FTP_HOST": "env-host",
        "DATAHUB_ERP_FTP_PROTOCOL": "ftp",
        "DATAHUB_HUB_DB_URL": "sqlite://",
    }
    settings = block_settings(local, env)
    assert settings["erp-ftp"] == (
        FtpConnection,
        {"host": "env-host", "username": "u", "password": "p", "port": 22, "protocol": "ftp"},
    )
    assert settings["hub-db"] == (DatabaseConnection, {"url": "sqlite://"})


def test_more_blocks_of_the_local_file_need_a_type(tmp_path: Path) -> None:
    path = tmp_path / "blocks.local.yaml"
    path.write_text("other-db: {type: hub-database, url: 'sqlite://'}\nbad: {url: x}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'bad' needs `type:`"):
        block_settings(read_local_file(path), {})
    assert block_settings({"other-db": {"type": "hub-database", "url": "sqlite://"}}, {})["other-db"] == (
        DatabaseConnection,
        {"url": "sqlite://"},
    )


def test_unconfigured_and_invalid_blocks_are_not_saved_and_secrets_not_echoed(tmp_path: Path) -> None:
    env = {"DATAHUB_ERP_FTP_HOST": "h", "DATAHUB_ERP_FTP_PASSWORD": "s3cret", "DATAHUB_ERP_FTP_PORT": "x"}
    outcomes = {o.name: o for o in save_blocks(tmp_path / "absent.yaml", env)}
    assert not outcomes["erp-ftp"].saved
    assert outcomes["erp-ftp"].detail.startswith("invalid: ")
    assert "username" in outcomes["erp-ftp"].detail
    assert "port" in outcomes["erp-ftp"].detail
    assert "s3cret" not in outcomes["erp-ftp"].line()
    assert outcomes["hub-db"].line() == (
        "skipped Hub Database 'hub-db': not configured; set DATAHUB_HUB_DB_URL or absent.yaml"
    )


def test_saved_description_masks_the_database_password() -> None:
    from deployments.blocks import describe

    block = DatabaseConnection(url=SecretStr("postgresql+psycopg://hub:pw@db:5432/hub"))
    assert describe(block) == "postgresql+psycopg://hub:***@db:5432/hub"
