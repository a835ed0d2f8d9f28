"""`python -m deployments blocks`: which settings become which block documents (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks.api import ApiConnection
from blocks.database import DatabaseConnection
from blocks.ftp import FtpConnection
from deployments.blocks import block_settings, describe, env_prefix, read_local_file, save_blocks


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


def test_api_connection_blocks_come_from_the_environment_without_echoing_the_key(tmp_path: Path) -> None:
    env = {
        "DATAHUB_PIM_API_BASE_URL": "https://pim.example.com/api/",
        "DATAHUB_PIM_API_AUTH": "api_key",
        "DATAHUB_PIM_API_API_KEY": "pim-k3y-secret",
        "DATAHUB_PIM_API_TIMEOUT_SECONDS": "12.5",
        "DATAHUB_ERP_API_BASE_URL": "https://erp.example.com/",
        "DATAHUB_ERP_API_AUTH": "bearer",  # no token: invalid, never saved
    }
    settings = block_settings({}, env)
    block_type, fields = settings["pim-api"]
    assert block_type is ApiConnection
    block = ApiConnection.model_validate(fields)
    assert (block.base_url, block.auth, block.timeout_seconds) == (
        "https://pim.example.com/api/",
        "api_key",
        12.5,
    )
    assert block.api_key is not None
    assert block.api_key.get_secret_value() == "pim-k3y-secret"
    assert describe(block) == "https://pim.example.com/api/ (auth api_key)"

    outcomes = {
        o.name: o
        for o in save_blocks(tmp_path / "absent.yaml", {k: v for k, v in env.items() if "ERP_API" in k})
    }
    assert not outcomes["erp-api"].saved
    assert "bearer_token" in outcomes["erp-api"].detail
    assert outcomes["pim-api"].line() == (
        "skipped API Connection 'pim-api': not configured; set DATAHUB_PIM_API_BASE_URL, DATAHUB_PIM_API_AUTH, "
        "DATAHUB_PIM_API_API_KEY, DATAHUB_PIM_API_API_KEY_HEADER, DATAHUB_PIM_API_BEARER_TOKEN, ... or absent.yaml"
    )
