"""The calendar in PostgreSQL: `python -m hub calendar import`, the merged calendar, and a
case whose deadline falls beyond the loaded calendar flagged until the next year is in."""

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from hub.__main__ import main as hub_main
from hub.cases.calendar import load_calendar
from hub.cases.intake import draft_person_case
from hub.cases.workflow import Action, Role
from hub.store.calendar import fetch_imports, fetch_working_calendar
from hub.store.cases import act_on_case, case_document, open_case
from tests.cases_store.case_fixtures import case_setup, hotline_report

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
