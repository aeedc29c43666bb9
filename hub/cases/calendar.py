"""Working-time calendar of the case workflow (stage deadlines are in hub.cases.deadlines).

Instants are timezone-aware UTC; the calendar knows the city's local zone, its working
periods, weekends, public holidays and make-up working days (调休). A stage clock counts
either working time or absolute time, and stops during paused intervals (an approved
extension or suspension).
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

_MAX_SCAN_DAYS = 366 * 20
_FAR_FUTURE_AT = datetime.max.replace(tzinfo=UTC)
_ISO_DAYS = range(1, 8)


class CalendarError(ValueError):
    """A calendar or deadline configuration is inconsistent, or an instant is not aware."""


class Basis(StrEnum):
    """How a stage clock counts: working time on the calendar, or wall-clock hours."""

    WORKING = "working"
    ABSOLUTE = "absolute"


class Stage(StrEnum):
    """A timed stage of the case workflow, named after the step that ends it."""

    REGISTER = "register"
    DISPATCH = "dispatch"
    HANDLE = "handle"
    VERIFY = "verify"


class Urgency(StrEnum):
    """Case urgency; urgent cases may have shorter or absolute-hour limits."""

    NORMAL = "normal"
    URGENT = "urgent"


class Light(StrEnum):
    """Stage light: green below 80% of the limit, yellow 80-100%, red beyond."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


def require_aware(at: datetime, name: str = "instant") -> datetime:
    """Return `at` in UTC, refusing naive datetimes."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise CalendarError(f"{name} must be timezone-aware, got {at!r}")
    return at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Pause:
    """A stop of the stage clock from `start_at`.

    A suspension runs until `end_at` (None while it lasts); an extension stops the clock
    for `granted` working time, cut short at `end_at` when the stage ends earlier.
    """

    start_at: datetime
    end_at: datetime | None = None
    granted: timedelta | None = None


@dataclass(frozen=True, slots=True)
class WorkingPeriod:
    """A working period of a working day, in local wall-clock time."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """The city's working time: periods per working day, weekends, holidays, make-up days."""

    tz: ZoneInfo
    periods: tuple[WorkingPeriod, ...]
    weekend_isodays: frozenset[int] = frozenset({6, 7})
    holidays: frozenset[date] = frozenset()
    makeup_workdays: frozenset[date] = frozenset()
    # The last local date whose holidays are known (None: not bounded, e.g. a test calendar).
    # Beyond it days are judged by the weekday alone, and deadlines there are flagged.
    covers_until: date | None = None

    def covers(self, at: datetime) -> bool:
        """True when the holidays of the local date of `at` are known."""
        return self.covers_until is None or self.local_date(at) <= self.covers_until

    def __post_init__(self) -> None:
        if not self.periods:
            raise CalendarError("a working calendar needs at least one working period")
        previous_end = time.min
        for index, period in enumerate(self.periods):
            if period.start >= period.end:
                raise CalendarError(f"working period {period.start}-{period.end} is empty")
            if index and period.start < previous_end:
                raise CalendarError("working periods must be sorted and must not overlap")
            previous_end = period.end
        if not self.weekend_isodays <= set(_ISO_DAYS):
            raise CalendarError("weekend days are ISO weekdays 1 (Monday) to 7 (Sunday)")
        both = self.holidays & self.makeup_workdays
        if both:
            raise CalendarError(f"days both holiday and make-up working day: {sorted(both)}")

    @property
    def working_day(self) -> timedelta:
        """The working time of one full working day."""
        day = date(2000, 1, 3)
        return sum(
            (datetime.combine(day, p.end) - datetime.combine(day, p.start) for p in self.periods),
            timedelta(),
        )

    def is_working_day(self, day: date) -> bool:
        """True on make-up working days, false on holidays, else by the weekday."""
        if day in self.makeup_workdays:
            return True
        if day in self.holidays:
            return False
        return day.isoweekday() not in self.weekend_isodays

    def local_date(self, at: datetime) -> date:
        """The local calendar date of an instant."""
        return require_aware(at).astimezone(self.tz).date()

    def _periods_on(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        for period in self.periods:
            start_at = datetime.combine(day, period.start, tzinfo=self.tz).astimezone(UTC)
            end_at = datetime.combine(day, period.end, tzinfo=self.tz).astimezone(UTC)
            yield start_at, end_at

    def _counting_spans(
        self, start_at: datetime, basis: Basis
    ) -> Iterator[tuple[datetime, datetime]]:
        """Ascending spans from `start_at` on during which the clock runs (before pauses)."""
        if basis is Basis.ABSOLUTE:
            span_start_at = start_at
            while span_start_at < _FAR_FUTURE_AT - timedelta(days=2):
                span_end_at = span_start_at + timedelta(days=1)
                yield span_start_at, span_end_at
                span_start_at = span_end_at
            return
        day = start_at.astimezone(self.tz).date()
        for _ in range(_MAX_SCAN_DAYS):
            if self.is_working_day(day):
                for period_start_at, period_end_at in self._periods_on(day):
                    clipped_start_at = max(period_start_at, start_at)
                    if period_end_at > clipped_start_at:
                        yield clipped_start_at, period_end_at
            day += timedelta(days=1)
        raise CalendarError(f"no working time found within {_MAX_SCAN_DAYS} days of {start_at}")

    def _resolve_pauses(self, pauses: Iterable[Pause]) -> list[tuple[datetime, datetime]]:
        """Pauses as merged, sorted UTC intervals; an open pause runs to the far future."""
        intervals: list[tuple[datetime, datetime]] = []
        for pause in pauses:
            start_at = require_aware(pause.start_at, "pause start")
            end_at = _FAR_FUTURE_AT
            if pause.granted is not None:
                granted_end_at = self.advance(start_at, pause.granted)
                end_at = granted_end_at if granted_end_at is not None else _FAR_FUTURE_AT
            if pause.end_at is not None:
                end_at = min(end_at, require_aware(pause.end_at, "pause end"))
            if end_at > start_at:
                intervals.append((start_at, end_at))
        intervals.sort()
        merged: list[tuple[datetime, datetime]] = []
        for start_at, end_at in intervals:
            if merged and start_at <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end_at))
            else:
                merged.append((start_at, end_at))
        return merged

    def _running_spans(
        self, start_at: datetime, basis: Basis, pauses: Iterable[Pause]
    ) -> Iterator[tuple[datetime, datetime]]:
        """Spans during which the clock runs: counting spans minus pauses."""
        paused = self._resolve_pauses(pauses)
        for span_start_at, span_end_at in self._counting_spans(start_at, basis):
            cursor_at = span_start_at
            for pause_start_at, pause_end_at in paused:
                if pause_end_at <= cursor_at or pause_start_at >= span_end_at:
                    continue
                if pause_start_at > cursor_at:
                    yield cursor_at, pause_start_at
                cursor_at = max(cursor_at, pause_end_at)
                if cursor_at >= _FAR_FUTURE_AT:
                    return
            if cursor_at < span_end_at:
                yield cursor_at, span_end_at

    def elapsed(
        self,
        start_at: datetime,
        end_at: datetime,
        *,
        basis: Basis = Basis.WORKING,
        pauses: Iterable[Pause] = (),
    ) -> timedelta:
        """Clock time between two instants, excluding non-working time (if working) and pauses."""
        start_at = require_aware(start_at, "start")
        end_at = require_aware(end_at, "end")
        total = timedelta()
        if end_at <= start_at:
            return total
        for span_start_at, span_end_at in self._running_spans(start_at, basis, pauses):
            if span_start_at >= end_at:
                break
            total += min(span_end_at, end_at) - span_start_at
        return total

    def advance(
        self,
        start_at: datetime,
        amount: timedelta,
        *,
        basis: Basis = Basis.WORKING,
        pauses: Iterable[Pause] = (),
    ) -> datetime | None:
        """The instant at which `amount` of clock time has run from `start_at`.

        None when an open pause stops the clock for good before the amount is reached.
        """
        start_at = require_aware(start_at, "start")
        if amount < timedelta():
            raise CalendarError(f"cannot advance by a negative amount {amount}")
        if amount == timedelta():
            return start_at
        remaining = amount
        for span_start_at, span_end_at in self._running_spans(start_at, basis, pauses):
            span = span_end_at - span_start_at
            if span >= remaining:
                return span_start_at + remaining
            remaining -= span
        return None

    def add_working_hours(self, start_at: datetime, hours_h: float) -> datetime:
        """The instant `hours_h` working hours after `start_at`."""
        result_at = self.advance(start_at, timedelta(hours=hours_h))
        if result_at is None:  # pragma: no cover - only open pauses stop the clock
            raise CalendarError("working time never runs out without pauses")
        return result_at

    def add_working_days(self, start_at: datetime, days: int) -> datetime:
        """The instant `days` full working days (of `working_day` length) after `start_at`."""
        return self.add_working_hours(start_at, days * self.working_day / timedelta(hours=1))

    def working_hours_between(
        self, start_at: datetime, end_at: datetime, pauses: Iterable[Pause] = ()
    ) -> float:
        """Working hours between two instants, excluding pauses."""
        return self.elapsed(start_at, end_at, pauses=pauses) / timedelta(hours=1)


# --- configuration -----------------------------------------------------------------

_HhMm = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class HolidayModel(BaseModel):
    """A public holiday stretch, first and last day inclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    first: date
    last: date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.last < self.first:
            raise ValueError(f"holiday {self.name}: last day {self.last} before {self.first}")
        return self


class HolidayYearsModel(BaseModel):
    """The holidays and make-up working days of whole years (a State Council notice each).

    `years` names the years the file covers; without it, the years of its days. A year
    listed without any holiday is an error: every notice has some.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    years: list[Annotated[int, Field(ge=2000, le=2200)]] = []
    holidays: list[HolidayModel] = []
    makeup_workdays: list[date] = []

    @model_validator(mode="after")
    def _within_years(self) -> Self:
        if not self.years:
            return self
        listed = set(self.years)
        for holiday in self.holidays:
            if holiday.first.year not in listed:
                raise ValueError(
                    f"holiday {holiday.name} {holiday.first} is outside years {sorted(listed)}"
                )
        for day in self.makeup_workdays:
            if day.year not in listed:
                raise ValueError(f"make-up working day {day} is outside years {sorted(listed)}")
        return self

    def covered_years(self) -> list[int]:
        """The years this file gives, sorted."""
        if self.years:
            return sorted(set(self.years))
        return sorted(
            {h.first.year for h in self.holidays} | {d.year for d in self.makeup_workdays}
        )

    def by_year(self) -> dict[int, "HolidayYearsModel"]:
        """One model per covered year (a holiday belongs to the year it starts in)."""
        bare = {
            year: HolidayYearsModel(
                years=[year],
                holidays=[h for h in self.holidays if h.first.year == year],
                makeup_workdays=[d for d in self.makeup_workdays if d.year == year],
            )
            for year in self.covered_years()
        }
        empty = [year for year, model in bare.items() if not model.holidays]
        if empty:
            raise CalendarError(f"no holidays given for {empty}: import a year's whole notice")
        return bare


def holiday_dates(holidays: Iterable[HolidayModel]) -> frozenset[date]:
    """Every day of the holiday stretches."""
    return frozenset(
        h.first + timedelta(days=offset)
        for h in holidays
        for offset in range((h.last - h.first).days + 1)
    )


def covered_until(years: Iterable[int]) -> date | None:
    """The last day of the unbroken run of years that starts at the earliest one."""
    ordered = sorted(set(years))
    if not ordered:
        return None
    last = ordered[0]
    for year in ordered[1:]:
        if year != last + 1:
            break
        last = year
    return date(last, 12, 31)


def with_years(
    calendar: WorkingCalendar, years: Mapping[int, HolidayYearsModel]
) -> WorkingCalendar:
    """The calendar with these years' holidays and make-up days replacing its own for them.

    The calendar then covers its own years and these: `covers_until` is the end of the
    unbroken run of known years from the first.
    """
    replaced = set(years)
    holidays = {d for d in calendar.holidays if d.year not in replaced}
    makeup = {d for d in calendar.makeup_workdays if d.year not in replaced}
    for model in years.values():
        holidays |= holiday_dates(model.holidays)
        makeup |= set(model.makeup_workdays)
    known = replaced | _years_until(calendar)
    return replace(
        calendar,
        holidays=frozenset(holidays),
        makeup_workdays=frozenset(makeup),
        covers_until=covered_until(known),
    )


def _years_until(calendar: WorkingCalendar) -> set[int]:
    """The years a calendar knows, from its first holiday's year to `covers_until`."""
    if calendar.covers_until is None:
        return set()
    days = calendar.holidays | calendar.makeup_workdays
    first = min((d.year for d in days), default=calendar.covers_until.year)
    return set(range(first, calendar.covers_until.year + 1))


def calendar_expiry_warning(
    calendar: WorkingCalendar, today: date, warn_days: int = 60
) -> str | None:
    """A warning from `warn_days` before the loaded holidays run out, else None."""
    if calendar.covers_until is None:
        return None
    left = (calendar.covers_until - today).days
    if left > warn_days:
        return None
    if left < 0:
        return (
            f"the working calendar ended on {calendar.covers_until}: deadlines are computed"
            " without holidays and flagged; import the new year's holidays"
            " (python -m hub calendar import FILE)"
        )
    return (
        f"the working calendar ends on {calendar.covers_until} ({left} days left): import"
        " the next year's holidays (python -m hub calendar import FILE)"
    )


class CalendarModel(BaseModel):
    """The calendar file: zone, working periods, weekend, holidays and make-up working days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Asia/Shanghai"
    working_periods: list[tuple[_HhMm, _HhMm]] = Field(min_length=1)
    weekend_isodays: list[Annotated[int, Field(ge=1, le=7)]] = [6, 7]
    years: list[Annotated[int, Field(ge=2000, le=2200)]] = []
    holidays: list[HolidayModel] = []
    makeup_workdays: list[date] = []

    def holiday_years(self) -> HolidayYearsModel:
        """The holidays part of the file, as an import of whole years."""
        return HolidayYearsModel(
            years=self.years, holidays=self.holidays, makeup_workdays=self.makeup_workdays
        )

    def to_calendar(self) -> WorkingCalendar:
        """Build the calendar; raises CalendarError when the periods or days conflict."""
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise CalendarError(f"unknown time zone {self.timezone!r}") from err
        holidays = holiday_dates(self.holidays)
        return WorkingCalendar(
            tz=tz,
            periods=tuple(
                WorkingPeriod(time.fromisoformat(start), time.fromisoformat(end))
                for start, end in self.working_periods
            ),
            weekend_isodays=frozenset(self.weekend_isodays),
            holidays=frozenset(holidays),
            makeup_workdays=frozenset(self.makeup_workdays),
            covers_until=covered_until(self.holiday_years().covered_years()),
        )


def parse_calendar_yaml(text: str) -> WorkingCalendar:
    """Validate a calendar YAML document and build the calendar."""
    return CalendarModel.model_validate(yaml.safe_load(text)).to_calendar()


def parse_holiday_years(text: str | bytes) -> HolidayYearsModel:
    """A holidays import (YAML or JSON): whole years of holidays and make-up working days.

    A full calendar file (like the packaged `calendar.yaml`) is accepted too; its working
    periods and zone are not imported (they are configuration, `HUB_CALENDAR_FILE`).
    CalendarError says what is wrong.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CalendarError(f"calendar file is not valid YAML or JSON: {err}") from err
    if not isinstance(document, dict):
        raise CalendarError("calendar file must be a mapping with holidays and makeup_workdays")
    try:
        if "working_periods" in document:
            return CalendarModel.model_validate(document).holiday_years()
        return HolidayYearsModel.model_validate(document)
    except ValidationError as err:
        raise CalendarError(f"calendar file is invalid:\n{err}") from err


@cache
def load_calendar() -> WorkingCalendar:
    """The packaged calendar (`calendar.yaml`), read once per process."""
    text = resources.files("hub.cases").joinpath("calendar.yaml").read_text(encoding="utf-8")
    return parse_calendar_yaml(text)
