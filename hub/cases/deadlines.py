"""Stage deadlines of a case and the green/yellow/red light of a stage clock.

A deadline table (the routing policy's `deadlines:`) gives each workflow stage its time
limit, in working days, working hours or absolute hours; the most specific rule for the
case's class code and urgency wins. A stage clock counts elapsed time on the working
calendar (hub.cases.calendar) from the stage's start, less paused intervals, and its light
turns yellow from 80 % of the limit and red past it.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.cases.calendar import (
    Basis,
    CalendarError,
    Light,
    Pause,
    Stage,
    Urgency,
    WorkingCalendar,
    require_aware,
)
from hub.cases.classification import validate_class_code


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """A stage limit: an amount of clock time on a basis."""

    amount: timedelta
    basis: Basis


def _class_selector(value: str) -> str:
    """A class selector: a 2-digit major or a 5-digit class code."""
    if len(value) == 2 and value.isascii() and value.isdigit():
        return value
    return validate_class_code(value)


def class_specificity(selectors: Sequence[str], class_code: str) -> int | None:
    """How specifically selectors match a class: 2 exact, 1 major, 0 any, None no match."""
    if not selectors:
        return 0
    if class_code in selectors:
        return 2
    if class_code[:2] in selectors:
        return 1
    return None


class DeadlineRule(BaseModel):
    """A limit for one stage, optionally narrowed to classes (code or major) and an urgency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Stage
    class_codes: list[str] = []
    urgency: Urgency | None = None
    working_h: float | None = Field(default=None, gt=0)
    working_days: int | None = Field(default=None, gt=0)
    absolute_h: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        given = [v for v in (self.working_h, self.working_days, self.absolute_h) if v is not None]
        if len(given) != 1:
            raise ValueError(
                f"deadline for stage {self.stage}: give exactly one of "
                "working_h, working_days, absolute_h"
            )
        for selector in self.class_codes:
            _class_selector(selector)
        return self

    def limit(self, calendar: WorkingCalendar) -> TimeLimit:
        """The limit as clock time; working days count `calendar.working_day` each."""
        if self.absolute_h is not None:
            return TimeLimit(timedelta(hours=self.absolute_h), Basis.ABSOLUTE)
        if self.working_days is not None:
            return TimeLimit(self.working_days * calendar.working_day, Basis.WORKING)
        if self.working_h is not None:
            return TimeLimit(timedelta(hours=self.working_h), Basis.WORKING)
        raise CalendarError(f"deadline for stage {self.stage} has no limit")  # pragma: no cover

    def specificity(self, class_code: str, urgency: Urgency) -> tuple[int, int] | None:
        """(urgency match, class match) for ranking, or None when the rule does not apply."""
        class_rank = class_specificity(self.class_codes, class_code)
        if class_rank is None or (self.urgency is not None and self.urgency is not urgency):
            return None
        return (0 if self.urgency is None else 1, class_rank)


class DeadlineTable(BaseModel):
    """Stage limits; the most specific rule wins: a matching urgency first, then class.

    A rule naming the urgency beats one that does not (an urgent case is never slower
    because its class has a generous normal limit); then exact class > major > any.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[DeadlineRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _complete_and_unambiguous(self) -> Self:
        for stage in Stage:
            if not any(
                r.stage is stage and not r.class_codes and r.urgency is None for r in self.rules
            ):
                raise ValueError(f"deadlines: stage {stage} needs a rule for any class and urgency")
        seen: dict[tuple[Stage, str, Urgency | None], int] = {}
        for index, rule in enumerate(self.rules):
            for selector in rule.class_codes or ["*"]:
                key = (rule.stage, selector, rule.urgency)
                if key in seen:
                    raise ValueError(
                        f"deadlines: rules {seen[key]} and {index} both set stage {rule.stage} "
                        f"for class {selector} and urgency {rule.urgency or 'any'}"
                    )
                seen[key] = index
        return self

    def rule_for(self, stage: Stage, class_code: str, urgency: Urgency) -> DeadlineRule:
        """The most specific rule for a stage, class and urgency."""
        ranked = [
            (rank, rule)
            for rule in self.rules
            if rule.stage is stage and (rank := rule.specificity(class_code, urgency)) is not None
        ]
        return max(ranked, key=lambda pair: pair[0])[1]

    def limit_for(
        self, stage: Stage, class_code: str, urgency: Urgency, calendar: WorkingCalendar
    ) -> TimeLimit:
        """The limit of a stage for a class and urgency."""
        return self.rule_for(stage, class_code, urgency).limit(calendar)


def evaluate_light(elapsed: timedelta, limit: timedelta) -> Light:
    """Green below 80% of the limit, yellow from 80% to 100% inclusive, red beyond."""
    if limit <= timedelta():
        raise CalendarError(f"a stage limit must be positive, got {limit}")
    if elapsed * 5 < limit * 4:
        return Light.GREEN
    if elapsed <= limit:
        return Light.YELLOW
    return Light.RED


@dataclass(frozen=True, slots=True)
class StageClock:
    """Where a stage stands against its limit at an instant (or at its end, if finished)."""

    stage: Stage
    started_at: datetime
    ended_at: datetime | None
    limit: TimeLimit
    elapsed: timedelta
    due_at: datetime | None
    light: Light

    @property
    def overdue(self) -> bool:
        """True once elapsed clock time exceeds the limit."""
        return self.elapsed > self.limit.amount

    @property
    def ratio(self) -> float:
        """Elapsed over limit (1.0 = exactly at the limit)."""
        return self.elapsed / self.limit.amount


def evaluate_stage_clock(
    calendar: WorkingCalendar,
    stage: Stage,
    limit: TimeLimit,
    *,
    started_at: datetime,
    now_at: datetime,
    ended_at: datetime | None = None,
    pauses: Iterable[Pause] = (),
) -> StageClock:
    """Measure a stage from its start to its end (if ended) or to `now_at`."""
    pause_list = tuple(pauses)
    until_at = ended_at if ended_at is not None else now_at
    elapsed = calendar.elapsed(started_at, until_at, basis=limit.basis, pauses=pause_list)
    due_at = calendar.advance(started_at, limit.amount, basis=limit.basis, pauses=pause_list)
    return StageClock(
        stage=stage,
        started_at=require_aware(started_at, "stage start"),
        ended_at=None if ended_at is None else require_aware(ended_at, "stage end"),
        limit=limit,
        elapsed=elapsed,
        due_at=due_at,
        light=evaluate_light(elapsed, limit.amount),
    )
