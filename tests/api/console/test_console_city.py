"""The whole city in the console: the overview map (一张图) with a layer per asset kind coloured
by state, the manhole view with its recalibrate command, and the dashboard's figures and
charts (Chart.js served by the hub), from a small seeded city."""

import json
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction
from tests.api.console.conftest import ServedHub, log_in
from tests.store.cases.case_fixtures import GRID, alarm_signal

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# (device id, kind, lat, lon, attributes)
ASSETS = [
    ("LMP-1", "lighting", 32.050, 118.780, {}),
    ("LMP-2", "lighting", 32.051, 118.781, {}),
    ("CAB-1", "cabinet", 32.052, 118.779, {}),
    ("TRK-1", "truck", 32.049, 118.782, {}),
    ("MH-1", "manhole", 32.048, 118.778, {}),
    ("MH-2", "manhole", 32.047, 118.783, {}),
    ("PS-1", "parking", 32.0501, 118.7801, {"lot_id": "L1"}),
]
LOT = {
    "type": "Polygon",
    "coordinates": [[[118.779, 32.049], [118.781, 32.049], [118.781, 32.051], [118.779, 32.049]]],
}


def seed_city(served: ServedHub, database_url: str) -> None:
    """Seven assets, a lot, a cover's readings, a tilt alarm and an offline lamp."""
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        for device_id, kind, lat, lon, attributes in ASSETS:
            conn.execute(
                "INSERT INTO devices (device_id, kind, name, lat, lon, grid_code, attributes)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
                (device_id, kind, f"{device_id} 北京东路", lat, lon, GRID, json.dumps(attributes)),
            )
        conn.execute(
            "INSERT INTO parking_lots (lot_id, name, capacity, lat, lon, geometry)"
            " VALUES ('L1', '一号停车场', 10, 32.05, 118.78, %s::jsonb)",
            (json.dumps(LOT),),
        )
        for minutes, tilt in ((20, 1.0), (5, 12.0)):
            conn.execute(
                "INSERT INTO telemetry_manhole (device_id, ts, received_at, tilt_deg, cover_open,"
                " water_level_cm, battery_pct) VALUES ('MH-1', %s, %s, %s, false, 35, 80)",
                (now - timedelta(minutes=minutes), now, tilt),
            )
    changes = served.hub.app.state.alarm_store.apply(
        [
            alarm_signal(
                SignalAction.RAISE,
                now,
                source_id="MH-1",
                alarm_type=AlarmType.TILT,
                severity=Severity.MAJOR,
            ),
            alarm_signal(
                SignalAction.RAISE,
                now,
                source_id="LMP-2",
                alarm_type=AlarmType.OFFLINE,
                severity=Severity.MINOR,
            ),
        ],
        now,
    )
    served.hub.fanout.publish_changes(changes)


def open_view(page: Page, view: str) -> None:
    page.get_by_test_id(f"nav-{view}").click()
    expect(page.get_by_test_id(f"view-{view}")).to_be_visible()


def test_overview_map_has_a_layer_per_kind_coloured_by_state(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], database_url: str
) -> None:
    seed_city(served, database_url)
    page = log_in(browser, contexts, served.url, "viewer")
    open_view(page, "overview")
    overview = page.get_by_test_id("overview-map")
    expect(overview.locator("circle.asset")).to_have_count(len(ASSETS))
    expect(overview.locator("circle.st-alarm")).to_have_count(1)
    expect(overview.locator("circle.st-offline")).to_have_count(1)
    expect(overview.locator("circle.st-ok")).to_have_count(len(ASSETS) - 2)
    expect(overview.locator(".lyr-parking path")).to_have_count(1)  # the lot's outline
    expect(page.get_by_test_id("overview-layers")).to_contain_text("lamps (2)")
    lamps = overview.locator(".lyr-lighting")
    page.get_by_test_id("layer-lighting").uncheck()
    expect(lamps).to_have_attribute("display", "none")
    expect(overview.locator(".lyr-manhole circle").first).to_be_visible()
    page.get_by_test_id("layer-lighting").check()
    expect(lamps).to_have_attribute("display", "inline")

    overview.locator("circle[data-id='MH-1']").dispatch_event("click")
    detail = page.get_by_test_id("overview-detail")
    expect(detail.get_by_test_id("asset-title")).to_have_text("MH-1 北京东路")
    expect(detail.get_by_test_id("asset-state")).to_have_text("alarm", use_inner_text=True)
    expect(detail.get_by_test_id("asset-alarms")).to_contain_text("cover tilted")
    expect(detail.get_by_test_id("asset-latest")).to_contain_text("tilt_deg")

    # a new alarm arrives over the stream and the cover on the map turns red without a reload
    expect(page.get_by_test_id("overview-live")).to_have_class("dot on")
    now = datetime.now(UTC)
    changes = served.hub.app.state.alarm_store.apply(
        [alarm_signal(SignalAction.RAISE, now, source_id="MH-2", alarm_type=AlarmType.TILT)],
        now,
    )
    served.hub.fanout.publish_changes(changes)
    expect(overview.locator("circle[data-id='MH-2']")).to_have_class(re.compile(r"\bst-alarm\b"))


def test_manhole_view_shows_covers_and_sends_a_recalibration(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], database_url: str
) -> None:
    seed_city(served, database_url)
    viewer = log_in(browser, contexts, served.url, "viewer", lang="zh")
    open_view(viewer, "manholes")
    expect(viewer.get_by_test_id("manhole-row")).to_have_count(2)
    expect(viewer.get_by_test_id("manhole-count")).to_have_text("2")
    expect(viewer.get_by_test_id("manhole-alarmed")).to_have_text("1")
    first = viewer.get_by_test_id("manhole-row").first  # alarmed covers first
    expect(first).to_contain_text("MH-1")
    expect(first).to_contain_text("12°")
    expect(first).to_contain_text("35 cm")
    expect(first).to_contain_text("80%")
    expect(first.get_by_test_id("manhole-alarms")).to_have_text("井盖倾斜")
    expect(viewer.get_by_test_id("recalibrate")).to_have_count(0)  # read-only may not
    expect(viewer.get_by_test_id("manholes-map").locator("circle.st-alarm")).to_have_count(1)

    centre = log_in(browser, contexts, served.url, "centre")
    open_view(centre, "manholes")
    row = centre.locator("[data-testid=manhole-row][data-device='MH-1']")
    row.get_by_test_id("recalibrate").click()
    expect(row.get_by_test_id("recalibrate")).to_have_text("sent")
    with psycopg.connect(database_url) as conn:
        row_count = conn.execute(
            "SELECT count(*) FROM manhole_calibrations WHERE device_id = 'MH-1'"
        ).fetchone()
    assert row_count is not None
    assert row_count[0] >= 1


def test_dashboard_draws_the_citys_figures_with_the_bundled_charts(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], database_url: str
) -> None:
    seed_city(served, database_url)
    page = log_in(browser, contexts, served.url, "viewer", lang="zh")
    open_view(page, "dashboard")
    expect(page.get_by_test_id("tile-assets")).to_contain_text("7")
    expect(page.get_by_test_id("tile-alarms")).to_contain_text("2")
    expect(page.get_by_test_id("tile-assets")).to_contain_text("设施总数")
    # figures of the other domains read as far as the role may: no cases yet, no meter data
    expect(page.get_by_test_id("tile-closure-rate")).to_contain_text("本月结案率")
    expect(page.get_by_test_id("tile-energy")).to_contain_text("kWh")
    page.wait_for_function(
        "window.Chart && Chart.getChart(document.getElementById('chart-assets'))"
    )
    alarms = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-alarms')).data.datasets[0].data"
    )
    labels = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-alarms')).data.labels"
    )
    assert dict(zip(labels, alarms, strict=True)) == {
        "路灯": 1,
        "配电箱": 0,
        "渣土车": 0,
        "井盖": 1,
        "停车": 0,
    }
    parking = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-parking')).data.labels"
    )
    assert parking == ["一号停车场"]
    states = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-assets')).data.datasets"
        ".map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])"
    )
    assert states == [["正常", 5], ["告警", 1], ["离线", 1]]
    # the charts are drawn: the canvas has pixels that are not blank
    drawn = page.evaluate(
        "() => { const c = document.getElementById('chart-assets');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " return d.some((v, i) => i % 4 === 3 && v > 0); }"
    )
    assert drawn
