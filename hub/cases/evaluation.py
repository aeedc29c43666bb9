"""Evaluation figures per department and period (综合评价), from plain case summaries.

Formulas (DOMAIN.md): 应结案数 due = closed + overdue-and-open; 结案率 = closed / due;
按期结案率 = closed on time / due; 处置率 = handled / due for handling; 按期处置率 =
handled on time / due for handling; 返工率 = reworked / due; 延期率 = extended / due for
handling; composite = volume ×10% + 结案率 ×30% + 按期处置率 ×30% + (1 − 返工率) ×30%
(weights configurable); grades A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E.

A rate whose denominator is zero is n/a (None), never 0 % or 100 %; a composite built
from an n/a rate is itself n/a, and only a department with cases registered in the
period gets a composite and a grade.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.cases.calendar import Pause, Stage, WorkingCalendar, require_aware
from hub.cases.deadlines import DeadlineTable, StageClock, evaluate_stage_clock
from hub.cases.workflow import (
    SATISFIED_ANSWERS,
    CaseState,
    CaseStatus,
    Satisfaction,
    stage_of,
)

_WEIGHT_SUM_TOLERANCE = 1e-9


class Grade(StrEnum):
    """Department grade from the composite score."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"


class EvaluationWeights(BaseModel):
    """Weights of the composite score; they must add up to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    volume: float = Field(default=0.1, ge=0)
    closure_rate: float = Field(default=0.3, ge=0)
    on_time_handling_rate: float = Field(default=0.3, ge=0)
    rework_free: float = Field(default=0.3, ge=0)
    # 满意率 from the call-backs (回访); 0 by default (DOMAIN.md's published practice leaves it
    # out), a city that weighs its citizens' answers moves weight here.
    satisfaction: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Self:
        total = (
            self.volume
            + self.closure_rate
            + self.on_time_handling_rate
            + self.rework_free
            + self.satisfaction
        )
        if not math.isclose(total, 1.0, abs_tol=_WEIGHT_SUM_TOLERANCE):
            raise ValueError(f"evaluation weights must add up to 1, they add up to {total:g}")
        return self


class GradeThresholds(BaseModel):
    """Lowest composite score (0-100) for grades A to D; below D is E."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: float = 90.0
    b: float = 75.0
    c: float = 60.0
    d: float = 40.0

    @model_validator(mode="after")
    def _descending(self) -> Self:
        if not (100 >= self.a > self.b > self.c > self.d >= 0):
            raise ValueError("grade thresholds must satisfy 100 >= a > b > c > d >= 0")
        return self


class EvaluationConfig(BaseModel):
    """Composite weights, grade thresholds, and the registrations that earn a full volume score.

    With `volume_reference` unset, the busiest department in the comparison scores 1.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: EvaluationWeights = EvaluationWeights()
    grades: GradeThresholds = GradeThresholds()
    volume_reference: int | None = Field(default=None, gt=0)


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """What evaluation needs of one case; deadlines already resolved to instants."""

    case_id: str
    department: str
    registered_at: datetime
    dispatched_at: datetime | None = None
    handle_due_at: datetime | None = None
    handled_at: datetime | None = None
    close_due_at: datetime | None = None
    closed_at: datetime | None = None
    rework_count: int = 0
    extension_count: int = 0
    voided: bool = False
    callback_result: str | None = None  # 回访's answer (Satisfaction), if the reporter was called
    called_back_at: datetime | None = None


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


@dataclass(frozen=True, slots=True)
class DepartmentFigures:
    """Counts for one department over one period, and the rates built from them."""

    department: str
    period_start_at: datetime
    period_end_at: datetime
    as_of_at: datetime
    registered: int
    closed: int
    closed_on_time: int
    overdue_open: int
    handled: int
    handled_on_time: int
    overdue_unhandled: int
    reworked: int
    extended: int
    called_back: int = 0  # 回访 answered (unreachable not counted)
    satisfied: int = 0  # satisfied or basically satisfied

    @property
    def due(self) -> int:
        """应结案数: closed plus overdue and still open."""
        return self.closed + self.overdue_open

    @property
    def due_for_handling(self) -> int:
        """应处置数: handled plus overdue and not yet handled."""
        return self.handled + self.overdue_unhandled

    @property
    def closure_rate(self) -> float | None:
        """结案率."""
        return _rate(self.closed, self.due)

    @property
    def on_time_closure_rate(self) -> float | None:
        """按期结案率."""
        return _rate(self.closed_on_time, self.due)

    @property
    def handling_rate(self) -> float | None:
        """处置率."""
        return _rate(self.handled, self.due_for_handling)

    @property
    def on_time_handling_rate(self) -> float | None:
        """按期处置率."""
        return _rate(self.handled_on_time, self.due_for_handling)

    @property
    def rework_rate(self) -> float | None:
        """返工率."""
        return _rate(self.reworked, self.due)

    @property
    def satisfaction_rate(self) -> float | None:
        """满意率 = satisfied or basically satisfied / reporters reached by a call-back."""
        return _rate(self.satisfied, self.called_back)

    @property
    def extension_rate(self) -> float | None:
        """延期率."""
        return _rate(self.extended, self.due_for_handling)


def _done_on_time(done_at: datetime, due_at: datetime | None) -> bool:
    return due_at is None or done_at <= due_at


def evaluate_department(
    summaries: Iterable[CaseSummary],
    department: str,
    *,
    period_start_at: datetime,
    period_end_at: datetime,
    as_of_at: datetime | None = None,
) -> DepartmentFigures:
    """Figures for cases registered in [start, end) for a department, counted as of `as_of_at`.

    `as_of_at` defaults to the period end: a case closed later counts as open then.
    """
    start_at = require_aware(period_start_at, "period_start_at")
    end_at = require_aware(period_end_at, "period_end_at")
    cut_at = require_aware(as_of_at, "as_of_at") if as_of_at is not None else end_at
    counts = dict.fromkeys(
        (
            "registered",
            "closed",
            "closed_on_time",
            "overdue_open",
            "handled",
            "handled_on_time",
            "overdue_unhandled",
            "reworked",
            "extended",
            "called_back",
            "satisfied",
        ),
        0,
    )
    for case in summaries:
        if case.department != department or case.voided:
            continue
        if not start_at <= case.registered_at < end_at:
            continue
        counts["registered"] += 1
        closed_at = case.closed_at if case.closed_at and case.closed_at <= cut_at else None
        closed = closed_at is not None
        overdue_open = not closed and case.close_due_at is not None and case.close_due_at < cut_at
        if closed_at is not None:
            counts["closed"] += 1
            counts["closed_on_time"] += _done_on_time(closed_at, case.close_due_at)
        counts["overdue_open"] += overdue_open
        if (closed or overdue_open) and case.rework_count > 0:
            counts["reworked"] += 1
        handled_at = case.handled_at if case.handled_at and case.handled_at <= cut_at else None
        handled = handled_at is not None
        overdue_unhandled = (
            not handled
            and case.dispatched_at is not None
            and case.handle_due_at is not None
            and case.handle_due_at < cut_at
        )
        if handled_at is not None:
            counts["handled"] += 1
            counts["handled_on_time"] += _done_on_time(handled_at, case.handle_due_at)
        counts["overdue_unhandled"] += overdue_unhandled
        if (handled or overdue_unhandled) and case.extension_count > 0:
            counts["extended"] += 1
        answer = case.callback_result
        if (
            answer not in (None, Satisfaction.UNREACHABLE.value)
            and case.called_back_at is not None
            and case.called_back_at <= cut_at
        ):
            counts["called_back"] += 1
            counts["satisfied"] += answer in SATISFIED_ANSWERS
    return DepartmentFigures(
        department=department,
        period_start_at=start_at,
        period_end_at=end_at,
        as_of_at=cut_at,
        **counts,
    )


def evaluate_departments(
    summaries: Iterable[CaseSummary],
    *,
    period_start_at: datetime,
    period_end_at: datetime,
    as_of_at: datetime | None = None,
) -> dict[str, DepartmentFigures]:
    """Figures for every department with cases registered in the period, sorted by department."""
    cases = list(summaries)
    figures = {
        department: evaluate_department(
            cases,
            department,
            period_start_at=period_start_at,
            period_end_at=period_end_at,
            as_of_at=as_of_at,
        )
        for department in sorted({c.department for c in cases})
    }
    return {department: f for department, f in figures.items() if f.registered > 0}


def grade_of(score: float, thresholds: GradeThresholds) -> Grade:
    """The grade of a composite score (0-100)."""
    for grade, floor in (
        (Grade.A, thresholds.a),
        (Grade.B, thresholds.b),
        (Grade.C, thresholds.c),
        (Grade.D, thresholds.d),
    ):
        if score >= floor:
            return grade
    return Grade.E


@dataclass(frozen=True, slots=True)
class DepartmentScore:
    """A department's composite score (0-100) and grade, with the figures behind it.

    Composite and grade are None (n/a) when a rate they weigh has nothing due, or
    when the department registered no case in the period.
    """

    figures: DepartmentFigures
    volume_score: float
    composite: float | None
    grade: Grade | None


def composite_of(
    figures: DepartmentFigures, volume_score: float, weights: EvaluationWeights
) -> float | None:
    """The composite score (0-100), None when a weighted rate is n/a or nothing was registered.

    A rate with weight 0 is not needed, so a configuration that drops a term still
    scores departments for which that term is n/a.
    """
    if figures.registered == 0:
        return None
    terms = (
        (weights.volume, volume_score),
        (weights.closure_rate, figures.closure_rate),
        (weights.on_time_handling_rate, figures.on_time_handling_rate),
        (
            weights.rework_free,
            None if figures.rework_rate is None else 1 - figures.rework_rate,
        ),
        (weights.satisfaction, figures.satisfaction_rate),
    )
    total = 0.0
    for weight, value in terms:
        if weight == 0:
            continue
        if value is None:
            return None
        total += weight * value
    return 100 * total


def score_departments(
    figures: Mapping[str, DepartmentFigures], config: EvaluationConfig
) -> dict[str, DepartmentScore]:
    """Composite score and grade per department; n/a where the figures behind them are n/a."""
    reference = config.volume_reference or max((f.registered for f in figures.values()), default=0)
    scores: dict[str, DepartmentScore] = {}
    for department, f in figures.items():
        volume_score = min(1.0, f.registered / reference) if reference else 0.0
        composite = composite_of(f, volume_score, config.weights)
        scores[department] = DepartmentScore(
            figures=f,
            volume_score=volume_score,
            composite=composite,
            grade=None if composite is None else grade_of(composite, config.grades),
        )
    return scores


NOT_APPLICABLE = "n/a"


def format_percent(rate: float | None) -> str:
    """A rate as a percentage with two decimals, rounded half up ("93.72%"), or "n/a"."""
    if rate is None:
        return NOT_APPLICABLE
    percent = (Decimal(repr(rate)) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{percent}%"


def current_stage_clock(
    state: CaseState,
    *,
    now_at: datetime,
    calendar: WorkingCalendar,
    deadlines: DeadlineTable,
) -> StageClock | None:
    """The running stage's clock and light, None once the case is final.

    Handling counts from the latest dispatch and pauses for approved extension and
    suspension; the other stages count from when the case entered them.
    """
    stage = stage_of(state.status)
    if stage is None:
        return None
    started_at = state.stage_started_at
    pauses: tuple[Pause, ...] = ()
    if stage is Stage.HANDLE and state.dispatched_at is not None:
        started_at, pauses = state.dispatched_at, state.pauses
    return evaluate_stage_clock(
        calendar,
        stage,
        deadlines.limit_for(stage, state.class_code, state.urgency, calendar),
        started_at=started_at,
        now_at=now_at,
        pauses=pauses,
    )


def granted_extension(state: CaseState) -> timedelta:
    """Extension (延期) granted since the latest dispatch: what the handling limit grew by."""
    if state.dispatched_at is None:
        return timedelta()
    return sum(
        (
            p.granted
            for p in state.pauses
            if p.granted is not None and p.start_at >= state.dispatched_at
        ),
        timedelta(),
    )


def summarize_case(
    state: CaseState, *, calendar: WorkingCalendar, deadlines: DeadlineTable
) -> CaseSummary | None:
    """The evaluation summary of a registered, routed case; None before registration/routing.

    The handling deadline runs from the latest dispatch (with pauses); the closing
    deadline is the handling deadline plus the verify stage's limit. A registered case
    never dispatched is due to close by the same chain from its dispatch deadline
    (registration plus the dispatch limit), so once that passes it counts in 应结案数 as
    overdue and open, against the department routing named; it is not due for handling,
    since no department has it yet.
    """
    if state.registered_at is None or state.department is None:
        return None
    handle_due_at: datetime | None = None
    close_due_at: datetime | None = None
    handle_limit = deadlines.limit_for(Stage.HANDLE, state.class_code, state.urgency, calendar)
    verify_limit = deadlines.limit_for(Stage.VERIFY, state.class_code, state.urgency, calendar)
    if state.dispatched_at is not None:
        handle_due_at = calendar.advance(
            state.dispatched_at, handle_limit.amount, basis=handle_limit.basis, pauses=state.pauses
        )
        if handle_due_at is not None:
            close_due_at = calendar.advance(
                handle_due_at, verify_limit.amount, basis=verify_limit.basis
            )
    elif state.status not in {CaseStatus.VOIDED, CaseStatus.MERGED}:
        dispatch_limit = deadlines.limit_for(
            Stage.DISPATCH, state.class_code, state.urgency, calendar
        )
        dispatch_due_at = calendar.advance(
            state.registered_at, dispatch_limit.amount, basis=dispatch_limit.basis
        )
        unhandled_due_at = (
            None
            if dispatch_due_at is None
            else calendar.advance(dispatch_due_at, handle_limit.amount, basis=handle_limit.basis)
        )
        if unhandled_due_at is not None:
            close_due_at = calendar.advance(
                unhandled_due_at, verify_limit.amount, basis=verify_limit.basis
            )
    # After a failed verification the case is being handled again: the old feedback no
    # longer counts as handled.
    handled_at = state.handled_at
    if (
        handled_at is not None
        and state.dispatched_at is not None
        and handled_at < state.dispatched_at
    ):
        handled_at = None
    return CaseSummary(
        case_id=state.case_id,
        department=state.department,
        registered_at=state.registered_at,
        dispatched_at=state.dispatched_at,
        handle_due_at=handle_due_at,
        handled_at=handled_at,
        close_due_at=close_due_at,
        closed_at=state.closed_at,
        rework_count=state.rework_count,
        extension_count=state.extension_count,
        voided=state.status in {CaseStatus.VOIDED, CaseStatus.MERGED},
        callback_result=state.callback_result,
        called_back_at=state.called_back_at,
    )
