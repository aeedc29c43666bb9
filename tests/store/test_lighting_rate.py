"""亮灯率 against a hand count: the denominator is every lamp that should be lit, a lamp
reporting off at night with its supply live counts as unlit (real PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub.devices.kinds import Kind
from hub.devices.lighting import CommandAction
from hub.devices.registry import DeviceRecord
from hub.rules.lighting_context import night_windows
from hub.store import lighting_commands as command_store
from hub.store import lighting_energy as energy_store
from hub.store.database import Database

pytestmark = pytest.mark.integration

GRID = "320505001001001"
CABINET = "CAB-00077"
NOON = datetime(2026, 1, 10, 4, 0, tzinfo=UTC)  # 12:00 in Suzhou
NIGHT = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)  # 20:00 in Suzhou, dusk was about 17:35
LAMPS = ("LMP-007001", "LMP-007002", "LMP-007003", "LMP-007004", "LMP-007005", "LMP-007006")


def test_night_windows_start_after_dusk_and_end_before_dawn() -> None:
    start = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)
    windows = night_windows(31.3, 120.6, start, start + timedelta(days=1), timedelta(minutes=20))
    # 10 January: civil dawn ~06:35 local (22:35 UTC the day before), dusk ~17:35 (09:35 UTC).
    assert len(windows) == 1
    begins, ends = windows[0]
    assert (begins.hour, ends.hour) == (9, 22)
    assert 50 <= begins.minute <= 59
    assert 10 <= ends.minute <= 20


def _register(database_url: str) -> None:
    db = Database(database_url, max_size=2)
    db.open()
    try:
        db.upsert_devices(
            [
                DeviceRecord(
                    device_id=CABINET,
                    kind=Kind.CABINET,
                    lat=31.3,
                    lon=120.6,
                    grid_code=GRID,
                    class_code="01060",
                ),
                *(
                    DeviceRecord(
                        device_id=lamp,
                        kind=Kind.LIGHTING,
                        lat=31.3,
                        lon=120.6 + i * 1e-4,
                        grid_code=GRID,
                        class_code="01037",
                        parent_id=CABINET,
                        attributes={"rated_power_w": 100},
                    )
                    for i, lamp in enumerate(LAMPS)
                ),
            ]
        )
    finally:
        db.close()


def test_lighting_rate_counts_lamps_dark_by_report_at_night(database_url: str) -> None:
    _register(database_url)
    lit, off, no_supply, commanded_off, off_by_day, dark_by_power = LAMPS
    night = [NIGHT + timedelta(minutes=15 * k) for k in range(8)]  # two whole night hours
    rows: list[tuple[str, datetime, bool, float, float, str | None]] = [
        *((lit, ts, True, 220.0, 100.0, None) for ts in night),
        *((off, ts, False, 220.0, 0.0, None) for ts in night),
        *((no_supply, ts, False, 0.0, 0.0, "SUPPLY_LOSS") for ts in night),
        *((commanded_off, ts, False, 220.0, 0.0, None) for ts in night),
        *(
            (off_by_day, NOON + timedelta(minutes=15 * k), False, 220.0, 0.0, None)
            for k in range(4)
        ),
        *((dark_by_power, ts, True, 220.0, 0.0, None) for ts in night[:4]),
    ]
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            'INSERT INTO telemetry_lighting (device_id, ts, received_at, "on", dim_pct,'
            " voltage_v, current_a, power_w, power_factor, energy_kwh, fault_code)"
            " VALUES (%s, %s, %s, %s, 100, %s, 0.4, %s, 0.95, 1, %s)",
            [(d, ts, ts, on, v, w, code) for d, ts, on, v, w, code in rows],
        )
        command_store.create_command_request(
            conn,
            target=commanded_off,
            action=CommandAction.OFF,
            params={},
            now=NIGHT - timedelta(hours=1),
            ttl=timedelta(hours=1),
            max_attempts=3,
        )
        rates = energy_store.lighting_rates(conn, NOON, NIGHT + timedelta(hours=2), 9)
    # By hand: lit 8/8; off with supply 0/8; without supply 0/8 (due, as before); commanded
    # off not due; off by day not due; on but drawing nothing 0/4. Due 28, lit 8.
    assert [(r.district, r.lamps, r.due_samples, r.lit_samples) for r in rates] == [
        (GRID[:9], 6, 28, 8),
        (None, 6, 28, 8),
    ]
    assert rates[-1].rate_pct == pytest.approx(100 * 8 / 28)
