"""Which storage mode the test server gives a fresh database, so tests take it from the server."""

import psycopg

from hub.store.migrations import preloaded_libraries
from hub.store.storage import StorageMode


def server_storage_mode(url: str) -> StorageMode:
    """TIMESCALE when timescaledb is installed and preloaded on the server, else PLAIN."""
    with psycopg.connect(url, autocommit=True) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
        if available is None:
            return StorageMode.PLAIN
        row = conn.execute("SHOW shared_preload_libraries").fetchone()
    preloaded = row is not None and "timescaledb" in preloaded_libraries(str(row[0]))
    return StorageMode.TIMESCALE if preloaded else StorageMode.PLAIN


def database_storage_mode(url: str) -> StorageMode:
    """The mode a migrated database was created in."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT value FROM hub_meta WHERE key = 'storage_mode'").fetchone()
    assert row is not None, "database is not migrated"
    return StorageMode(str(row[0]))
