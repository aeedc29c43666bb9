"""Tests of working-time arithmetic, pauses, deadlines and lights."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hub.cases.calendar import (
    Basis,
    CalendarError,
    Light,
    Pause,
    Stage,
    Urgency,
    WorkingCalendar,
    WorkingPeriod,
    load_calendar,
    parse_calendar_yaml,
)
from hub.cases.deadlines import DeadlineRule, DeadlineTable, evaluate_light, evaluate_stage_clock

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAL = load_calendar()


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """An instant given in Shanghai wall-clock time, as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def test_packaged_calendar_days() -> None:
    assert CAL.working_day == timedelta(hours=7, minutes=30)
    assert CAL.is_working_day(date(2026, 3, 16))  # Monday
    assert not CAL.is_working_day(date(2026, 3, 14))  # Saturday
    assert not CAL.is_working_day(date(2026, 4, 6))  # 清明节 Monday
    assert CAL.is_working_day(date(2026, 2, 28))  # 调休 Saturday
    assert CAL.is_working_day(date(2026, 1, 4))  # 调休 Sunday
    assert not CAL.is_working_day(date(2026, 10, 7))  # 国庆节


@pytest.mark.parametrize(
    ("start", "hours_h", "expected"),
    [
        # within a morning
        (local(2026, 3, 16, 9), 2, local(2026, 3, 16, 11)),
        # across the lunch break 12:00-13:30
        (local(2026, 3, 16, 11), 2, local(2026, 3, 16, 14, 30)),
        # ending exactly at noon stays at noon
        (local(2026, 3, 16, 11), 1, local(2026, 3, 16, 12)),
        # starting in the lunch break
        (local(2026, 3, 16, 12, 30), 1, local(2026, 3, 16, 14, 30)),
        # starting before work
        (local(2026, 3, 16, 6), 1, local(2026, 3, 16, 9, 30)),
        # across a weekend: Friday 16:30 + 2 h → Monday 09:30
        (local(2026, 3, 13, 16, 30), 2, local(2026, 3, 16, 9, 30)),
        # across 清明 (Sat 4 - Mon 6 April): Friday 17:00 + 1 h → Tuesday 09:00
        (local(2026, 4, 3, 17), 1, local(2026, 4, 7, 9)),
        # into a make-up Saturday: Friday 27 Feb 17:00 + 1 h → Saturday 28 Feb 09:00
        (local(2026, 2, 27, 17), 1, local(2026, 2, 28, 9)),
        # across 春节: make-up Sat 14 Feb 17:00 + 1 h → Tuesday 24 Feb 09:00
        (local(2026, 2, 14, 17), 1, local(2026, 2, 24, 9)),
        # a make-up Sunday after 元旦: Friday 2 Jan is a holiday, Sunday 4 Jan works
        (local(2025, 12, 31, 17), 1, local(2026, 1, 4, 9)),
        # a full working day
        (local(2026, 3, 16, 10), 7.5, local(2026, 3, 17, 10)),
    ],
)
def test_add_working_hours(start: datetime, hours_h: float, expected: datetime) -> None:
    assert CAL.add_working_hours(start, hours_h) == expected
    assert CAL.working_hours_between(start, expected) == pytest.approx(hours_h)


def test_add_working_days() -> None:
    assert CAL.add_working_days(local(2026, 3, 16, 10), 2) == local(2026, 3, 18, 10)
    # Thursday 10:00 + 2 working days skips the weekend
    assert CAL.add_working_days(local(2026, 3, 19, 10), 2) == local(2026, 3, 23, 10)


def test_elapsed_outside_working_time_is_zero() -> None:
    assert CAL.elapsed(local(2026, 3, 14, 9), local(2026, 3, 15, 18)) == timedelta()
    assert CAL.elapsed(local(2026, 3, 16, 12), local(2026, 3, 16, 13, 30)) == timedelta()
    assert CAL.elapsed(local(2026, 3, 16, 13), local(2026, 3, 16, 9)) == timedelta()


def test_extension_pause_excludes_the_granted_working_time() -> None:
    dispatched_at = local(2026, 3, 16, 9)
    extension = Pause(start_at=local(2026, 3, 16, 10), granted=timedelta(hours=7.5))
    now_at = local(2026, 3, 18, 10)
    # Monday 09:00-17:30 = 7 h, Tuesday 7.5 h, Wednesday 08:30-10:00 = 1.5 h
    assert CAL.elapsed(dispatched_at, now_at) == timedelta(hours=16)
    # the extension stops the clock from Monday 10:00 to Tuesday 10:00
    assert CAL.elapsed(dispatched_at, now_at, pauses=[extension]) == timedelta(hours=8.5)


def test_extension_cut_short_when_the_stage_ends() -> None:
    start_at = local(2026, 3, 16, 9)
    extension = Pause(
        start_at=local(2026, 3, 16, 10),
        end_at=local(2026, 3, 16, 11),
        granted=timedelta(hours=7.5),
    )
    assert CAL.elapsed(start_at, local(2026, 3, 16, 15), pauses=[extension]) == timedelta(hours=3.5)


def test_suspension_pause_open_and_lifted() -> None:
    start_at = local(2026, 3, 16, 9)
    open_pause = Pause(start_at=local(2026, 3, 16, 11))
    # an open suspension stops the clock for good: no due instant
    assert CAL.elapsed(start_at, local(2026, 3, 30, 9), pauses=[open_pause]) == timedelta(hours=2)
    assert CAL.advance(start_at, timedelta(hours=3), pauses=[open_pause]) is None
    lifted = Pause(start_at=local(2026, 3, 16, 11), end_at=local(2026, 3, 17, 11))
    assert CAL.advance(start_at, timedelta(hours=3), pauses=[lifted]) == local(2026, 3, 17, 12)


def test_overlapping_pauses_are_not_double_counted() -> None:
    start_at = local(2026, 3, 16, 8, 30)
    pauses = [
        Pause(start_at=local(2026, 3, 16, 9), end_at=local(2026, 3, 16, 11)),
        Pause(start_at=local(2026, 3, 16, 10), end_at=local(2026, 3, 16, 11, 30)),
    ]
    assert CAL.elapsed(start_at, local(2026, 3, 16, 12), pauses=pauses) == timedelta(hours=1)


def test_absolute_hours_ignore_the_calendar() -> None:
    friday_night = local(2026, 4, 3, 20)
    assert CAL.advance(friday_night, timedelta(hours=6), basis=Basis.ABSOLUTE) == local(
        2026, 4, 4, 2
    )
    pause = Pause(start_at=local(2026, 4, 3, 21), end_at=local(2026, 4, 3, 22))
    assert CAL.elapsed(
        friday_night, local(2026, 4, 4, 2), basis=Basis.ABSOLUTE, pauses=[pause]
    ) == timedelta(hours=5)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(CalendarError, match="timezone-aware"):
        CAL.elapsed(datetime(2026, 3, 16, 9), local(2026, 3, 16, 10))  # noqa: DTZ001 - naive on purpose


def test_negative_amount_is_refused() -> None:
    with pytest.raises(CalendarError, match="negative"):
        CAL.advance(local(2026, 3, 16, 9), timedelta(hours=-1))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("working_periods: [['13:30', '17:30'], ['08:30', '14:00']]", "sorted"),
        ("working_periods: [['12:00', '08:30']]", "empty"),
        ("working_periods: [['08:30', '25:00']]", "String should match pattern"),
        ("working_periods: []", "at least 1"),
        ("timezone: Mars/Olympus\nworking_periods: [['08:30', '12:00']]", "unknown time zone"),
        (
            "working_periods: [['08:30', '12:00']]\n"
            "holidays: [{name: x, first: 2026-01-01, last: 2026-01-02}]\n"
            "makeup_workdays: [2026-01-02]",
            "both holiday and make-up",
        ),
        (
            "working_periods: [['08:30', '12:00']]\n"
            "holidays: [{name: x, first: 2026-01-03, last: 2026-01-02}]",
            "before",
        ),
    ],
)
def test_calendar_config_errors(text: str, message: str) -> None:
    with pytest.raises((CalendarError, ValidationError), match=message):
        parse_calendar_yaml(text)


def test_calendar_without_any_working_day_fails_instead_of_looping() -> None:
    never = WorkingCalendar(
        tz=SHANGHAI,
        periods=(WorkingPeriod(time(9), time(17)),),
        weekend_isodays=frozenset(range(1, 8)),
    )
    with pytest.raises(CalendarError, match="no working time"):
        never.add_working_hours(local(2026, 3, 16, 9), 1)


@pytest.mark.parametrize(
    ("percent", "light"),
    [
        (0, Light.GREEN),
        (79, Light.GREEN),
        (80, Light.YELLOW),
        (100, Light.YELLOW),
        (101, Light.RED),
    ],
)
def test_light_thresholds(percent: int, light: Light) -> None:
    limit = timedelta(hours=10)
    assert evaluate_light(limit * percent / 100, limit) is light


def test_light_just_below_80_percent_is_green() -> None:
    limit = timedelta(hours=10)
    assert evaluate_light(timedelta(hours=8) - timedelta(microseconds=1), limit) is Light.GREEN
    assert evaluate_light(timedelta(hours=10, microseconds=1), limit) is Light.RED


TABLE = DeadlineTable.model_validate(
    {
        "rules": [
            {"stage": "register", "working_h": 1},
            {"stage": "dispatch", "working_h": 1},
            {"stage": "handle", "working_days": 2},
            {"stage": "verify", "working_h": 4},
            {"stage": "handle", "urgency": "urgent", "working_h": 4},
            {"stage": "handle", "class_codes": ["01"], "working_days": 3},
            {"stage": "handle", "class_codes": ["01037"], "working_days": 5},
            {"stage": "handle", "class_codes": ["01011"], "urgency": "urgent", "absolute_h": 6},
        ]
    }
)


@pytest.mark.parametrize(
    ("class_code", "urgency", "amount", "basis"),
    [
        ("06011", Urgency.NORMAL, timedelta(hours=15), Basis.WORKING),
        ("06011", Urgency.URGENT, timedelta(hours=4), Basis.WORKING),
        ("01003", Urgency.NORMAL, timedelta(hours=22.5), Basis.WORKING),
        ("01037", Urgency.NORMAL, timedelta(hours=37.5), Basis.WORKING),
        ("01037", Urgency.URGENT, timedelta(hours=4), Basis.WORKING),
        ("01011", Urgency.URGENT, timedelta(hours=6), Basis.ABSOLUTE),
    ],
)
def test_deadline_rule_precedence(
    class_code: str, urgency: Urgency, amount: timedelta, basis: Basis
) -> None:
    limit = TABLE.limit_for(Stage.HANDLE, class_code, urgency, CAL)
    assert (limit.amount, limit.basis) == (amount, basis)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"stage": "register", "working_h": 1}], "stage dispatch needs a rule for any class"),
        (
            [
                *({"stage": s, "working_h": 1} for s in Stage),
                {"stage": "handle", "working_h": 2},
            ],
            "both set stage handle for class \\* and urgency any",
        ),
        ([{"stage": "register", "working_h": 1, "absolute_h": 2}], "exactly one of"),
        ([{"stage": "register", "working_h": 0}], "greater than 0"),
        ([{"stage": "register", "working_h": 1, "class_codes": ["0103"]}], "5 ASCII digits"),
    ],
)
def test_deadline_table_validation(rules: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DeadlineTable.model_validate({"rules": rules})


def test_rule_limit_kinds() -> None:
    rule = DeadlineRule(stage=Stage.VERIFY, working_days=1)
    assert rule.limit(CAL).amount == CAL.working_day


def test_stage_clock_light_due_and_overdue() -> None:
    limit = TABLE.limit_for(Stage.HANDLE, "06011", Urgency.URGENT, CAL)  # 4 working hours
    started_at = local(2026, 3, 16, 9)
    clock = evaluate_stage_clock(
        CAL, Stage.HANDLE, limit, started_at=started_at, now_at=local(2026, 3, 16, 14, 42)
    )
    assert clock.elapsed == timedelta(hours=4, minutes=12)
    assert clock.due_at == local(2026, 3, 16, 14, 30)
    assert clock.light is Light.RED
    assert clock.overdue
    assert clock.ratio == pytest.approx(1.05)
    finished = evaluate_stage_clock(
        CAL,
        Stage.HANDLE,
        limit,
        started_at=started_at,
        ended_at=local(2026, 3, 16, 13, 45),
        now_at=local(2026, 3, 20, 9),
    )
    assert finished.light is Light.YELLOW
    assert not finished.overdue


_instants = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2026, 12, 31),  # noqa: DTZ001 - hypothesis bounds are naive
    timezones=st.just(UTC),
)


@given(start_at=_instants, amount_min=st.integers(min_value=0, max_value=60 * 200))
def test_adding_then_measuring_working_time_round_trips(
    start_at: datetime, amount_min: int
) -> None:
    amount = timedelta(minutes=amount_min)
    end_at = CAL.advance(start_at, amount)
    assert end_at is not None
    assert end_at >= start_at
    assert CAL.elapsed(start_at, end_at) == amount


@given(
    start_at=_instants,
    amount_min=st.integers(min_value=0, max_value=60 * 100),
    pause_offsets_min=st.lists(
        st.tuples(st.integers(0, 60 * 24 * 10), st.integers(1, 60 * 24 * 3)), max_size=3
    ),
    basis=st.sampled_from(Basis),
)
def test_round_trip_with_pauses_on_both_bases(
    start_at: datetime,
    amount_min: int,
    pause_offsets_min: list[tuple[int, int]],
    basis: Basis,
) -> None:
    pauses = [
        Pause(
            start_at=start_at + timedelta(minutes=offset),
            end_at=start_at + timedelta(minutes=offset + length),
        )
        for offset, length in pause_offsets_min
    ]
    amount = timedelta(minutes=amount_min)
    end_at = CAL.advance(start_at, amount, basis=basis, pauses=pauses)
    assert end_at is not None
    assert CAL.elapsed(start_at, end_at, basis=basis, pauses=pauses) == amount
    assert CAL.elapsed(start_at, end_at, basis=basis) >= amount
