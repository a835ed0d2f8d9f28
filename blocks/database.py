"""The hub database connection: a SQLAlchemy URL kept secret, defaulting to an embedded SQLite file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa
from prefect.blocks.core import Block
from pydantic import Field, SecretStr
from sqlalchemy import event
from sqlalchemy.engine import make_url

from blocks.masking import mask
from blocks.run_cache import load_block

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def state_dir() -> Path:
    """Return the project's git-ignored state folder (override with `DATAHUB_STATE_DIR`)."""
    folder = Path(os.environ.get("DATAHUB_STATE_DIR", PROJECT_ROOT / ".state"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def embedded_sqlite_url() -> str:
    """Return the URL of the embedded SQLite hub database."""
    return f"sqlite:///{state_dir() / 'hub.db'}"


class DatabaseConnection(Block):
    """Where imports are loaded: PostgreSQL in production, an embedded SQLite file by default."""

    _block_type_name = "Hub Database"
    _description = "The hub database that import jobs load into (a SQLAlchemy URL, kept secret)."

    url: SecretStr | None = Field(
        default=None,
        title="SQLAlchemy URL",
        description="Database URL, e.g. `postgresql+psycopg://user:password@host:5432/hub`. Kept "
        "secret because it may hold a password. Empty: the embedded SQLite file in the project's "
        "`.state` folder.",
    )
    echo_sql: bool = Field(default=False, description="Log every SQL statement (for debugging only).")
    sqlite_busy_timeout_minutes: float = Field(
        default=10.0,
        gt=0,
        le=24 * 60,
        title="SQLite busy timeout (minutes)",
        description="SQLite only: the database has one writer at a time, for all jobs; another job's "
        "transaction waits this long for it before failing (a large file's load holds it for its "
        "whole load). PostgreSQL ignores it.",
    )

    def sqlalchemy_url(self) -> str:
        """Return the URL to connect with (secret: never log it)."""
        return self.url.get_secret_value() if self.url is not None else embedded_sqlite_url()

    def secret_values(self) -> list[str]:
        """Return the URL's password (decoded), for `blocks.masking.mask`; [] when it has none."""
        password = parse_database_url(self.sqlalchemy_url()).password
        return [password] if password else []

    def display_url(self) -> str:
        """Return the URL with its password masked, safe for logs and reports."""
        shown = parse_database_url(self.sqlalchemy_url()).render_as_string(hide_password=True)
        # A query option may repeat the password (e.g. a libpq `password=`): mask it wherever it shows.
        return mask(shown, self.secret_values())

    def engine(self) -> sa.Engine:
        """Return a new engine; SQLite gets real transactions and on-disk temporary storage."""
        url = parse_database_url(self.sqlalchemy_url())
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url, echo=self.echo_sql, busy_seconds=self.sqlite_busy_timeout_minutes * 60)
        return sa.create_engine(url, echo=self.echo_sql, pool_pre_ping=True)


def parse_database_url(text: str) -> sa.URL:
    """Return the SQLAlchemy URL of `text`, its user info ending at the last `@` before the host.

    SQLAlchemy's own pattern ends the password at its first `@`, so a password with a raw `@` left its
    tail in the host name (shown in messages, and no such host to connect to). Here the host part is
    found as a URL parser does (up to the first `/`, `?` or `#`, after the last `@`), and the user and
    password are percent-encoded again before SQLAlchemy reads them. A raw `/`, `?` or `#` in a password
    still has to be percent-encoded, as in any URL.
    """
    scheme, sep, rest = text.partition("://")
    end = min([i for i in map(rest.find, "/?#") if i >= 0], default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not sep or not at:
        return make_url(text)
    user, colon, password = userinfo.partition(":")
    login = quote(unquote(user), safe="") + (":" + quote(unquote(password), safe="") if colon else "")
    return make_url(f"{scheme}://{login}@{host}{rest[end:]}")


def _sqlite_engine(url: sa.URL, *, echo: bool, busy_seconds: float) -> sa.Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # A file's staging writes run on a helper thread while the next batch is parsed (one thread at a
    # time, never concurrently: see tasks.hub.staging.Staging), hence check_same_thread off.
    engine = sa.create_engine(
        url, echo=echo, connect_args={"timeout": busy_seconds, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling skips DDL; take it over so a file's whole load,
        # temporary staging tables included, commits or rolls back as one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "temp_store=FILE",  # staging of a large file stays on disk, not in memory
            "cache_size=-65536",
            f"busy_timeout={int(busy_seconds * 1000)}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        # IMMEDIATE: take the write lock at the start, where the busy timeout applies. A deferred
        # transaction that read first and writes later fails at once if another writer got in between.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def hub_database(block_name: str | None) -> DatabaseConnection:
    """Return the saved Hub Database block `block_name`, or the embedded default when it is empty."""
    if not block_name:
        return DatabaseConnection()
    return load_block(DatabaseConnection, block_name)
