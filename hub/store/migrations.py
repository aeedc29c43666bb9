"""Numbered SQL migrations, applied once each, in the storage mode chosen at first run."""

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

import psycopg

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+?)(?:\.(timescale|plain))?\.sql$")
_LOCK_ID = 0x48554221  # any constant; serialises concurrent `migrate` runs


class StorageMode(StrEnum):
    """TimescaleDB features when the extension is present, otherwise plain tables and views."""

    TIMESCALE = "timescale"
    PLAIN = "plain"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file applicable to a storage mode."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What `migrate` did."""

    mode: StorageMode
    applied: list[str]
    current_version: int


def load_migrations(mode: StorageMode) -> list[Migration]:
    """The packaged migrations for a mode, in version order.

    A version is a shared `NNN_name.sql`, a mode variant `NNN_name.plain.sql` /
    `NNN_name.timescale.sql`, or both: then the shared part runs first, in the same
    transaction, so what both modes have in common is written once.
    """
    parts: dict[int, dict[str | None, tuple[str, str]]] = {}
    for entry in resources.files("hub.store").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        version, name, variant = int(match[1]), match[2], match[3]
        if variant is not None and variant != mode:
            continue
        found = parts.setdefault(version, {})
        if any(other != name for other, _ in found.values()) or variant in found:
            raise RuntimeError(f"two migrations numbered {version:03d}")
        found[variant] = (name, entry.read_text(encoding="utf-8"))
    migrations = []
    for version in sorted(parts):
        pieces = [parts[version][key] for key in (None, mode.value) if key in parts[version]]
        name = pieces[0][0]
        migrations.append(Migration(version, name, "\n".join(sql for _, sql in pieces)))
    return migrations


def _choose_mode(conn: psycopg.Connection[tuple[object, ...]], requested: str) -> StorageMode:
    row = conn.execute("SELECT value FROM hub_meta WHERE key = 'storage_mode'").fetchone()
    if row is not None:
        mode = StorageMode(str(row[0]))
        if requested not in ("auto", mode):
            raise RuntimeError(f"database was created in {mode} mode; cannot switch to {requested}")
        return mode
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if requested == "plain" or (requested == "auto" and available is None):
        return StorageMode.PLAIN
    if available is None:
        raise RuntimeError(
            "HUB_STORAGE_MODE=timescale but the timescaledb extension is not installed"
        )
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as err:
        if requested == "timescale":
            raise RuntimeError(f"cannot enable timescaledb: {err}") from err
        log.warning("timescaledb is installed but cannot be enabled (%s); using plain tables", err)
        return StorageMode.PLAIN
    return StorageMode.TIMESCALE


def apply_migrations(url: str, requested_mode: str = "auto") -> MigrationReport:
    """Bring the schema up to date; safe to run concurrently and repeatedly."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS hub_meta (key text PRIMARY KEY, value text NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            mode = _choose_mode(conn, requested_mode)
            conn.execute(
                "INSERT INTO hub_meta (key, value) VALUES ('storage_mode', %s)"
                " ON CONFLICT (key) DO NOTHING",
                (mode.value,),
            )
            done = {int(str(r[0])) for r in conn.execute("SELECT version FROM schema_migrations")}
            applied: list[str] = []
            for migration in load_migrations(mode):
                if migration.version in done:
                    continue
                log.info("applying migration %03d_%s", migration.version, migration.name)
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied.append(f"{migration.version:03d}_{migration.name}")
            current = conn.execute(
                "SELECT coalesce(max(version), 0) FROM schema_migrations"
            ).fetchone()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return MigrationReport(mode, applied, int(str(current[0])) if current else 0)
