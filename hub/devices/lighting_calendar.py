"""Lighting calendars and scenes, as data: which nights a schedule runs and what it dims to.

TALQ-style day rules: a named calendar is a set of days given by date rules (single dates,
date ranges, dates recurring every year such as a festival's month and day); a schedule
combines a weekday mask with a calendar it runs `only` on or on every day `except`. Its
time rule (a fixed local time, or civil dusk/dawn with an offset) stays in the schedule.

A day rule selects *nights*: a night is named after the local date its evening falls on. An
occurrence anchored at dusk or at a fixed time from 12:00 belongs to its own date; one anchored
at dawn or at a fixed time before 12:00 belongs to the night before, so a holiday schedule's
00:30 dim fires in the small hours after the holiday's evening, not before it.

A scene is a named dimming profile: steps of (minutes after the schedule's instant, dim
level); a schedule that applies it fires each step in turn. No I/O: the store loads them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, time, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NOON = time(12, 0)
"""Fixed times before noon belong to the night that began the evening before."""
MAX_SCENE_SPAN_MIN = 16 * 60
"""A scene's last step is at most 16 h after its first (one night, at any latitude we serve)."""


class CalendarMode(StrEnum):
    """How a schedule uses its calendar: only on its days, or on every other day."""

    ONLY = "only"
    EXCEPT = "except"


@dataclass(frozen=True, slots=True)
class Calendar:
    """A named set of days: single dates, inclusive ranges, and (month, day) every year."""

    name: str
    dates: frozenset[date] = frozenset()
    ranges: tuple[tuple[date, date], ...] = ()
    annual: frozenset[tuple[int, int]] = frozenset()

    def contains(self, day: date) -> bool:
        """Whether a local date is one of the calendar's days."""
        return (
            day in self.dates
            or (day.month, day.day) in self.annual
            or any(first <= day <= last for first, last in self.ranges)
        )


@dataclass(frozen=True, slots=True)
class SceneStep:
    """One step of a dimming profile: `offset_min` after the schedule's instant, `dim_pct`."""

    offset_min: int
    dim_pct: float


@dataclass(frozen=True, slots=True)
class Scene:
    """A named dimming profile, steps in time order, the first at offset 0."""

    name: str
    steps: tuple[SceneStep, ...]


@dataclass(frozen=True, slots=True)
class DayRules:
    """Which nights a schedule runs: ISO weekdays (1 Monday … 7 Sunday; empty: all) and an
    optional calendar used `only` or `except`."""

    weekdays: frozenset[int] = frozenset()
    calendar: Calendar | None = None
    mode: CalendarMode = CalendarMode.ONLY

    def runs(self, night: date) -> bool:
        """Whether the schedule runs on the night named `night`."""
        if self.weekdays and night.isoweekday() not in self.weekdays:
            return False
        if self.calendar is None:
            return True
        return self.calendar.contains(night) is (self.mode is CalendarMode.ONLY)


EVERY_NIGHT = DayRules()


def night_of(anchor_day: date, at_local: time | None, dawn_anchored: bool) -> date:
    """The night an occurrence anchored on local `anchor_day` belongs to (see module doc)."""
    morning = dawn_anchored if at_local is None else at_local < NOON
    return anchor_day - timedelta(days=1) if morning else anchor_day


# -- validation at the API (pydantic) -----------------------------------------------------


def _month_day(text: str) -> tuple[int, int]:
    """'MM-DD' as (month, day); ValueError unless it names a day of a leap year."""
    month_s, _, day_s = text.partition("-")
    if not (month_s.isdigit() and day_s.isdigit() and len(month_s) == 2 and len(day_s) == 2):
        raise ValueError(f"{text!r} is not MM-DD")
    month, day = int(month_s), int(day_s)
    date(2000, month, day)  # raises ValueError for 02-30, 13-01, …
    return month, day


class DateRange(BaseModel):
    """Inclusive local dates."""

    model_config = ConfigDict(extra="forbid")

    first: date
    last: date

    @model_validator(mode="after")
    def _ordered(self) -> "DateRange":
        if self.last < self.first:
            raise ValueError("a range's last date is not before its first")
        return self


class CalendarSpec(BaseModel):
    """A calendar as the API takes it: `dates`, `ranges` and `annual` ('MM-DD') rules."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w .:-]+$")
    description: str = Field(default="", max_length=500)
    dates: list[date] = Field(default_factory=list, max_length=1000)
    ranges: list[DateRange] = Field(default_factory=list, max_length=200)
    annual: list[str] = Field(default_factory=list, max_length=366)

    @field_validator("annual")
    @classmethod
    def _annual_days(cls, value: list[str]) -> list[str]:
        for text in value:
            _month_day(text)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> "CalendarSpec":
        if not (self.dates or self.ranges or self.annual):
            raise ValueError("a calendar needs at least one date, range or annual day")
        return self

    def calendar(self) -> Calendar:
        """The pure calendar."""
        return Calendar(
            name=self.name,
            dates=frozenset(self.dates),
            ranges=tuple((r.first, r.last) for r in self.ranges),
            annual=frozenset(_month_day(t) for t in self.annual),
        )


class SceneStepSpec(BaseModel):
    """A step as the API takes it."""

    model_config = ConfigDict(extra="forbid")

    offset_min: int = Field(ge=0, le=MAX_SCENE_SPAN_MIN)
    dim_pct: float = Field(ge=0, le=100)


class SceneSpec(BaseModel):
    """A scene as the API takes it: steps with distinct offsets, the first at 0."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w .:-]+$")
    description: str = Field(default="", max_length=500)
    steps: list[SceneStepSpec] = Field(min_length=1, max_length=24)

    @model_validator(mode="after")
    def _steps_in_order(self) -> "SceneSpec":
        offsets = [s.offset_min for s in self.steps]
        if offsets[0] != 0 or offsets != sorted(set(offsets)):
            raise ValueError("steps are in time order with distinct offsets, the first at 0")
        return self

    def scene(self) -> Scene:
        """The pure scene."""
        return Scene(self.name, tuple(SceneStep(s.offset_min, s.dim_pct) for s in self.steps))


def parse_weekdays(values: Iterable[int]) -> frozenset[int]:
    """ISO weekdays 1-7; ValueError for anything else."""
    days = frozenset(values)
    if any(d < 1 or d > 7 for d in days):
        raise ValueError("weekdays are ISO numbers, 1 (Monday) to 7 (Sunday)")
    return days
