"""`utc_seconds` is `datetime.timestamp()`, float for float, over every datetime."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from hub.rules.condition import utc_seconds

_offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(at=st.datetimes(timezones=st.just(UTC)))
def test_a_utc_datetime_has_the_timestamp_of_its_fields(at: datetime) -> None:
    assert utc_seconds(at) == at.timestamp()


_SINCE_YEAR_2 = datetime(2, 1, 1)  # noqa: DTZ001 - st.datetimes takes naive bounds


@given(at=st.datetimes(min_value=_SINCE_YEAR_2, timezones=_offsets))
def test_any_other_aware_datetime_has_its_timestamp(at: datetime) -> None:
    assert utc_seconds(at) == at.timestamp()


def test_the_edges() -> None:
    for at in (
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2255, 6, 5, 23, 47, 34, 740_992, tzinfo=UTC),  # near 2**53 microseconds
        datetime(2026, 12, 7, 10, 50, 1, 123_456, tzinfo=UTC),
    ):
        assert utc_seconds(at) == at.timestamp(), at
