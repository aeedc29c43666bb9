"""What the hub writes itself (sources, timeline notes, department names) reads in the
console's language, and dates follow it: a case filed by policy from a cabinet trip, seen in
Chinese and then in English."""

import re
from datetime import UTC, datetime

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction, SourceKind
from hub.store.alarms import apply_signals
from hub.store.cases import file_due_alarms
from tests.api.console.conftest import ServedHub, log_in
from tests.store.cases.case_fixtures import alarm_signal, case_setup, register_device

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CABINET = "CAB-00042"
ZH_TIME = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}$")
EN_TIME = re.compile(r"^\d{2}/\d{2}/\d{4}, \d{2}:\d{2}:\d{2}$")


def _case_filed_by_policy(database_url: str) -> int:
    register_device(database_url, CABINET, kind="cabinet", class_code="01060")
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        signal = alarm_signal(
            SignalAction.RAISE,
            now,
            source_id=CABINET,
            alarm_type=AlarmType.CABINET_TRIP,
            severity=Severity.MAJOR,
            source_kind=SourceKind.GROUP,
        )
        apply_signals(conn, [signal], now)
        (filed,) = file_due_alarms(conn, case_setup(), now)
    assert filed.case is not None
    return filed.case.id


def test_server_texts_and_dates_follow_the_language(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], database_url: str
) -> None:
    case_id = _case_filed_by_policy(database_url)
    page = log_in(browser, contexts, served.url, "centre", lang="zh")
    page.evaluate(f"location.hash = '#cases/{case_id}'")
    detail = page.get_by_test_id("case-detail")
    expect(detail.get_by_test_id("detail-source")).to_have_text("传感器")
    expect(detail.get_by_test_id("detail-department")).to_have_text("路灯管理所")
    timeline = detail.get_by_test_id("case-timeline")
    items = timeline.locator("li")
    expect(items).to_have_count(3)  # filed, registered and dispatched by policy
    expect(items.nth(0)).to_contain_text(f"由设备 {CABINET} 的配电箱跳闸告警")
    expect(items.nth(1)).to_contain_text("按立案规则自动立案")
    expect(items.nth(2)).to_contain_text("按立案规则自动派遣")
    expect(timeline).to_contain_text("系统")
    expect(timeline).not_to_contain_text("filed from")
    expect(timeline).not_to_contain_text("system")
    assert ZH_TIME.match(items.nth(0).locator("time").inner_text())
    case_row = page.locator(f"[data-testid=case-row][data-case-id='{case_id}']")
    expect(case_row).to_contain_text("路灯管理所")

    page.get_by_test_id("lang-toggle").click()
    # the toggle draws the open view again in the other language
    detail = page.get_by_test_id("case-detail")
    expect(detail.get_by_test_id("detail-source")).to_have_text("sensor")
    expect(detail.get_by_test_id("detail-department")).to_have_text("Street lighting office")
    items = detail.get_by_test_id("case-timeline").locator("li")
    expect(items.nth(0)).to_contain_text("filed from cabinet trip alarm")
    expect(items.nth(0)).to_contain_text(f"of {CABINET}")
    expect(items.nth(1)).to_contain_text("registered by filing policy")
    assert EN_TIME.match(items.nth(0).locator("time").inner_text())
