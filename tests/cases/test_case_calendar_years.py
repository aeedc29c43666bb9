"""The calendar as data: years of holidays imported, how far they reach, the warning, flags."""

from dataclasses import replace
from datetime import date, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import pytest

from hub.cases.calendar import (
    CalendarError,
    calendar_expiry_warning,
    covered_until,
    load_calendar,
    parse_holiday_years,
    with_years,
)
from hub.cases.classification import ClassKind
from hub.cases.milestones import evaluate_stage_milestones
from hub.cases.routing import load_case_policy
from hub.cases.workflow import Action, CaseSource, CaseState, Role, apply_action, report_case

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOTICE_2027 = """\
years: [2027]
holidays:
  - {name: 元旦, first: 2027-01-01, last: 2027-01-03}
  - {name: 春节, first: 2027-02-06, last: 2027-02-14}
makeup_workdays: [2027-02-20]
"""


def test_the_packaged_calendar_knows_2025_and_2026() -> None:
    calendar = load_calendar()
    assert calendar.covers_until == date(2026, 12, 31)
    bundled = parse_holiday_years(
        resources.files("hub.cases").joinpath("calendar.yaml").read_bytes()
    )
    assert sorted(bundled.by_year()) == [2025, 2026]


def test_an_imported_year_extends_and_replaces() -> None:
    calendar = with_years(load_calendar(), parse_holiday_years(NOTICE_2027).by_year())
    assert calendar.covers_until == date(2027, 12, 31)
    assert not calendar.is_working_day(date(2027, 2, 8))  # 春节 2027, a Monday
    assert calendar.is_working_day(date(2027, 2, 20))  # a make-up Saturday
    assert not calendar.is_working_day(date(2026, 10, 1))  # 2026 still known
    # A corrected 2026 notice replaces the bundled 2026 days.
    corrected = parse_holiday_years(
        "holidays: [{name: 国庆节, first: 2026-10-01, last: 2026-10-02}]\n"
    )
    fixed = with_years(calendar, corrected.by_year())
    assert fixed.is_working_day(date(2026, 10, 5))
    assert fixed.covers_until == date(2027, 12, 31)


def test_coverage_stops_at_a_missing_year() -> None:
    assert covered_until([2025, 2026, 2028]) == date(2026, 12, 31)
    assert covered_until([]) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("years: [2027]\nholidays: []\n", r"no holidays given for \[2027\]"),
        (
            "years: [2027]\nholidays: [{name: x, first: 2028-01-01, last: 2028-01-01}]\n",
            r"outside years \[2027\]",
        ),
        ("- 2027\n", "must be a mapping"),
        ("holidays: [{name: x, first: 2027-01-02, last: 2027-01-01}]\n", "before"),
        ("holidays: [\n", "not valid YAML"),
    ],
)
def test_bad_imports_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        parse_holiday_years(text).by_year()


@pytest.mark.parametrize(
    ("today", "warned"),
    [
        (date(2026, 10, 31), False),  # 61 days before the end: not yet
        (date(2026, 11, 1), True),  # 60 days
        (date(2026, 12, 6), True),
        (date(2027, 1, 2), True),  # run out
    ],
)
def test_warning_from_60_days_before_the_calendar_runs_out(today: date, warned: bool) -> None:
    warning = calendar_expiry_warning(load_calendar(), today)
    assert (warning is not None) is warned
    if warning is not None:
        assert "2026-12-31" in warning
        assert "calendar import" in warning
    later = with_years(load_calendar(), parse_holiday_years(NOTICE_2027).by_year())
    assert calendar_expiry_warning(later, today) is None
    assert calendar_expiry_warning(replace(later, covers_until=None), today) is None


def _dispatched(at: datetime, class_code: str = "01037") -> CaseState:
    state, _ = report_case(
        case_id="C1",
        source=CaseSource.SENSOR,
        class_kind=ClassKind.MATTER,
        class_code=class_code,
        reported_at=at,
        actor_role=Role.SYSTEM,
        grid_code="320102001002003",
    )
    state, _ = apply_action(state, Action.REGISTER, Role.SYSTEM, at)
    state, _ = apply_action(
        state, Action.DISPATCH, Role.SYSTEM, at, {"department": "street_lighting"}
    )
    return state


def test_a_deadline_beyond_the_calendar_is_flagged() -> None:
    deadlines = load_case_policy().deadlines
    late_december = datetime(2026, 12, 29, 10, tzinfo=SHANGHAI)
    state = _dispatched(late_december)  # three working days: into 2027
    marks = evaluate_stage_milestones(state, calendar=load_calendar(), deadlines=deadlines)
    assert marks is not None
    assert marks.due_at is not None
    assert marks.due_at.astimezone(SHANGHAI).year == 2027
    assert marks.beyond_calendar
    known = with_years(load_calendar(), parse_holiday_years(NOTICE_2027).by_year())
    marks = evaluate_stage_milestones(state, calendar=known, deadlines=deadlines)
    assert marks is not None
    assert not marks.beyond_calendar
    # With 2027 known, 元旦 (1-3 January) is off: due Monday the 4th, not Friday the 1st.
    assert marks.due_at == datetime(2027, 1, 4, 10, tzinfo=SHANGHAI)
    early = _dispatched(late_december - timedelta(days=10))
    marks = evaluate_stage_milestones(early, calendar=load_calendar(), deadlines=deadlines)
    assert marks is not None
    assert not marks.beyond_calendar
