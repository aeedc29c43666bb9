"""The overview map with a city of 10,000 assets: at low zoom it draws clusters that account
for every asset (not 10,000 circles), an alarm raised and cleared recolours the cluster
holding it, a click on a cluster opens it down to the single assets, and the page keeps
answering to zoom, layer toggles and clicks."""

import json
import os
import random
from datetime import UTC, datetime

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction
from tests.api.console.conftest import ServedHub, log_in
from tests.store.cases.case_fixtures import GRID, alarm_signal

pytestmark = [pytest.mark.integration, pytest.mark.browser]

KINDS = {"lighting": 6000, "cabinet": 100, "truck": 200, "manhole": 2200, "parking": 1500}
TOTAL = sum(KINDS.values())
LAMP = "LIGHTING-01234"


def seed_big_city(database_url: str) -> None:
    """10,000 assets over about 10 km × 10 km."""
    rng = random.Random(22)
    with (
        psycopg.connect(database_url) as conn,
        conn.cursor() as cur,
        cur.copy(
            "COPY devices (device_id, kind, name, lat, lon, grid_code, attributes) FROM STDIN"
        ) as copy,
    ):
        for kind, n in KINDS.items():
            for i in range(n):
                copy.write_row(
                    (
                        f"{kind.upper()}-{i:05d}",
                        kind,
                        f"{kind} {i}",
                        32.0 + rng.uniform(0, 0.09),
                        118.75 + rng.uniform(0, 0.1),
                        GRID,
                        json.dumps({}),
                    )
                )


def counted(map_: Locator) -> int:
    """Assets the map accounts for: the clusters' counts plus the single points drawn."""
    return int(
        map_.evaluate(
            "m => [...m.querySelectorAll('g.cluster')]"
            ".reduce((n, g) => n + Number(g.dataset.count), 0)"
            " + m.querySelectorAll('circle.asset').length"
        )
    )


def raise_or_clear(served: ServedHub, action: SignalAction) -> None:
    now = datetime.now(UTC)
    signal = alarm_signal(
        action, now, source_id=LAMP, alarm_type=AlarmType.LAMP_OUT, severity=Severity.MAJOR
    )
    served.hub.fanout.publish_changes(served.hub.app.state.alarm_store.apply([signal], now))


def test_ten_thousand_assets_are_clustered_and_the_map_stays_usable(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], database_url: str
) -> None:
    seed_big_city(database_url)
    page: Page = log_in(browser, contexts, served.url, "viewer")
    page.set_default_timeout(30_000)
    page.get_by_test_id("nav-overview").click()
    overview = page.get_by_test_id("overview-map")
    expect(page.get_by_test_id("overview-layers")).to_contain_text("lamps (6000)")
    expect(overview.locator("g.cluster").first).to_be_visible()
    # every asset is in a cluster or drawn alone, and the page holds a few hundred shapes
    assert counted(overview) == TOTAL
    assert overview.locator("circle").count() < 1000
    if screens := os.environ.get("HUB_SCREENSHOTS"):  # a directory for the closing note
        page.screenshot(path=os.path.join(screens, "overview-10000.png"))
    expect(overview.locator("g.cluster.st-alarm")).to_have_count(0)

    # live: a lamp's alarm turns its cluster red, and clearing it turns it back
    expect(page.get_by_test_id("overview-live")).to_have_class("dot on")
    raise_or_clear(served, SignalAction.RAISE)
    alarmed = overview.locator(".lyr-lighting g.cluster.st-alarm")
    expect(alarmed).to_have_count(1)
    expect(alarmed).to_have_attribute("data-alarm", "1")
    raise_or_clear(served, SignalAction.CLEAR)
    expect(overview.locator("g.cluster.st-alarm")).to_have_count(0)
    raise_or_clear(served, SignalAction.RAISE)
    expect(alarmed).to_have_count(1)

    # a click opens the cluster: follow the red one down to the lamp itself
    lamp = overview.locator(f"circle[data-id='{LAMP}']")
    for _ in range(20):
        if lamp.count():
            break
        before = int(alarmed.get_attribute("data-count") or 0)
        alarmed.dispatch_event("click")
        expect(alarmed.or_(lamp).first).to_be_attached()
        if alarmed.count():
            page.wait_for_function(
                "n => { const g = document.querySelector('.lyr-lighting g.cluster.st-alarm');"
                " return !g || Number(g.dataset.count) < n; }",
                arg=before,
            )
    expect(lamp).to_have_class("pt asset lighting st-alarm")
    lamp.dispatch_event("click")
    expect(page.get_by_test_id("asset-title")).to_have_text("lighting 1234")
    expect(page.get_by_test_id("asset-alarms")).to_contain_text("lamp out")
    assert counted(overview) < TOTAL  # zoomed in: only what is in view

    # back out: the whole city in clusters again, and a layer can be switched off
    page.get_by_test_id("overview-map").get_by_role("button", name="⌂").click()
    page.wait_for_function(
        "n => [...document.querySelectorAll('#overview-map g.cluster')]"
        ".reduce((s, g) => s + Number(g.dataset.count), 0)"
        " + document.querySelectorAll('#overview-map circle.asset').length === n",
        arg=TOTAL,
    )
    page.get_by_test_id("layer-lighting").uncheck()
    expect(overview.locator(".lyr-lighting")).to_have_attribute("display", "none")
    expect(overview.locator(".lyr-manhole g.cluster").first).to_be_visible()
    box = overview.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    expect(
        overview.locator(".lyr-manhole g.cluster, .lyr-manhole circle.asset").first
    ).to_be_visible()
