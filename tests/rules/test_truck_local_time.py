"""The permit rules' local minute and date, remembered per UTC minute, against the zone's own
conversion: zones with half- and quarter-hour offsets and with daylight saving included."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from hub.rules.truck_context import local_minute_and_date

ZONES = [
    UTC,
    ZoneInfo("Asia/Shanghai"),
    ZoneInfo("Asia/Kathmandu"),  # +05:45
    ZoneInfo("America/St_Johns"),  # -03:30, daylight saving
    ZoneInfo("Europe/London"),  # daylight saving
]


@given(
    at=st.datetimes(
        min_value=datetime(1970, 1, 2),  # noqa: DTZ001 - made aware by `timezones`
        max_value=datetime(2099, 12, 30),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    zone=st.sampled_from(ZONES),
    later_s=st.floats(min_value=0, max_value=59.999),
)
def test_local_minute_and_date_is_the_zones_own(
    at: datetime, zone: ZoneInfo, later_s: float
) -> None:
    for instant in (at, at.replace(second=0, microsecond=0) + timedelta(seconds=later_s), at):
        local = instant.astimezone(zone)
        expected = (local.hour * 60 + local.minute, local.date())
        assert local_minute_and_date(instant, zone) == expected
