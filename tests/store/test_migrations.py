"""Migrations: fresh install, idempotence, plain-mode objects, the TimescaleDB variant."""

import re
from pathlib import Path

import psycopg

from hub.devices.kinds import Kind
from hub.store.migrations import apply_migrations, load_migrations
from hub.store.storage import StorageMode
from tests.store.server_mode import server_storage_mode

MIGRATIONS = Path(__file__).resolve().parents[2] / "hub/store/migrations"
AGGREGATES = {
    Kind.LIGHTING: "lighting_hourly",
    Kind.CABINET: "cabinet_hourly",
    Kind.TRUCK: "truck_hourly",
    Kind.MANHOLE: "manhole_hourly",
    Kind.PARKING: "parking_5min",
}


def test_fresh_database_migrates_once(empty_database_url: str) -> None:
    first = apply_migrations(empty_database_url, "auto")
    assert first.mode is server_storage_mode(empty_database_url)
    assert first.applied[0] == "001_registry"
    second = apply_migrations(empty_database_url, "auto")
    assert second.applied == []
    assert second.current_version == first.current_version


def test_plain_mode_has_tables_views_and_retention(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
        views = {r[0] for r in conn.execute("SELECT viewname FROM pg_views")}
        kept = {r[0] for r in conn.execute("SELECT table_name FROM retention_settings")}
        for kind, view in AGGREGATES.items():
            table = f"telemetry_{kind.value}"
            assert table in tables
            assert view in views
            assert table in kept
        assert "dead_letters" in kept


def test_plain_views_aggregate_readings(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO telemetry_parking (device_id, ts, received_at, occupied)"
            " SELECT 'P-1', '2026-11-21T10:00:00Z'::timestamptz + g * interval '1 minute', now(),"
            " g % 2 = 0 FROM generate_series(0, 9) g"
        )
        rows = conn.execute(
            "SELECT bucket, samples, occupied_samples FROM parking_5min ORDER BY bucket"
        ).fetchall()
    assert [(r[1], r[2]) for r in rows] == [(5, 3), (5, 2)]


def _view_columns(sql: str, view: str) -> list[str]:
    match = re.search(rf"CREATE (?:MATERIALIZED )?VIEW {view}\b.*?SELECT(.*?)FROM", sql, flags=re.S)
    assert match, view
    return [m.group(1) for m in re.finditer(r"\bAS (\w+)", match.group(1))]


def test_timescale_variant_mirrors_the_plain_views() -> None:
    plain = (MIGRATIONS / "003_aggregates.plain.sql").read_text()
    timescale = (MIGRATIONS / "003_aggregates.timescale.sql").read_text()
    for kind, view in AGGREGATES.items():
        assert _view_columns(plain, view) == _view_columns(timescale, view)
        table = f"telemetry_{kind.value}"
        assert f"create_hypertable('{table}'" in timescale
        assert f"add_compression_policy('{table}'" in timescale
        assert f"add_retention_policy('{table}'" in timescale
        assert f"add_continuous_aggregate_policy('{view}'" in timescale
    assert timescale.count("WITH (timescaledb.continuous") == len(AGGREGATES)


def test_each_mode_sees_one_migration_per_number() -> None:
    for mode in StorageMode:
        versions = [m.version for m in load_migrations(mode)]
        assert versions == sorted(set(versions))
        assert versions[:3] == [1, 2, 3]


def test_shared_part_and_mode_variant_of_one_version_run_together() -> None:
    for mode in StorageMode:
        (lighting,) = [m for m in load_migrations(mode) if m.version == 5]
        assert lighting.sql.count("CREATE TABLE lighting_commands") == 1
        assert lighting.sql.index("CREATE TABLE lighting_commands") < lighting.sql.index(
            "lighting_energy_hourly"
        )
        continuous = "timescaledb.continuous" in lighting.sql
        assert continuous is (mode is StorageMode.TIMESCALE)
