"""Holiday and festival calendars, weekday masks and scenes in schedule firing (pure)."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from astral import Observer
from astral.sun import dusk
from pydantic import ValidationError

from hub.devices.lighting import (
    CommandAction,
    Schedule,
    SunEvent,
    firing_command,
    next_occurrence,
    schedule_due,
    schedule_occurrences,
)
from hub.devices.lighting_calendar import (
    Calendar,
    CalendarMode,
    CalendarSpec,
    DayRules,
    Scene,
    SceneSpec,
    SceneStep,
    night_of,
    parse_weekdays,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
LAT, LON = 31.3, 120.6
NATIONAL_DAY = Calendar(
    "national-day",
    dates=frozenset({date(2026, 5, 1)}),
    ranges=((date(2026, 10, 1), date(2026, 10, 3)),),
    annual=frozenset({(1, 1)}),
)
FESTIVAL = Scene("festival", (SceneStep(0, 100.0), SceneStep(240, 60.0), SceneStep(420, 30.0)))


def schedule(
    *,
    at_local: time | None = None,
    sun_event: SunEvent | None = None,
    offset_min: int = 0,
    days: DayRules = DayRules(),  # noqa: B008 - frozen
    scene: Scene | None = None,
    action: CommandAction = CommandAction.DIM,
    last_fired_at: datetime | None = None,
) -> Schedule:
    params = {} if scene is not None else {"dim_pct": 100.0}
    return Schedule(
        1, "s", "all", action, params, at_local, sun_event, offset_min, True, last_fired_at,
        days, scene,
    )  # fmt: skip


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def fired(s: Schedule, first: date, last: date) -> list[datetime]:
    start = datetime.combine(first, time(0), SHANGHAI)
    end = datetime.combine(last, time(23, 59), SHANGHAI)
    return [t.astimezone(SHANGHAI) for t in schedule_occurrences(s, start, end, SHANGHAI, LAT, LON)]


def test_a_calendar_holds_its_dates_ranges_and_yearly_days() -> None:
    assert NATIONAL_DAY.contains(date(2026, 5, 1))
    assert not NATIONAL_DAY.contains(date(2027, 5, 1))  # a single date, not yearly
    assert all(NATIONAL_DAY.contains(date(2026, 10, d)) for d in (1, 2, 3))
    assert not NATIONAL_DAY.contains(date(2026, 10, 4))
    assert NATIONAL_DAY.contains(date(2031, 1, 1))  # yearly
    assert not NATIONAL_DAY.contains(date(2031, 1, 2))


def test_mornings_belong_to_the_night_before() -> None:
    day = date(2026, 10, 2)
    assert night_of(day, time(0, 30), dawn_anchored=False) == date(2026, 10, 1)
    assert night_of(day, time(11, 59), dawn_anchored=False) == date(2026, 10, 1)
    assert night_of(day, time(12, 0), dawn_anchored=False) == day
    assert night_of(day, None, dawn_anchored=True) == date(2026, 10, 1)
    assert night_of(day, None, dawn_anchored=False) == day


def test_a_holiday_dim_after_midnight_fires_in_the_small_hours_after_the_holiday() -> None:
    holiday = DayRules(calendar=Calendar("one", dates=frozenset({date(2026, 10, 1)})))
    late = schedule(at_local=time(0, 30), days=holiday)
    assert fired(late, date(2026, 9, 29), date(2026, 10, 4)) == [local(2026, 10, 2, 0, 30)]
    # 00:00 −10 of the night of the holiday is 23:50 on the holiday itself
    before = schedule(at_local=time(0, 0), offset_min=-10, days=holiday)
    assert fired(before, date(2026, 9, 29), date(2026, 10, 4)) == [local(2026, 10, 1, 23, 50)]
    # dusk + 30 on the holiday's evening; dawn − 20 the next morning
    evening = schedule(sun_event=SunEvent.DUSK, offset_min=30, days=holiday)
    (at,) = fired(evening, date(2026, 9, 29), date(2026, 10, 4))
    expected = dusk(Observer(LAT, LON), date(2026, 10, 1), tzinfo=SHANGHAI)
    assert abs(at - (expected + timedelta(minutes=30))) < timedelta(seconds=1)
    morning = schedule(sun_event=SunEvent.DAWN, offset_min=-20, days=holiday)
    (dawn_at,) = fired(morning, date(2026, 9, 29), date(2026, 10, 4))
    assert dawn_at.date() == date(2026, 10, 2)


def test_except_a_calendar_skips_its_nights_and_weekdays_mask_others() -> None:
    rules = DayRules(calendar=NATIONAL_DAY, mode=CalendarMode.EXCEPT)
    every = schedule(at_local=time(19, 0), days=rules)
    days = [t.date() for t in fired(every, date(2026, 9, 29), date(2026, 10, 5))]
    assert days == [date(2026, 9, 29), date(2026, 9, 30), date(2026, 10, 4), date(2026, 10, 5)]
    weekdays = DayRules(weekdays=parse_weekdays([1, 2, 3, 4, 5]))  # Monday to Friday
    working = schedule(at_local=time(23, 0), days=weekdays)
    got = fired(working, date(2026, 12, 7), date(2026, 12, 13))  # Monday 7th … Sunday 13th
    assert [t.day for t in got] == [7, 8, 9, 10, 11]
    # a small-hours firing on Saturday belongs to Friday's night
    small_hours = schedule(at_local=time(1, 0), days=weekdays)
    got = fired(small_hours, date(2026, 12, 7), date(2026, 12, 13))
    assert [t.day for t in got] == [8, 9, 10, 11, 12]


def test_the_next_firing_of_a_festival_schedule_is_months_ahead() -> None:
    festival = schedule(sun_event=SunEvent.DUSK, days=DayRules(calendar=NATIONAL_DAY))
    after = next_occurrence(festival, local(2026, 6, 1, 12, 0), SHANGHAI, LAT, LON)
    assert after is not None
    assert after.astimezone(SHANGHAI).date() == date(2026, 10, 1)


def test_a_scene_fires_its_steps_in_turn_with_their_levels() -> None:
    night = schedule(at_local=time(19, 0), scene=FESTIVAL, days=DayRules(calendar=NATIONAL_DAY))
    got = fired(night, date(2026, 10, 1), date(2026, 10, 1))
    # the evening of the 1st, and the small-hours steps of the night of 30 September are
    # not there: 30 September is no holiday
    assert got == [local(2026, 10, 1, 19, 0), local(2026, 10, 1, 23, 0)]
    steps = fired(night, date(2026, 10, 1), date(2026, 10, 2))
    assert steps[:3] == [local(2026, 10, 1, 19), local(2026, 10, 1, 23), local(2026, 10, 2, 2)]
    levels = [firing_command(night, t, SHANGHAI, LAT, LON) for t in steps[:3]]
    assert levels == [
        (CommandAction.DIM, {"dim_pct": 100.0}),
        (CommandAction.DIM, {"dim_pct": 60.0}),
        (CommandAction.DIM, {"dim_pct": 30.0}),
    ]
    # due in turn: the second step after the first has fired
    first = schedule_due(night, local(2026, 10, 1, 19, 1), SHANGHAI, LAT, LON)
    assert first == local(2026, 10, 1, 19, 0)
    done = schedule(
        at_local=time(19, 0),
        scene=FESTIVAL,
        days=DayRules(calendar=NATIONAL_DAY),
        last_fired_at=first,
    )
    assert schedule_due(done, local(2026, 10, 1, 20, 0), SHANGHAI, LAT, LON) is None
    assert schedule_due(done, local(2026, 10, 1, 23, 5), SHANGHAI, LAT, LON) == local(
        2026, 10, 1, 23, 0
    )


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "x"},  # no days at all
        {"name": "x", "annual": ["02-30"]},
        {"name": "x", "annual": ["10/01"]},
        {"name": "x", "ranges": [{"first": "2026-10-03", "last": "2026-10-01"}]},
        {"name": "x", "dates": ["2026-10-01"], "weekday": [1]},  # unknown key
    ],
)
def test_a_bad_calendar_is_refused(spec: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CalendarSpec.model_validate(spec)


@pytest.mark.parametrize(
    "steps",
    [
        [],
        [{"offset_min": 30, "dim_pct": 50}],  # first step not at 0
        [{"offset_min": 0, "dim_pct": 50}, {"offset_min": 0, "dim_pct": 20}],
        [{"offset_min": 0, "dim_pct": 50}, {"offset_min": 2000, "dim_pct": 20}],
        [{"offset_min": 0, "dim_pct": 150}],
    ],
)
def test_a_bad_scene_is_refused(steps: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        SceneSpec.model_validate({"name": "x", "steps": steps})


def test_good_specs_become_calendars_and_scenes() -> None:
    spec = CalendarSpec.model_validate(
        {
            "name": "spring festival",
            "dates": ["2027-02-06"],
            "ranges": [{"first": "2027-02-05", "last": "2027-02-11"}],
            "annual": ["01-01"],
        }
    )
    calendar = spec.calendar()
    assert calendar.contains(date(2027, 2, 8))
    assert calendar.contains(date(2040, 1, 1))
    scene = SceneSpec.model_validate(
        {"name": "half", "steps": [{"offset_min": 0, "dim_pct": 50}]}
    ).scene()
    assert scene == Scene("half", (SceneStep(0, 50.0),))
    with pytest.raises(ValueError, match="ISO"):
        parse_weekdays([0, 8])
