"""Enabling TimescaleDB: a server with the package installed but not preloaded is explained,
never a traceback (the loader's FATAL error also ends the session that tried)."""

import os
import subprocess
import sys

from hub.store.migrations import (
    PRELOAD_ADVICE,
    apply_migrations,
    explain_enable_failure,
    preloaded_libraries,
)
from hub.store.storage import StorageMode
from tests.store.server_mode import server_storage_mode

# What TimescaleDB 2.x answers CREATE EXTENSION with when it is not preloaded
# (timescale/timescaledb issue 6208), followed by the lost connection.
NOT_PRELOADED = """extension "timescaledb" must be preloaded
HINT:  Please preload the timescaledb library via shared_preload_libraries.

This can be done by editing the config file at: /etc/postgresql/15/main/postgresql.conf
and adding 'timescaledb' to the list in the shared_preload_libraries config.
\t# Modify postgresql.conf:
\tshared_preload_libraries = 'timescaledb'
"""


def test_preloaded_libraries_reads_the_setting_as_postgres_writes_it() -> None:
    assert preloaded_libraries("") == set()
    assert preloaded_libraries("pg_stat_statements, timescaledb") == {
        "pg_stat_statements",
        "timescaledb",
    }
    assert preloaded_libraries('"$libdir/timescaledb.so",auto_explain') == {
        "timescaledb",
        "auto_explain",
    }


def test_the_not_preloaded_error_becomes_one_line_saying_what_to_set() -> None:
    message = explain_enable_failure(NOT_PRELOADED)
    assert "\n" not in message
    assert PRELOAD_ADVICE in message
    assert "shared_preload_libraries = 'timescaledb'" in message
    lost = explain_enable_failure("consuming input failed: server closed the connection")
    assert PRELOAD_ADVICE in lost


def test_auto_mode_migrates_in_the_mode_the_server_allows(empty_database_url: str) -> None:
    report = apply_migrations(empty_database_url, "auto")
    assert report.mode is server_storage_mode(empty_database_url)


def test_timescale_mode_on_a_server_without_it_says_what_to_do(empty_database_url: str) -> None:
    env = {**os.environ, "HUB_DATABASE_URL": empty_database_url}
    result = subprocess.run(
        [sys.executable, "-m", "hub", "migrate", "--mode", "timescale"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if server_storage_mode(empty_database_url) is StorageMode.TIMESCALE:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [text for text in result.stderr.splitlines() if text.startswith("migrate:")]
    assert "not installed" in line or "shared_preload_libraries" in line
