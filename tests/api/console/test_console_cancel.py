"""The lighting page of the console lists commands not yet carried out, and a crew cancels a
pending one with a click (headless Chromium, real PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from hub.devices.lighting import CommandAction
from hub.store import lighting_commands as command_store
from tests.api.console.conftest import ServedHub, browser, contexts, log_in, served
from tests.services.test_lighting_command_effect import DISOBEYS, OBEYS, register

pytestmark = [pytest.mark.integration, pytest.mark.browser]
__all__ = ["browser", "contexts", "served"]  # the console's fixtures, used here


def test_a_crew_cancels_a_pending_command_from_the_lighting_page(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], database_url: str
) -> None:
    register(database_url)
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        ids = {}
        for lamp, action, level in (
            (OBEYS, CommandAction.DIM, 40.0),
            (DISOBEYS, CommandAction.ON, None),
        ):
            request = command_store.create_command_request(
                conn,
                target=lamp,
                action=action,
                params={} if level is None else {"dim_pct": level},
                now=now,
                ttl=timedelta(hours=1),
                max_attempts=3,
            )
            ids[lamp] = request.commands[0].command_id
    crew = log_in(browser, contexts, served.url, "crew")
    expect(crew.get_by_test_id("command-row")).to_have_count(2)
    expect(crew.get_by_test_id("commands-count")).to_have_text("2")
    row = crew.locator(f"[data-testid=command-row][data-command-id='{ids[OBEYS]}']")
    expect(row).to_contain_text("dim 40%")
    row.get_by_test_id("cancel-command").click()
    expect(crew.get_by_test_id("command-row")).to_have_count(1)
    expect(crew.get_by_test_id("commands-count")).to_have_text("1")
    with psycopg.connect(database_url) as conn:
        states: dict[str, str] = dict(
            conn.execute(
                "SELECT device_id, state FROM lighting_commands WHERE command_id = ANY(%s)",
                (list(ids.values()),),
            ).fetchall()
        )
    assert states == {OBEYS: "cancelled", DISOBEYS: "pending"}
