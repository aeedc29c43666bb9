"""The instants at which a case's running stage turns yellow and red, for filtering lists.

They agree with `evaluate_stage_clock`: green while elapsed < 80% of the limit (before
`yellow_at`), red once elapsed exceeds the limit (from `overdue_at`). An open suspension
stops the clock for good, so such a stage has no due instant until it resumes.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.cases.calendar import Basis, Light, Pause, Stage, WorkingCalendar
from hub.cases.deadlines import DeadlineTable
from hub.cases.workflow import CaseState, stage_of

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class StageMilestones:
    """Start, due instant and light changes of the running stage (None: clock stopped)."""

    stage: Stage
    started_at: datetime
    due_at: datetime | None
    yellow_at: datetime | None
    overdue_at: datetime | None
    # The due instant is past the calendar's known holidays (computed by weekdays alone).
    beyond_calendar: bool = False

    def light_at(self, now_at: datetime) -> Light:
        """The stage light at an instant."""
        if self.overdue_at is not None and now_at >= self.overdue_at:
            return Light.RED
        if self.yellow_at is not None and now_at >= self.yellow_at:
            return Light.YELLOW
        return Light.GREEN


def evaluate_stage_milestones(
    state: CaseState, *, calendar: WorkingCalendar, deadlines: DeadlineTable
) -> StageMilestones | None:
    """Milestones of the running stage; None once the case is final."""
    stage = stage_of(state.status)
    if stage is None:
        return None
    started_at = state.stage_started_at
    pauses: tuple[Pause, ...] = ()
    if stage is Stage.HANDLE and state.dispatched_at is not None:
        started_at, pauses = state.dispatched_at, state.pauses
    limit = deadlines.limit_for(stage, state.class_code, state.urgency, calendar)
    # Elapsed reaches 80% of the limit at yellow_at; rounding up keeps the boundary green.
    yellow_amount = (limit.amount * 4 + timedelta(microseconds=4)) // 5
    due_at = calendar.advance(started_at, limit.amount, basis=limit.basis, pauses=pauses)
    return StageMilestones(
        stage=stage,
        started_at=started_at,
        due_at=due_at,
        beyond_calendar=(
            limit.basis is Basis.WORKING and due_at is not None and not calendar.covers(due_at)
        ),
        yellow_at=calendar.advance(started_at, yellow_amount, basis=limit.basis, pauses=pauses),
        overdue_at=calendar.advance(
            started_at, limit.amount + _TICK, basis=limit.basis, pauses=pauses
        ),
    )
