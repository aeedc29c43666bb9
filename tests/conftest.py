"""Fixtures: a real PostgreSQL and a real Mosquitto on free ports, started once per session.

Set HUB_TEST_DATABASE_URL (a superuser URL) or HUB_TEST_MQTT_URL to use running servers
instead of starting new ones.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hub.cli.local_stack import LocalMosquitto, LocalPostgres, free_port
from hub.store.database import Database
from hub.store.migrations import apply_migrations

# Fixtures that start (or reach) a real PostgreSQL or Mosquitto: a test whose fixtures
# depend on one of them is an integration test, marked here so no test can forget it
# (`pytest -m "not integration"` runs the pure tests alone).
SERVER_FIXTURES = frozenset({"pg_admin_url", "mqtt_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real server `integration`."""
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def service_dir() -> Iterator[Path]:
    """A scratch directory for the session's servers."""
    path = Path(tempfile.mkdtemp(prefix="hub-test-"))
    os.chmod(path, 0o755)  # noqa: S103 - the postgres user must reach its data dir
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url(service_dir: Path) -> Iterator[str]:
    """URL of a PostgreSQL database with rights to create databases."""
    given = os.environ.get("HUB_TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = LocalPostgres(service_dir / "pg", free_port(), durable=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop("immediate")


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url: str) -> str:
    """Name of a migrated template database that tests clone.

    Migrated in the mode the server offers (HUB_TEST_STORAGE_MODE overrides: auto, plain,
    timescale), then closed to connections: TimescaleDB's scheduler connects to every
    database with the extension, and CREATE DATABASE ... TEMPLATE refuses a source with
    another session in it (timescale/timescaledb issue 4048; from 2.19 the scheduler skips
    databases that do not allow connections).
    """
    name = f"hub_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    apply_migrations(_url_for(pg_admin_url, name), os.environ.get("HUB_TEST_STORAGE_MODE", "auto"))
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        _end_sessions_in(conn, name)
    return name


def _end_sessions_in(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    """End other sessions in a template (a scheduler that connected before it was closed)."""
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    )


def create_from_template(admin_url: str, name: str, template: str) -> None:
    """CREATE DATABASE from a template, ending a background worker that holds it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for _ in range(4):
            try:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'.encode())
            except psycopg.errors.ObjectInUse:
                _end_sessions_in(conn, template)
            else:
                return
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'.encode())


def _url_for(admin_url: str, database: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture
def database_url(pg_admin_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"hub_t_{uuid.uuid4().hex[:10]}"
    create_from_template(pg_admin_url, name, migrated_template)
    yield _url_for(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with no schema, for migration tests."""
    name = f"hub_e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _url_for(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mqtt_url(service_dir: Path) -> Iterator[str]:
    """URL of a Mosquitto broker running the repository's tuning."""
    given = os.environ.get("HUB_TEST_MQTT_URL")
    if given:
        yield given
        return
    broker = LocalMosquitto(service_dir / "mosquitto", free_port())
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture
def mqtt_root() -> str:
    """A topic root of this test's own, so tests sharing a broker never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """An opened store over the test database (one per test; closed afterwards)."""
    database = Database(database_url, max_size=4)
    database.open()
    try:
        yield database
    finally:
        database.close()
