"""Aggregates complete for every accepted reading, local-day buckets, ages from the settings.

Written against what both modes share, so the same tests run unchanged against TimescaleDB
(HUB_TEST_DATABASE_URL): there the refresh policies are run as the scheduler would run them.
"""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from hub.store.database import Database
from hub.store.migrations import apply_migrations
from hub.store.storage import AGGREGATES, StorageMode, StoragePolicy, read_storage_report
from tests.store.server_mode import database_storage_mode

CITY = ZoneInfo("Asia/Shanghai")
LAMP_COLUMNS = (
    'device_id, ts, received_at, "on", dim_pct, voltage_v, current_a, power_w,'
    " power_factor, energy_kwh"
)


def run_refresh_policies(url: str) -> None:
    """What TimescaleDB's scheduler does each period: run every refresh policy once."""
    if database_storage_mode(url) is not StorageMode.TIMESCALE:
        return  # plain views read the raw tables: nothing to refresh
    with psycopg.connect(url, autocommit=True) as conn:
        jobs = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_refresh_continuous_aggregate'"
        ).fetchall()
        for (job_id,) in jobs:
            conn.execute("CALL run_job(%s)", (job_id,))


def insert_lamp_readings(url: str, device_id: str, times: list[datetime]) -> None:
    with psycopg.connect(url) as conn:
        for i, ts in enumerate(times):
            conn.execute(
                f"INSERT INTO telemetry_lighting ({LAMP_COLUMNS})"
                " VALUES (%s, %s, now(), true, 100, 230, 0.4, 90, 0.95, %s)",
                (device_id, ts, 1000 + i * 0.1),
            )


def test_readings_up_to_the_acceptance_window_reach_every_aggregate(database_url: str) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    insert_lamp_readings(database_url, "L-1", [now - timedelta(hours=h) for h in range(2, 6)])
    run_refresh_policies(database_url)  # the watermark moves to the newest hour
    late = [now - timedelta(days=5, hours=h) for h in range(3)]  # a gateway back online
    insert_lamp_readings(database_url, "L-1", late)
    run_refresh_policies(database_url)
    with psycopg.connect(database_url) as conn:
        raw = conn.execute("SELECT count(*) FROM telemetry_lighting").fetchone()
        for view in ("lighting_hourly", "lighting_energy_hourly", "lighting_energy_daily"):
            total = conn.execute(f"SELECT sum(samples) FROM {view}").fetchone()
            assert total is not None
            assert raw is not None
            assert total[0] == raw[0] == 7, view
        late_hours = conn.execute(
            "SELECT count(*) FROM lighting_hourly WHERE bucket < %s", (now - timedelta(days=4),)
        ).fetchone()
    assert late_hours == (3,)


def test_daily_buckets_start_at_the_citys_midnight(database_url: str) -> None:
    yesterday = datetime.now(CITY).date() - timedelta(days=1)
    midnight = datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=CITY)
    # 23:30 and 00:30 local: one local day apart, the same UTC day (15:30Z and 16:30Z)
    times = [midnight - timedelta(minutes=30), midnight + timedelta(minutes=30)]
    insert_lamp_readings(database_url, "L-2", times)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon) VALUES ('C-2', 'cabinet', 0, 0)"
        )
        for ts in times:
            conn.execute(
                "INSERT INTO telemetry_cabinet (device_id, ts, received_at, contactor_on,"
                " door_open, voltage_a_v, voltage_b_v, voltage_c_v, current_a_a, current_b_a,"
                " current_c_a, power_w, energy_kwh)"
                " VALUES ('C-2', %s, now(), true, false, 230, 230, 230, 1, 1, 1, 600, 5)",
                (ts,),
            )
    run_refresh_policies(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TIME ZONE 'America/New_York'")  # the session's zone plays no part
        for view, device in (("lighting_energy_daily", "L-2"), ("cabinet_energy_daily", "C-2")):
            rows = conn.execute(
                f"SELECT bucket, samples FROM {view} WHERE device_id = %s ORDER BY bucket",
                (device,),
            ).fetchall()
            assert rows == [(midnight - timedelta(days=1), 1), (midnight, 1)], view


def test_settings_flow_to_retention_and_plain_deletes_by_them(database_url: str) -> None:
    policy = StoragePolicy(
        telemetry_keep=timedelta(days=30),
        dead_letters_keep=timedelta(days=14),
        compress_after=timedelta(days=8),
    )
    apply_migrations(database_url, "auto", policy)
    mode = database_storage_mode(database_url)
    with psycopg.connect(database_url) as conn:
        report = read_storage_report(conn, mode)
    keep = {t.table: t for t in report.tables}
    assert keep["dead_letters"].keep == timedelta(days=14)
    for kind in ("lighting", "cabinet", "truck", "manhole", "parking"):
        table = keep[f"telemetry_{kind}"]
        assert table.keep == timedelta(days=30)
        if mode is StorageMode.TIMESCALE:
            assert table.hypertable
            assert table.policy_keep == "30 days"
            assert table.policy_compress_after == "8 days"
    if mode is StorageMode.TIMESCALE:
        views = {a.view: a for a in report.aggregates}
        assert set(views) == {a.view for a in AGGREGATES}
        assert views["lighting_hourly"].start_offset is not None
        return
    now = datetime.now(UTC)
    insert_lamp_readings(database_url, "L-3", [now - timedelta(days=40), now - timedelta(days=20)])
    database = Database(database_url, max_size=1)
    database.open()
    try:
        deleted = database.enforce_retention(mode)
    finally:
        database.close()
    assert deleted["telemetry_lighting"] == 1


def test_refresh_window_covers_the_acceptance_window() -> None:
    policy = StoragePolicy(accepted_age=timedelta(days=7))
    for aggregate in AGGREGATES:
        assert policy.refresh_start_offset(aggregate) >= timedelta(days=7) + aggregate.bucket
    with pytest.raises(ValueError, match="refresh window"):
        StoragePolicy(telemetry_keep=timedelta(days=5))
    with pytest.raises(ValueError, match="time zone"):
        StoragePolicy(city_timezone="Mars/Olympus")


def test_storage_command_applies_the_settings_and_reports_them(database_url: str) -> None:
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_RETENTION_DAYS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "hub", "storage", "apply"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "200d" in lines["telemetry_lighting"]
    assert "90d" in lines["dead_letters"]
    assert "city day in Asia/Shanghai" in result.stdout
