"""Case statistics by area (unit grid 单元网格, community 社区, street 街道) and department, per
period, with DOMAIN.md's rates, the posts' figures (立案率, 按期派遣率) and the call-backs'
satisfaction (满意率); the hot spots are the unit grids with the most reports.

The rates are those of the evaluation (`evaluation.evaluate_department`), counted over the
cases of each area instead of each department, so the two agree on every case.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from hub.cases.calendar import Stage, WorkingCalendar, require_aware
from hub.cases.deadlines import DeadlineTable
from hub.cases.evaluation import DepartmentFigures, evaluate_department, summarize_case
from hub.cases.workflow import SATISFIED_ANSWERS, CaseState, CaseStatus, Satisfaction


class AreaLevel(StrEnum):
    """What the figures are grouped by; areas are prefixes of the 15-digit unit-grid code."""

    GRID = "grid"  # 单元网格, all 15 digits
    COMMUNITY = "community"  # 社区, the first 12
    STREET = "street"  # 街道, the first 9
    DEPARTMENT = "department"  # 专业部门


_PREFIX: Mapping[AreaLevel, int] = {
    AreaLevel.GRID: 15,
    AreaLevel.COMMUNITY: 12,
    AreaLevel.STREET: 9,
}
NO_AREA = "none"
"""The key of cases without a grid code (or department) at the level asked for."""


def area_key(state: CaseState, level: AreaLevel) -> str:
    """The group a case falls in at a level."""
    if level is AreaLevel.DEPARTMENT:
        return state.department or NO_AREA
    if state.grid_code is None:
        return NO_AREA
    return state.grid_code[: _PREFIX[level]]


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


@dataclass(frozen=True, slots=True)
class AreaFigures:
    """One area's (or department's) figures over a period."""

    key: str
    reported: int  # 上报: reports in the period, whatever became of them
    registered_of_reported: int  # of those, registered (立案)
    dispatched: int  # registered in the period and dispatched
    dispatched_on_time: int  # first dispatch within the dispatch stage's limit
    called_back: int  # 回访 answered (unreachable not counted)
    satisfied: int  # satisfied or basically satisfied
    figures: DepartmentFigures  # the evaluation's counts over this area's cases
    top_classes: tuple[tuple[str, int], ...]  # the most reported class codes

    @property
    def registration_rate(self) -> float | None:
        """立案率 = registered / reported."""
        return _rate(self.registered_of_reported, self.reported)

    @property
    def on_time_dispatch_rate(self) -> float | None:
        """按期派遣率 = dispatched within the limit / dispatched."""
        return _rate(self.dispatched_on_time, self.dispatched)

    @property
    def satisfaction_rate(self) -> float | None:
        """满意率 = satisfied or basically satisfied / reporters reached."""
        return _rate(self.satisfied, self.called_back)


def _dispatched_on_time(
    state: CaseState, calendar: WorkingCalendar, deadlines: DeadlineTable
) -> bool:
    if state.registered_at is None or state.first_dispatched_at is None:
        return False
    limit = deadlines.limit_for(Stage.DISPATCH, state.class_code, state.urgency, calendar)
    due = calendar.advance(state.registered_at, limit.amount, basis=limit.basis)
    return due is None or state.first_dispatched_at <= due


def area_figures(
    states: Iterable[CaseState],
    level: AreaLevel,
    *,
    calendar: WorkingCalendar,
    deadlines: DeadlineTable,
    period_start_at: datetime,
    period_end_at: datetime,
    as_of_at: datetime,
    top: int = 3,
) -> list[AreaFigures]:
    """Figures per area for cases reported (上报 counts) or registered (rates) in
    [start, end), counted as of `as_of_at`; most reported first, then by key."""
    start = require_aware(period_start_at, "period_start_at")
    end = require_aware(period_end_at, "period_end_at")
    cut = require_aware(as_of_at, "as_of_at")
    by_key: dict[str, list[CaseState]] = {}
    for state in states:
        by_key.setdefault(area_key(state, level), []).append(state)
    result = []
    for key, cases in by_key.items():
        reported = [
            s for s in cases if start <= s.reported_at < end and s.status is not CaseStatus.MERGED
        ]
        registered = [
            s
            for s in cases
            if s.registered_at is not None
            and start <= s.registered_at < end
            and s.status is not CaseStatus.MERGED
        ]
        summaries = []
        for state in registered:
            summary = summarize_case(state, calendar=calendar, deadlines=deadlines)
            if summary is not None:
                summaries.append(replace(summary, department=key))
        dispatched = [s for s in registered if s.first_dispatched_at is not None]
        answers = [
            s.callback_result
            for s in reported
            if s.callback_result not in (None, Satisfaction.UNREACHABLE.value)
            and s.called_back_at is not None
            and s.called_back_at <= cut
        ]
        classes = Counter(s.class_code for s in reported)
        result.append(
            AreaFigures(
                key=key,
                reported=len(reported),
                registered_of_reported=sum(
                    1 for s in reported if s.registered_at is not None and s.registered_at <= cut
                ),
                dispatched=len(dispatched),
                dispatched_on_time=sum(
                    _dispatched_on_time(s, calendar, deadlines) for s in dispatched
                ),
                called_back=len(answers),
                satisfied=sum(1 for a in answers if a in SATISFIED_ANSWERS),
                figures=evaluate_department(
                    summaries, key, period_start_at=start, period_end_at=end, as_of_at=cut
                ),
                top_classes=tuple(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]),
            )
        )
    result = [a for a in result if a.reported or a.figures.registered]
    return sorted(result, key=lambda a: (-a.reported, a.key))
