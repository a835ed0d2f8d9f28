"""Shared test fixtures: an isolated Prefect home and state folder, one Prefect test server for the
session, real FTP/FTPS/SFTP servers (tests/fixtures_servers.py) and real databases."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports prefect: keep its state, and ours, out of the developer's folders.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="datahub-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect")
os.environ["DATAHUB_STATE_DIR"] = str(_SESSION_DIR / "state")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")

import sqlalchemy as sa  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from blocks.database import DatabaseConnection  # noqa: E402

pytest_plugins = ["tests.fixtures_servers"]

PG_ADMIN_URL = os.environ.get("DATAHUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One real Prefect API server (temporary database) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


def _postgres_reachable() -> str | None:
    engine = sa.create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        return str(exc.orig).splitlines()[0]
    finally:
        engine.dispose()
    return None


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The PostgreSQL test server's URL; in CI an unreachable server fails the test, never skips it."""
    problem = _postgres_reachable()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is unreachable in CI: {problem}")
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {problem}")
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A URL whose default schema is a fresh, empty schema dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_admin_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{postgres_admin_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL of a new SQLite file."""
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each hub database kind in turn: a new SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database(database_url: str) -> DatabaseConnection:
    """A Hub Database block (not saved) for `database_url`."""
    return DatabaseConnection(url=SecretStr(database_url))


@pytest.fixture
def engine(database: DatabaseConnection) -> Iterator[sa.Engine]:
    """An engine on the test's hub database."""
    engine = database.engine()
    yield engine
    engine.dispose()
