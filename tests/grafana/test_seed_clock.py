"""The seeded overdue calls are overdue on every day the Grafana test may run."""

from datetime import UTC, datetime, timedelta

import pytest

from hub.cases.calendar import Stage, Urgency, load_calendar
from hub.cases.routing import load_case_policy
from tests.grafana.conftest import overdue_call_times

# A week around Sunday 2026-12-06, the start of the 2026 National Day holiday (a make-up
# Saturday follows it) and the Spring Festival, each at a few hours of the day.
RUN_DAYS = [datetime(2026, 12, 6, tzinfo=UTC) + timedelta(days=d) for d in range(7)] + [
    datetime(2026, 10, 3, tzinfo=UTC),
    datetime(2026, 10, 10, tzinfo=UTC),
    datetime(2026, 2, 20, tzinfo=UTC),
]


@pytest.mark.parametrize("day", RUN_DAYS, ids=lambda d: d.date().isoformat())
@pytest.mark.parametrize("hour", [0, 2, 8, 16, 23])
def test_calls_are_past_their_register_deadline(day: datetime, hour: int) -> None:
    calendar = load_calendar()
    limit = load_case_policy().deadlines.limit_for(
        Stage.REGISTER, "01003", Urgency.NORMAL, calendar
    )
    now = day + timedelta(hours=hour)
    for called_at in overdue_call_times(calendar, now):
        due_at = calendar.advance(called_at, limit.amount, basis=limit.basis)
        assert due_at is not None
        assert called_at < due_at < now
        assert calendar.is_working_day(calendar.local_date(called_at))
