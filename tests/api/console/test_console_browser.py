"""The web console in headless Chromium: what each role sees, a case from register to close,
and a lighting fault appearing live without a reload."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction
from tests.api.access.access_fixtures import PASSWORD
from tests.api.console.conftest import ServedHub, log_in
from tests.store.cases.case_fixtures import GRID, alarm_signal, register_device

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CITY = {"overview", "dashboard"}
VIEWS = {
    "admin": {"cases", "centre", "evaluation", "faults", "trucks", "parking", "audit", "manholes"}
    | CITY,
    "centre": {"cases", "centre", "evaluation", "faults", "manholes"} | CITY,
    "drainage": {"cases", "centre"},
    "crew": {"faults"} | CITY,
    "enforcer": {"trucks"} | CITY,
    "parker": {"parking"} | CITY,
    "viewer": {"cases", "centre", "evaluation", "faults", "trucks", "parking", "manholes"} | CITY,
}


def nav_views(page: Page) -> set[str]:
    links = page.get_by_test_id("nav").locator("a")
    return {str(links.nth(i).get_attribute("data-view")) for i in range(links.count())}


def test_each_role_sees_only_its_views(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    for user, views in VIEWS.items():
        page = log_in(browser, contexts, served.url, user)
        assert nav_views(page) == views, user
        first = page.locator(".view:not([hidden])")
        expect(first).to_have_count(1)
        # asking for a view the role lacks shows its own first view instead
        page.evaluate("location.hash = '#audit'")
        expect(page.get_by_test_id("view-audit")).to_be_visible(visible=user == "admin")
        # and the API behind the console refuses what the role may not read
        cases = page.request.get(f"{served.url}/cases")
        assert cases.status == (200 if "cases" in views else 403), user
    crew = log_in(browser, contexts, served.url, "crew", lang="zh")
    expect(crew.get_by_test_id("nav-faults")).to_have_text("照明故障")
    crew.get_by_test_id("lang-toggle").click()
    expect(crew.get_by_test_id("nav-faults")).to_have_text("Lighting faults")
    expect(crew.get_by_test_id("faults-map").locator("svg")).to_be_visible()


def test_a_case_goes_from_register_to_close_in_the_browser(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext]
) -> None:
    centre = log_in(browser, contexts, served.url, "centre")
    start = datetime.now(UTC) - timedelta(hours=1)
    readings = [
        {
            "ts": (start + timedelta(minutes=10 * i)).isoformat(),
            "device_id": "mh-9",
            "values": {"tilt_deg": 2.0 + i * 3},
        }
        for i in range(6)
    ]
    created = centre.request.post(
        f"{served.url}/cases",
        data={
            "source": "inspector",
            "class_code": "01003",
            "description": "井盖倾斜",
            "lat": 32.05,
            "lon": 118.78,
            "grid_code": GRID,
            "evidence": {"readings": readings},
        },
    )
    assert created.status == 201, created.text()
    case_id = created.json()["id"]
    centre.evaluate(f"location.hash = '#cases/{case_id}'")
    detail = centre.get_by_test_id("case-detail")
    expect(detail.get_by_test_id("evidence-chart").locator("polyline")).to_have_count(1)
    expect(detail.get_by_test_id("case-map").locator("circle.case")).to_have_count(1)

    def step(page: Page, action: str, status: str) -> None:
        page.get_by_test_id(f"action-{action}").click()
        expect(page.get_by_test_id("detail-status")).to_have_attribute("data-status", status)

    expect(centre.get_by_test_id("action-accept")).to_have_count(0)  # a department's action
    step(centre, "register", "registered")
    centre.get_by_test_id("action-department").select_option("drainage")
    step(centre, "dispatch", "dispatched")

    department = log_in(browser, contexts, served.url, "drainage")
    department.evaluate(f"location.hash = '#cases/{case_id}'")
    expect(department.get_by_test_id("action-register")).to_have_count(0)
    step(department, "accept", "in_progress")
    department.get_by_test_id("action-note").fill("更换井盖")
    step(department, "feedback", "handled")
    other = log_in(browser, contexts, served.url, "water")
    assert other.request.get(f"{served.url}/cases/{case_id}").status == 404

    centre.reload()
    step(centre, "send-for-verification", "verifying")
    # Separated duties: the dispatcher may not verify the work (核查); another centre user does.
    inspector = log_in(browser, contexts, served.url, "inspector")
    inspector.evaluate(f"location.hash = '#cases/{case_id}'")
    step(inspector, "verify-pass", "verified")
    centre.reload()
    step(centre, "close", "closed")
    expect(centre.get_by_test_id("case-actions")).not_to_contain_text("Close")
    timeline = centre.get_by_test_id("case-timeline").locator("li")
    expect(timeline).to_have_count(8)  # report + seven steps
    expect(timeline.nth(3)).to_contain_text("user:drainage")


def test_a_new_lighting_fault_appears_without_reload(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], database_url: str
) -> None:
    register_device(database_url, "lamp-77", kind="lighting", class_code="01037")
    crew = log_in(browser, contexts, served.url, "crew")
    expect(crew.get_by_test_id("faults-live")).to_have_class("dot on")
    expect(crew.get_by_test_id("fault-row")).to_have_count(0)
    expect(crew.get_by_test_id("faults-map").locator("circle.lamp")).to_have_count(1)

    now = datetime.now(UTC)
    changes = served.hub.app.state.alarm_store.apply(
        [
            alarm_signal(
                SignalAction.RAISE,
                now,
                source_id="lamp-77",
                alarm_type=AlarmType.LAMP_OUT,
                severity=Severity.MAJOR,
            )
        ],
        now,
    )
    served.hub.fanout.publish_changes(changes)
    row = crew.locator("[data-testid=fault-row][data-source=lamp-77]")
    expect(row).to_be_visible()
    expect(crew.get_by_test_id("faults-count")).to_have_text("1")
    expect(crew.get_by_test_id("faults-map").locator("circle.fault")).to_have_count(1)
    row.get_by_test_id("ack").click()  # the crew acknowledges; the change comes back live
    expect(row).to_contain_text("acknowledged")


CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""
LOT = (
    '{"type": "Polygon", "coordinates": [[[118.779, 32.049], [118.781, 32.049],'
    " [118.781, 32.051], [118.779, 32.049]]]}"
)


def test_every_view_runs_under_the_content_security_policy(
    served: ServedHub, browser: Browser, contexts: list[BrowserContext], database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO parking_lots (lot_id, name, capacity, lat, lon, geometry)"
            " VALUES ('L1', '一号停车场', 10, 32.05, 118.78, %s::jsonb)",
            (LOT,),
        )
    response = browser.new_context().request.get(f"{served.url}/console/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    context = browser.new_context(locale="en-GB")
    context.add_init_script(CSP_WATCH)
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{served.url}/console/")
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("who").filter(has_text="admin").wait_for()
    for view in VIEWS["admin"]:
        page.evaluate(f"location.hash = '#{view}'")
        expect(page.get_by_test_id(f"view-{view}")).to_be_visible()
    page.evaluate("location.hash = '#parking'")
    bar = page.get_by_test_id("parking-row").locator(".bar i")
    expect(bar).to_have_count(1)
    # the occupancy bar's width is set through the CSSOM, which the policy allows
    assert bar.evaluate("e => e.style.width") == "0%"
    assert page.evaluate("window.__cspViolations") == []
