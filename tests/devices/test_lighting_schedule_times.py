"""Schedule firing times, pure: offsets across local midnight, next fire times, catch-up.

The clock is a loop over injected instants (one control tick each), as the control thread
calls `schedule_due` and records `last_fired_at`; Asia/Shanghai has no DST.
"""

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from astral import Observer
from astral.sun import dawn, dusk
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.devices.lighting import (
    CommandAction,
    Schedule,
    SunEvent,
    latest_occurrence,
    next_occurrence,
    schedule_catch_up,
    schedule_due,
    schedule_instant,
    schedule_params,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
LAT, LON = 31.3, 120.6  # Suzhou
SUZHOU = Observer(latitude=LAT, longitude=LON)


def fixed(at: time, offset_min: int, **changes: object) -> Schedule:
    base = Schedule(
        1, "fixed", "all", CommandAction.DIM, {"dim_pct": 50}, at, None, offset_min, True, None
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def sun(event: SunEvent, offset_min: int, action: CommandAction = CommandAction.ON) -> Schedule:
    return Schedule(2, event.value, "all", action, {}, None, event, offset_min, True, None)


def run_ticks(
    schedule: Schedule, start: datetime, end: datetime, tick: timedelta
) -> list[tuple[datetime, datetime]]:
    """(tick time, instant fired for) for every firing while the clock runs start → end."""
    fired: list[tuple[datetime, datetime]] = []
    now = start
    while now <= end:
        due = schedule_due(schedule, now, SHANGHAI, LAT, LON)
        if due is not None:
            fired.append((now, due))
            schedule = replace(schedule, last_fired_at=due)
        now += tick
    return fired


def from_start(fired: list[tuple[datetime, datetime]], start: datetime) -> list[datetime]:
    """The instants fired at or after `start`; one before it fires only within the grace."""
    assert all(start - due <= timedelta(minutes=30) for _, due in fired if due < start)
    return [due for _, due in fired if due >= start]


def local(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("at", "offset_min", "fires_at"),
    [(time(0, 0), -10, time(23, 50)), (time(0, 20), -40, time(23, 40))],
)
def test_an_offset_back_past_local_midnight_fires_the_evening_before(
    at: time, offset_min: int, fires_at: time
) -> None:
    day = date(2026, 1, 11)
    fired = run_ticks(
        fixed(at, offset_min),
        local(day, 20, 0) - timedelta(days=1),
        local(day, 2, 0),
        timedelta(minutes=1),
    )
    expected = datetime.combine(day - timedelta(days=1), fires_at, SHANGHAI)
    assert [(tick, due) for tick, due in fired] == [(expected, expected)]


def test_dawn_minus_seven_hours_fires_the_evening_before() -> None:
    day = date(2026, 6, 21)
    fired = run_ticks(
        sun(SunEvent.DAWN, -420, CommandAction.OFF),
        local(day, 12, 0) - timedelta(days=1),
        local(day, 12, 0),
        timedelta(minutes=1),
    )
    expected = dawn(SUZHOU, day, tzinfo=SHANGHAI) - timedelta(minutes=420)
    assert len(fired) == 1
    tick, due = fired[0]
    assert due == expected
    assert timedelta(0) <= tick - due < timedelta(minutes=1)
    assert due.astimezone(SHANGHAI).date() == day - timedelta(days=1)


@settings(max_examples=60, deadline=None)
@given(
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    offset_min=st.integers(-720, 720),
    day=st.dates(date(2026, 1, 1), date(2026, 12, 28)),
    tick_min=st.integers(1, 10),
)
def test_fixed_time_fires_once_per_day_at_its_wall_time_plus_offset(
    hour: int, minute: int, offset_min: int, day: date, tick_min: int
) -> None:
    schedule = fixed(time(hour, minute), offset_min)
    start = local(day, 0, 0)
    end = start + timedelta(days=3)
    fired = run_ticks(schedule, start, end, timedelta(minutes=tick_min))
    expected = [
        t
        for d in range(-2, 5)
        if start
        <= (
            t := datetime.combine(day + timedelta(days=d), time(hour, minute), SHANGHAI)
            + timedelta(minutes=offset_min)
        )
        <= end
    ]
    # Every occurrence passed while the clock ran fires exactly once, within one tick of it.
    assert from_start(fired, start) == expected
    for tick, due in fired:
        if due < start:
            continue  # fired at the first tick, within the grace
        assert timedelta(0) <= tick - due < timedelta(minutes=tick_min)
        wall = due.astimezone(SHANGHAI)
        minutes = (hour * 60 + minute + offset_min) % 1440
        assert (wall.hour, wall.minute) == divmod(minutes, 60)


@settings(max_examples=20, deadline=None)
@given(
    event=st.sampled_from(SunEvent),
    offset_min=st.integers(-720, 720),
    day=st.dates(date(2026, 1, 1), date(2026, 12, 28)),
)
def test_sun_events_fire_once_per_day_at_the_event_plus_offset(
    event: SunEvent, offset_min: int, day: date
) -> None:
    schedule = sun(event, offset_min)
    start = local(day, 0, 0)
    end = start + timedelta(days=2)
    fired = run_ticks(schedule, start, end, timedelta(minutes=5))
    astro = dusk if event is SunEvent.DUSK else dawn
    expected = [
        t
        for d in range(-2, 4)
        if start
        <= (
            t := astro(SUZHOU, day + timedelta(days=d), tzinfo=SHANGHAI)
            + timedelta(minutes=offset_min)
        )
        <= end
    ]
    assert from_start(fired, start) == expected
    assert all(
        timedelta(0) <= tick - due < timedelta(minutes=5) for tick, due in fired if due >= start
    )


def test_next_fire_times_over_a_year_of_shanghai_days() -> None:
    night_on = sun(SunEvent.DUSK, 5)
    previous: datetime | None = None
    for n in range(365):
        day = date(2026, 1, 1) + timedelta(days=n)
        noon = local(day, 12, 0)
        upcoming = next_occurrence(night_on, noon, SHANGHAI, LAT, LON)
        assert upcoming == dusk(SUZHOU, day, tzinfo=SHANGHAI) + timedelta(minutes=5)
        assert latest_occurrence(night_on, upcoming, SHANGHAI, LAT, LON) == upcoming
        assert next_occurrence(night_on, upcoming, SHANGHAI, LAT, LON) != upcoming
        if previous is not None:
            # No DST: consecutive dusks are a day apart within a couple of minutes.
            assert abs(upcoming - previous - timedelta(days=1)) < timedelta(minutes=2)
        previous = upcoming
    assert (
        next_occurrence(
            replace(night_on, enabled=False), local(date(2026, 1, 1), 12, 0), SHANGHAI, LAT, LON
        )
        is None
    )


def test_a_fixed_time_shows_tomorrow_once_today_has_passed() -> None:
    midnight_dim = fixed(time(0, 0), -10)
    evening = local(date(2026, 1, 10), 23, 55)
    assert next_occurrence(midnight_dim, evening, SHANGHAI, LAT, LON) == local(
        date(2026, 1, 11), 23, 50
    )
    assert next_occurrence(
        midnight_dim, evening - timedelta(minutes=10), SHANGHAI, LAT, LON
    ) == local(date(2026, 1, 10), 23, 50)
    instant = schedule_instant(midnight_dim, date(2026, 1, 11), SHANGHAI, LAT, LON)
    assert instant == local(date(2026, 1, 10), 23, 50)
    assert instant is not None
    assert instant.tzinfo is UTC


def test_a_schedule_created_after_its_time_acts_when_its_state_holds() -> None:
    day = date(2026, 1, 10)
    today_dusk = dusk(SUZHOU, day, tzinfo=SHANGHAI) + timedelta(minutes=5)
    night_on = sun(SunEvent.DUSK, 5)
    # Created at 21:00, after dusk: the lamps should be on, so it acts now for today's dusk.
    assert schedule_catch_up(night_on, local(day, 21, 0), SHANGHAI, LAT, LON) == today_dusk
    # Past midnight it still holds until dawn.
    assert (
        schedule_catch_up(night_on, local(day, 23, 0) + timedelta(hours=4), SHANGHAI, LAT, LON)
        == today_dusk
    )
    # Created in the morning: the night is over, it waits for tonight.
    assert schedule_catch_up(night_on, local(day, 10, 0), SHANGHAI, LAT, LON) is None
    # Another schedule on the same lamps fired since (a midnight dim): that one's state holds.
    midnight = local(day + timedelta(days=1), 0, 0)
    assert (
        schedule_catch_up(night_on, midnight + timedelta(hours=1), SHANGHAI, LAT, LON, [midnight])
        is None
    )
    # Fired once already: only the regular firing applies.
    assert (
        schedule_catch_up(
            replace(night_on, last_fired_at=today_dusk), local(day, 21, 0), SHANGHAI, LAT, LON
        )
        is None
    )

    morning_off = sun(SunEvent.DAWN, -10, CommandAction.OFF)
    today_dawn = dawn(SUZHOU, day, tzinfo=SHANGHAI) - timedelta(minutes=10)
    assert schedule_catch_up(morning_off, local(day, 10, 0), SHANGHAI, LAT, LON) == today_dawn
    assert schedule_catch_up(morning_off, local(day, 21, 0), SHANGHAI, LAT, LON) is None

    midnight_dim = fixed(time(0, 0), 0)
    assert schedule_catch_up(midnight_dim, local(day, 3, 0), SHANGHAI, LAT, LON) == local(day, 0, 0)
    assert schedule_catch_up(midnight_dim, local(day, 20, 0), SHANGHAI, LAT, LON) is None


def test_dim_pct_goes_with_on_and_dim_as_in_commands() -> None:
    assert schedule_params(CommandAction.ON, 40) == {"dim_pct": 40}
    assert schedule_params(CommandAction.ON, None) == {}
    assert schedule_params(CommandAction.DIM, 0) == {"dim_pct": 0}
    with pytest.raises(ValueError, match="dim needs"):
        schedule_params(CommandAction.DIM, None)
    with pytest.raises(ValueError, match="off takes no"):
        schedule_params(CommandAction.OFF, 30)
