"""The calendar in PostgreSQL: `python -m hub calendar import`, the merged calendar, and a
case whose deadline falls beyond the loaded calendar flagged until the next year is in."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.__main__ import main as hub_main
from hub.api import cases as cases_api
from hub.api.app import create_app
from hub.cases.calendar import load_calendar
from hub.cases.intake import draft_person_case
from hub.cases.workflow import Action, Role
from hub.store.calendar import fetch_imports, fetch_working_calendar
from hub.store.cases import CaseStore, act_on_case, case_document, open_case
from hub.store.database import Database
from tests.store.cases.case_fixtures import case_setup, hotline_report

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOTICE_2027 = """\
years: [2027]
holidays:
  - {name: 元旦, first: 2027-01-01, last: 2027-01-03}
  - {name: 春节, first: 2027-02-06, last: 2027-02-14}
makeup_workdays: [2027-02-20]
"""


def test_import_then_deadlines_use_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    setup = case_setup()
    called_at = datetime(2026, 12, 30, 10, tzinfo=SHANGHAI)
    with psycopg.connect(database_url) as conn:
        assert fetch_working_calendar(conn, setup.calendar) == setup.calendar
        record = open_case(conn, setup, draft_person_case(setup, hotline_report()), called_at)
        for action, role, payload in (
            (Action.REGISTER, Role.INTAKE_OPERATOR, {}),
            (Action.DISPATCH, Role.DISPATCHER, {"department": "drainage"}),
        ):
            record, _ = act_on_case(conn, setup, record.id, action, role, called_at, payload)
        flagged = conn.execute(
            "SELECT stage_due_beyond_calendar FROM cases WHERE id = %s", (record.id,)
        ).fetchone()
    # Two working days from 30 December end in 2027, past the bundled 2025/2026 notices.
    assert case_document(setup, record)["deadline_beyond_calendar"] is True
    assert flagged == (True,)

    notice = tmp_path / "holidays-2027.yaml"
    notice.write_text(NOTICE_2027, encoding="utf-8")
    assert hub_main(["calendar", "import", str(notice), "--actor", "admin:wang"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("years: [2028]\nholidays: []\n", encoding="utf-8")
    assert hub_main(["calendar", "import", str(bad)]) == 1
    assert hub_main(["calendar", "show"]) == 0

    with psycopg.connect(database_url) as conn:
        calendar = fetch_working_calendar(conn, load_calendar())
        ((years, source, who, _),) = fetch_imports(conn)
        known = replace(setup, calendar=calendar)
        record, _ = act_on_case(
            conn,
            known,
            record.id,
            Action.ATTACH_EVIDENCE,
            Role.INTAKE_OPERATOR,
            called_at,
            {"evidence": "photo"},
        )
    assert (years, source, who) == ([2027], "holidays-2027.yaml", "admin:wang")
    assert calendar.covers_until is not None
    assert calendar.covers_until.year == 2027
    assert case_document(known, record)["deadline_beyond_calendar"] is False
    assert record.milestones is not None
    # 元旦 2027 is off: due Monday 4 January at 10:00, not Friday 1 January.
    assert record.milestones.due_at == datetime(2027, 1, 4, 10, tzinfo=SHANGHAI)


def test_health_warns_60_days_before_the_calendar_runs_out(database_url: str) -> None:
    db = Database(database_url, max_size=2)
    db.open()
    try:
        base = case_setup()
        today = base.calendar.local_date(datetime.now(UTC))
        warned: dict[int, list[str]] = {}
        for days_left in (30, 90):
            calendar = replace(base.calendar, covers_until=today + timedelta(days=days_left))
            state = {"case_store": CaseStore(db, replace(base, calendar=calendar))}
            app = create_app(db, CollectorRegistry(), routers=[], state=state)
            with TestClient(app) as client:
                response = client.get("/health")
            assert response.status_code == 200, response.text
            warned[days_left] = response.json()["warnings"]
    finally:
        db.close()
    (warning,) = warned[30]
    assert "(30 days left)" in warning
    assert warned[90] == []


def test_import_route_takes_effect_at_once(db: Database) -> None:
    store = CaseStore(db, case_setup())
    app = create_app(
        db, CollectorRegistry(), routers=[cases_api.router], state={"case_store": store}
    )
    with TestClient(app) as client:
        before = client.get("/calendar").json()
        bad = client.post("/calendar/import", content=b"years: [2028]\nholidays: []\n")
        imported = client.post(
            "/calendar/import",
            params={"source": "国办发明电〔2026〕1号"},
            content=NOTICE_2027.encode(),
            headers={"Content-Type": "application/yaml"},
        )
    assert before["covers_until"] == "2026-12-31"
    assert before["imported_years"] == []
    assert bad.status_code == 422
    assert "no holidays given for [2028]" in bad.json()["detail"]
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert body["covers_until"] == "2027-12-31"
    assert body["imported_years"] == [2027]
    assert body["imports"][0]["source"] == "国办发明电〔2026〕1号"
    assert store.setup.calendar.covers_until is not None
    assert store.setup.calendar.covers_until.year == 2027
