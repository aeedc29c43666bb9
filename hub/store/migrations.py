"""Numbered SQL migrations, applied once each, in the storage mode chosen at first run."""

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from hub.store import storage
from hub.store.storage import StorageMode, StoragePolicy

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+?)(?:\.(timescale|plain))?\.sql$")
_LOCK_ID = 0x48554221  # any constant; serialises concurrent `migrate` runs


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


class MigrationError(RuntimeError):
    """A migration that cannot proceed, with a one-line message saying what to do."""


# TimescaleDB's loader refuses a library that was not preloaded with a FATAL error, which
# also ends the session (timescale/timescaledb issues 550, 1849, 6208: 'extension
# "timescaledb" must be preloaded'). So the extension is tried on a connection of its own
# and the server's setting is read first where the role may read it.
PRELOAD_ADVICE = (
    "add timescaledb to shared_preload_libraries in postgresql.conf"
    " (shared_preload_libraries = 'timescaledb', keeping any libraries already listed)"
    " and restart PostgreSQL"
)


def preloaded_libraries(setting: str) -> set[str]:
    """Library names of a shared_preload_libraries value ('"$libdir/timescaledb.so", x')."""
    names = set()
    for part in setting.split(","):
        name = part.strip().strip('"').rsplit("/", 1)[-1]
        names.add(name.removesuffix(".so"))
    names.discard("")
    return names


def explain_enable_failure(error_text: str) -> str:
    """What an operator must do, from the error CREATE EXTENSION timescaledb raised."""
    first_line = error_text.strip().splitlines()[0] if error_text.strip() else "no message"
    if "must be preloaded" in error_text or "connection" in first_line.lower():
        return f"timescaledb is installed but not preloaded ({first_line}): {PRELOAD_ADVICE}"
    return f"timescaledb is installed but cannot be enabled: {first_line}"


def _timescaledb_blocker(url: str) -> str | None:
    """Why the timescaledb extension cannot be used in this database, or None if it can."""
    with psycopg.connect(url, autocommit=True) as probe:
        try:
            row = probe.execute("SHOW shared_preload_libraries").fetchone()
        except psycopg.errors.InsufficientPrivilege:
            row = None  # not a superuser nor pg_read_all_settings: learn it by trying
    if row is not None and "timescaledb" not in preloaded_libraries(str(row[0])):
        return f"timescaledb is installed but not preloaded: {PRELOAD_ADVICE}"
    try:
        with psycopg.connect(url, autocommit=True) as attempt:
            attempt.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as err:
        return explain_enable_failure(str(err))
    return None


def _choose_mode(
    conn: psycopg.Connection[tuple[object, ...]], url: str, requested: str
) -> StorageMode:
    row = conn.execute("SELECT value FROM hub_meta WHERE key = 'storage_mode'").fetchone()
    if row is not None:
        mode = StorageMode(str(row[0]))
        if requested not in ("auto", mode):
            raise MigrationError(
                f"database was created in {mode} mode; cannot switch to {requested}"
            )
        return mode
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if requested == "plain" or (requested == "auto" and available is None):
        return StorageMode.PLAIN
    if available is None:
        raise MigrationError(
            "--mode timescale but the timescaledb extension is not installed on this server"
            " (install the timescaledb package for this PostgreSQL, or migrate with --mode plain)"
        )
    blocker = _timescaledb_blocker(url)
    if blocker is None:
        return StorageMode.TIMESCALE
    if requested == "timescale":
        raise MigrationError(blocker)
    log.warning("%s; using plain tables (storage mode is fixed at the first migrate)", blocker)
    return StorageMode.PLAIN


def apply_migrations(
    url: str, requested_mode: str = "auto", policy: "StoragePolicy | None" = None
) -> MigrationReport:
    """Bring the schema up to date and the storage ages to the policy (default: the
    settings' defaults); safe to run concurrently and repeatedly."""
    policy = policy or storage.StoragePolicy()
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
            mode = _choose_mode(conn, url, requested_mode)
            conn.execute(
                "INSERT INTO hub_meta (key, value) VALUES ('storage_mode', %s)"
                " ON CONFLICT (key) DO NOTHING",
                (mode.value,),
            )
            storage.record_city_timezone(conn, mode, policy.city_timezone)
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
            storage.write_storage_policy(conn, mode, policy)
            storage.refresh_incomplete_aggregates(conn, mode)
            current = conn.execute(
                "SELECT coalesce(max(version), 0) FROM schema_migrations"
            ).fetchone()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return MigrationReport(mode, applied, int(str(current[0])) if current else 0)
