"""Live updates through the real stack: a cover's readings go over MQTT to a hub child
(ingest, rules, alarm store, API), whose /alarms/stream turns the cover red on the overview
map and redraws the dashboard's figures, both without a reload; clearing the alarms through
the API turns them back. And the dashboard's newer charts over the API's data: open faults by
priority, occupancy by lot over the last 24 hours, energy and lighting rate by district,
closure and on-time handling rates by department."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hub.cli.local_stack import free_port
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction
from hub.store.access import AccessStore
from hub.store.database import Database
from hub.store.telemetry import TelemetryWriter
from tests.api.access.access_fixtures import add_users
from tests.api.console.conftest import ServedHub, log_in
from tests.hub_process import api_headers, hub_env, publish_all, running_hub
from tests.spot_reports import spot_report_batch
from tests.store.cases.case_fixtures import GRID, alarm_signal

pytestmark = [pytest.mark.integration, pytest.mark.browser]

COVER = "MH-000001"


def chart(page: Page, canvas: str, expression: str) -> Any:
    """Something of a drawn Chart.js chart, once the chart exists."""
    get = f"Chart.getChart(document.getElementById('{canvas}'))"
    page.wait_for_function(f"() => window.Chart && {get}")
    return page.evaluate(f"() => {{ const c = {get}; return {expression}; }}")


@pytest.fixture
def hub_child(database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path) -> Iterator[str]:
    """A hub child with its API, a cover and a lamp registered, a console user per role."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, name, lat, lon, grid_code, class_code,"
            " attributes) VALUES (%s, 'manhole', '北京东路井盖', 32.05, 118.78, %s, '01003', %s),"
            " ('LMP-1', 'lighting', '北京东路路灯', 32.051, 118.781, %s, '01037', '{}')",
            (
                COVER,
                GRID,
                json.dumps({"baseline_tilt_deg": 1.0, "road_class": "main"}),
                GRID,
            ),
        )
    db = Database(database_url, max_size=1)
    db.open()
    try:
        add_users(AccessStore(db))
    finally:
        db.close()
    port = free_port()
    env = hub_env(
        database_url, mqtt_url, mqtt_root, HUB_API_PORT=str(port), HUB_MODBUS_ENABLED="false"
    )
    with running_hub(env, tmp_path / "hub.log", api=True):
        yield f"http://127.0.0.1:{port}"


def test_a_cover_alarm_reaches_the_map_and_the_dashboard_live(
    hub_child: str,
    browser: Browser,
    contexts: list[BrowserContext],
    database_url: str,
    mqtt_url: str,
    mqtt_root: str,
) -> None:
    overview = log_in(browser, contexts, hub_child, "viewer")
    overview.get_by_test_id("nav-overview").click()
    cover = overview.get_by_test_id("overview-map").locator(f"circle[data-id='{COVER}']")
    expect(cover).to_have_class("pt asset manhole st-ok")
    expect(overview.get_by_test_id("overview-live")).to_have_class("dot on")
    dashboard = log_in(browser, contexts, hub_child, "viewer")
    dashboard.get_by_test_id("nav-dashboard").click()
    open_alarms = dashboard.get_by_test_id("tile-alarms").locator("b")
    expect(open_alarms).to_have_text("0")
    expect(dashboard.get_by_test_id("dashboard-live")).to_have_class("dot on")

    # the cover is pushed aside: tilted and open for minutes, over MQTT into the hub
    start = datetime.now(UTC) - timedelta(minutes=10)
    readings = [
        (start, 1.1, False),
        (start + timedelta(minutes=1), 46.0, True),
        (start + timedelta(minutes=6), 46.0, True),
        (start + timedelta(minutes=7), 46.0, True),
    ]
    publish_all(
        mqtt_url,
        [
            (
                f"{mqtt_root}/manhole/{COVER}/telemetry",
                orjson.dumps(
                    {
                        "ts": int(ts.timestamp() * 1000),
                        "tilt_deg": tilt,
                        "cover_open": open_,
                        "battery_pct": 80.0,
                    }
                ),
            )
            for ts, tilt, open_ in readings
        ],
        client_id=f"cover-{mqtt_root}",
    )
    expect(cover).to_have_class("pt asset manhole st-alarm", timeout=30_000)
    expect(open_alarms).to_have_text("2", timeout=30_000)
    dashboard.wait_for_function(
        "() => Chart.getChart(document.getElementById('chart-faults')).data.datasets.length === 1"
    )
    faults = chart(dashboard, "chart-faults", "c.data.datasets.map(d => [d.label, d.data])")
    assert faults == [["manhole covers", [2, 0, 0, 0]]]  # critical: a main road's cover

    # the centre clears both alarms through the API: the cover is normal again, live
    headers = api_headers(database_url, "admin")
    with httpx.Client(base_url=hub_child, headers=headers, timeout=10) as client:
        alarms = client.get("/alarms", params={"open": "true"}).json()
        assert sorted(a["alarm_type"] for a in alarms) == ["cover_open", "tilt"]
        for alarm in alarms:
            cleared = client.post(f"/alarms/{alarm['id']}/clear", json={"note": "cover back"})
            assert cleared.status_code == 200, cleared.text
    expect(cover).to_have_class("pt asset manhole st-ok")
    expect(open_alarms).to_have_text("0")


def test_dashboard_draws_faults_by_priority_and_occupancy_over_the_day(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], database_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    lot = {
        "type": "Polygon",
        "coordinates": [
            [[118.779, 32.049], [118.781, 32.049], [118.781, 32.051], [118.779, 32.049]]
        ],
    }
    with psycopg.connect(database_url) as conn:
        for device_id, kind, attributes in (
            ("PS-1", "parking", {"lot_id": "L1"}),
            ("PS-2", "parking", {"lot_id": "L1"}),
            ("LMP-1", "lighting", {}),
            ("LMP-2", "lighting", {}),
            ("MH-1", "manhole", {}),
            ("TRK-1", "truck", {}),
        ):
            conn.execute(
                "INSERT INTO devices (device_id, kind, name, lat, lon, grid_code, attributes)"
                " VALUES (%s, %s, %s, 32.05, 118.78, %s, %s::jsonb)",
                (device_id, kind, device_id, GRID, json.dumps(attributes)),
            )
        conn.execute(
            "INSERT INTO parking_lots (lot_id, name, capacity, lat, lon, geometry)"
            " VALUES ('L1', '一号停车场', 2, 32.05, 118.78, %s::jsonb)",
            (json.dumps(lot),),
        )
    # PS-1 holds a car from 6 h to 3 h ago, PS-2 stays free: the lot was half full for three
    # hours of the day and is empty now
    t0 = now - timedelta(hours=8)
    batch = spot_report_batch(
        [
            ("PS-1", t0, False),
            ("PS-2", t0, False),
            ("PS-1", now - timedelta(hours=6), True),
            ("PS-1", now - timedelta(hours=3), False),
            ("PS-2", now - timedelta(hours=1), False),
            ("PS-1", now - timedelta(minutes=30), False),
        ],
        now,
        battery_pct=80.0,
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        TelemetryWriter(conn).write_batch(batch)
    signals = [
        ("LMP-1", AlarmType.LAMP_OUT, Severity.MAJOR),
        ("LMP-2", AlarmType.OFFLINE, Severity.MINOR),
        ("MH-1", AlarmType.TILT, Severity.CRITICAL),
        ("TRK-1", AlarmType.OVERSPEED, Severity.MAJOR),  # a violation, not a fault
    ]
    store = served.hub.app.state.alarm_store
    store.apply(
        [
            alarm_signal(SignalAction.RAISE, now, source_id=s, alarm_type=a, severity=v)
            for s, a, v in signals
        ],
        now,
    )
    page = log_in(browser, contexts, served.url, "viewer")
    page.get_by_test_id("nav-dashboard").click()
    faults = chart(
        page, "chart-faults", "[c.data.labels, c.data.datasets.map(d => [d.label, d.data])]"
    )
    assert faults == [
        ["critical", "major", "minor", "warning"],
        [["lamps", [0, 1, 1, 0]], ["manhole covers", [1, 0, 0, 0]]],
    ]
    labels, series = chart(
        page,
        "chart-occupancy-day",
        "[c.data.labels, c.data.datasets.map(d => [d.label, d.data])]",
    )
    assert len(labels) in (25, 26)  # each hour of the last 24 (25 starts unless on the hour)
    assert labels[-1] == "now"
    assert [name for name, _ in series] == ["一号停车场"]
    occupancy = series[0][1]
    assert occupancy[-1] == 0  # empty now
    assert max(v for v in occupancy if v is not None) == 50  # one of two spots, for hours
    assert sum(1 for v in occupancy if v == 50) in (2, 3)  # hourly buckets in those 3 hours
    assert occupancy[0] is None  # a day ago nothing was known yet
    # lamp energy today vs yesterday with the lighting rate, and the departments' rates:
    # no meter data and no case due yet, so no district and no department (n/a, not 0 %)
    energy = chart(page, "chart-energy", "[c.data.labels, c.data.datasets.map(d => d.label)]")
    assert energy == [[], ["today", "yesterday", "lighting rate today"]]
    rates = chart(page, "chart-rates", "[c.data.labels, c.data.datasets.map(d => d.label)]")
    assert rates == [[], ["Closure rate", "on-time handling rate"]]
