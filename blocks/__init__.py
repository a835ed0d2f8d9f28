"""Prefect blocks = connections: FtpConnection, ApiConnection, DatabaseConnection; each saved block loaded
once per flow run (``run_cache``); `mask` (``masking``), the one function that masks their secrets in
every output. The names below are the package's public face."""

from __future__ import annotations

from blocks.api import ApiConnection
from blocks.database import (
    PROJECT_ROOT,
    DatabaseConnection,
    embedded_sqlite_url,
    hub_database,
    parse_database_url,
    state_dir,
)
from blocks.ftp import FtpConnection
from blocks.masking import basic_pair, mask
from blocks.run_cache import load_block

__all__ = [
    "PROJECT_ROOT",
    "ApiConnection",
    "DatabaseConnection",
    "FtpConnection",
    "basic_pair",
    "embedded_sqlite_url",
    "hub_database",
    "load_block",
    "mask",
    "parse_database_url",
    "state_dir",
]
