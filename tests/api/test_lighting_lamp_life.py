"""Lamp life: burning hours and switches from telemetry against a hand count (real
PostgreSQL), and the replacement forecast against rated life (pure)."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.access_table import ROUTE_ACCESS
from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.devices.kinds import Kind
from hub.devices.lighting_life import (
    DEFAULT_DRIVER_LIFE_H,
    DEFAULT_LAMP_LIFE_H,
    FALLBACK_LAMP_LIFE_H,
    LampUsage,
    LifeStatus,
    forecast_life,
    rated_life,
)
from hub.devices.registry import DeviceRecord
from hub.store import lighting as store
from hub.store import lighting_energy as energy_store
from hub.store.database import Database

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_rated_life_from_attributes_or_the_lamp_type_defaults() -> None:
    assert rated_life({"lamp_type": "LED"}).lamp_h == DEFAULT_LAMP_LIFE_H["LED"]
    assert rated_life({"lamp_type": "hps"}).lamp_h == DEFAULT_LAMP_LIFE_H["HPS"]
    assert rated_life({}).lamp_h == FALLBACK_LAMP_LIFE_H
    assert rated_life({}).driver_h == DEFAULT_DRIVER_LIFE_H
    given = rated_life(
        {
            "lamp_type": "LED",
            "rated_life_h": "60000",
            "driver_rated_life_h": 40000,
            "burning_hours_before": 1000,
            "rated_switches": 20000,
            "switches_before": "5",
        }
    )
    assert (given.lamp_h, given.driver_h, given.hours_before) == (60000.0, 40000.0, 1000.0)
    assert (given.switches, given.switches_before) == (20000, 5)
    assert rated_life({"rated_life_h": "lots", "lamp_type": "LED"}).lamp_h == 50000.0


def test_the_forecast_projects_the_burn_rate_onto_the_remaining_life() -> None:
    # 12 h a night for 100 days, 20,000 h burned before: 21,200 of 24,000 → 88 %, plan
    usage = LampUsage("L1", 1200.0, 200, 100.0, {"lamp_type": "HPS", "burning_hours_before": 20000})
    forecast = forecast_life(usage, NOW)
    assert forecast.burning_hours == 21200.0
    assert forecast.hours_per_day == 12.0
    assert forecast.switches_per_day == 2.0
    assert forecast.lamp.status is LifeStatus.PLAN
    assert forecast.lamp.used_share == pytest.approx(21200 / 24000)
    assert forecast.lamp.replace_by == NOW + timedelta(days=2800 / 12)
    assert forecast.driver.status is LifeStatus.OK
    assert forecast.driver.replace_by == NOW + timedelta(days=(50000 - 21200) / 12)
    worn = forecast_life(LampUsage("L2", 10.0, 0, 1.0, {"burning_hours_before": 30000}), NOW)
    assert (worn.lamp.status, worn.lamp.replace_by) == (LifeStatus.DUE, NOW)
    dark = forecast_life(LampUsage("L3", 0.0, 0, 30.0, {}), NOW)
    assert (dark.lamp.status, dark.lamp.replace_by) == (LifeStatus.UNKNOWN, None)
    cycled = forecast_life(LampUsage("L4", 100.0, 60, 10.0, {"rated_switches": 50}), NOW)
    assert cycled.lamp.status is LifeStatus.DUE  # switched past its rating


LAMPS = ("LMP-LIFE01", "LMP-LIFE02", "LMP-LIFE03")
CABINET = "CAB-LIFE"
START = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.mark.integration
def test_burning_hours_and_switches_against_a_hand_count(database_url: str) -> None:
    db = Database(database_url, max_size=2)
    db.open()
    try:
        db.upsert_devices(
            [
                DeviceRecord(
                    device_id=CABINET, kind=Kind.CABINET, lat=31.3, lon=120.6, class_code="01060"
                ),
                *(
                    DeviceRecord(
                        device_id=lamp,
                        kind=Kind.LIGHTING,
                        lat=31.3,
                        lon=120.6,
                        class_code="01037",
                        parent_id=CABINET,
                        attributes={"rated_power_w": 100, "lamp_type": "LED"},
                    )
                    for lamp in LAMPS
                ),
            ]
        )
        steady, switching, silent = LAMPS
        quarter = [START + timedelta(minutes=15 * k) for k in range(12)]  # three whole hours
        # steady: lit all three hours → 3 h, 0 switches.
        # switching: lit, off, lit, off … every reading → half of each hour lit = 1.5 h and 11
        # changes of `on` between its 12 readings. silent: no readings.
        rows = [(steady, ts, True, 100.0) for ts in quarter] + [
            (switching, ts, k % 2 == 0, 100.0 if k % 2 == 0 else 0.0)
            for k, ts in enumerate(quarter)
        ]
        with psycopg.connect(database_url) as conn:
            conn.cursor().executemany(
                'INSERT INTO telemetry_lighting (device_id, ts, received_at, "on", dim_pct,'
                " voltage_v, current_a, power_w, power_factor, energy_kwh)"
                " VALUES (%s, %s, %s, %s, 100, 220, 0.4, %s, 0.95, 1)",
                [(d, ts, ts, on, w) for d, ts, on, w in rows],
            )
            end = START + timedelta(hours=3)
            where = store.fetch_location(conn, steady)
            usage = {
                u.device_id: u for u in energy_store.lamp_usage(conn, START, end, cabinet=CABINET)
            }
        assert where is not None
        assert where.asset == {"lamp_type": "LED", "rated_power_w": 100}  # the alert's record
        assert set(usage) == set(LAMPS)
        assert usage[steady].burning_hours == pytest.approx(3.0)
        assert usage[steady].switches == 0
        assert usage[switching].burning_hours == pytest.approx(1.5)
        assert usage[switching].switches == 11
        assert (usage[silent].burning_hours, usage[silent].switches) == (0.0, 0)
        assert usage[steady].days == pytest.approx(3 / 24)
        assert usage[steady].attributes["lamp_type"] == "LED"

        with TestClient(create_app(db, CollectorRegistry(), routers=domain_routers())) as api:
            period = {"since": START.isoformat(), "until": end.isoformat()}
            listed = api.get("/lighting/lamps/life", params={**period, "cabinet": CABINET})
            assert listed.status_code == 200, listed.text
            body = listed.json()
            assert [f["device_id"] for f in body] == [steady, switching, silent]  # most worn
            assert body[0]["burning_hours"] == 3.0
            assert body[0]["lamp"]["rated_h"] == DEFAULT_LAMP_LIFE_H["LED"]
            assert body[0]["lamp"]["status"] == "ok"
            assert body[2]["lamp"]["status"] == "unknown"
            one = api.get(f"/lighting/lamps/{switching}/life", params=period)
            assert one.status_code == 200, one.text
            assert (one.json()["switches"], one.json()["hours_per_day"]) == (11, 12.0)
            assert api.get("/lighting/lamps/LMP-NOSUCH/life").status_code == 404
        assert ("GET", "/lighting/lamps/life") in ROUTE_ACCESS
    finally:
        db.close()
