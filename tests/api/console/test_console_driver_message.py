"""Enforcement sends a text to a truck's driver from the console and sees the terminal's answer
(the route's own path to the terminal is tested in tests/ingest/jt808/test_driver_messages.py)."""

import json
from datetime import UTC, datetime

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.api.console.conftest import ServedHub, log_in
from tests.store.cases.case_fixtures import GRID

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_a_text_to_the_driver_and_the_terminals_answer(
    browser: Browser, contexts: list[BrowserContext], served: ServedHub, database_url: str
) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, name, lat, lon, grid_code, attributes)"
            " VALUES ('TRK-1', 'truck', '苏A12345', 32.049, 118.782, %s, %s::jsonb)",
            (GRID, json.dumps({"plate": "苏A12345"})),
        )
        conn.execute(
            "INSERT INTO telemetry_truck (device_id, ts, received_at, lat, lon, speed_kmh,"
            " heading_deg, acc_on, body_lifted, cover_closed, load)"
            " VALUES ('TRK-1', %s, %s, 32.049, 118.782, 20, 90, true, false, true, 'full')",
            (now, now),
        )
    sent: list[dict[str, object]] = []

    def send(kind: object, device_id: str, document: dict[str, object]) -> bool:
        sent.append({"device_id": device_id, **document})
        return True

    served.hub.app.state.truck_commands = send  # what `hub run` wires to MQTT
    page = log_in(browser, contexts, served.url, "enforcer")
    page.get_by_test_id("nav-trucks").click()
    expect(page.get_by_test_id("truck-count")).to_have_text("1")
    page.locator('[data-testid="trucks-map"] [data-id="TRK-1"]').first.click()
    expect(page.get_by_test_id("driver-message")).to_be_visible()
    expect(page.get_by_test_id("driver-message-truck")).to_have_text("TRK-1")
    page.get_by_test_id("driver-message-text").fill("请按核准路线行驶")
    page.get_by_test_id("driver-message-send").click()
    status = page.get_by_test_id("driver-message-status")
    expect(status).to_contain_text("waiting for the terminal")
    assert len(sent) == 1
    assert (sent[0]["device_id"], sent[0]["action"], sent[0]["text"]) == (
        "TRK-1",
        "text",
        "请按核准路线行驶",
    )
    # The terminal's 0x0001 answer reaches the store as a cmd/ack.
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO command_acks (device_id, command_id, result, ts, received_at)"
            " VALUES ('TRK-1', %s, 'ok', now(), now())",
            (sent[0]["command_id"],),
        )
    expect(status).to_have_text("terminal answered: received", timeout=15_000)


def test_roles_that_may_not_send_see_no_form(
    browser: Browser, contexts: list[BrowserContext], served: ServedHub, database_url: str
) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, name, lat, lon, grid_code)"
            " VALUES ('TRK-1', 'truck', 'TRK-1', 32.049, 118.782, %s)",
            (GRID,),
        )
        conn.execute(
            "INSERT INTO telemetry_truck (device_id, ts, received_at, lat, lon, speed_kmh,"
            " heading_deg, acc_on, body_lifted, cover_closed, load)"
            " VALUES ('TRK-1', %s, %s, 32.049, 118.782, 20, 90, true, false, true, 'full')",
            (now, now),
        )
    page = log_in(browser, contexts, served.url, "viewer")
    page.get_by_test_id("nav-trucks").click()
    expect(page.get_by_test_id("truck-count")).to_have_text("1")
    page.locator('[data-testid="trucks-map"] [data-id="TRK-1"]').first.click()
    expect(page.get_by_test_id("driver-message")).to_be_hidden()
