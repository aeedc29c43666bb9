"""Case figures: the departments' evaluation (综合评价) and the statistics by area, per period."""

from datetime import datetime

from hub.cases.evaluation import (
    DepartmentScore,
    evaluate_departments,
    score_departments,
    summarize_case,
)
from hub.cases.intake import CaseSetup
from hub.cases.post_statistics import POSTS, PostEvent, PostFigures, post_figures
from hub.cases.state_codec import decode_case_state
from hub.cases.statistics import AreaFigures, AreaLevel, area_figures
from hub.cases.workflow import Action, CaseState, Role
from hub.store.cases_records import Conn


def _registered_states(conn: Conn, start: datetime, end: datetime) -> list[CaseState]:
    rows = conn.execute(
        "SELECT state FROM cases WHERE registered_at >= %s AND registered_at < %s",
        (start, end),
    ).fetchall()
    return [decode_case_state(r[0]) for r in rows]


def evaluate_period(
    conn: Conn, setup: CaseSetup, start: datetime, end: datetime, as_of: datetime
) -> dict[str, DepartmentScore]:
    """Evaluation figures, composite score and grade per department for cases registered then."""
    summaries = []
    for state in _registered_states(conn, start, end):
        summary = summarize_case(state, calendar=setup.calendar, deadlines=setup.policy.deadlines)
        if summary is not None:
            summaries.append(summary)
    figures = evaluate_departments(
        summaries, period_start_at=start, period_end_at=end, as_of_at=as_of
    )
    return score_departments(figures, setup.policy.evaluation)


def area_statistics(
    conn: Conn,
    setup: CaseSetup,
    level: AreaLevel,
    start: datetime,
    end: datetime,
    as_of: datetime,
    department: str | None = None,
) -> list[AreaFigures]:
    """Figures per unit grid, community, street or department for cases reported or
    registered in [start, end); `department` limits them to one department's cases."""
    rows = conn.execute(
        "SELECT state FROM cases WHERE reported_at < %(end)s"
        " AND (reported_at >= %(start)s OR registered_at >= %(start)s)"
        " AND (%(department)s::text IS NULL OR department = %(department)s)",
        {"start": start, "end": end, "department": department},
    ).fetchall()
    return area_figures(
        (decode_case_state(r[0]) for r in rows),
        level,
        calendar=setup.calendar,
        deadlines=setup.policy.deadlines,
        period_start_at=start,
        period_end_at=end,
        as_of_at=as_of,
    )


def post_statistics(conn: Conn, start: datetime, end: datetime) -> list[PostFigures]:
    """The centre posts' work in [start, end): actions per person, stages ended in time."""
    rows = conn.execute(
        "SELECT actor_role, actor_id, action, at, ended_stage, ended_stage_due_at"
        " FROM case_events WHERE at >= %s AND at < %s AND actor_role = ANY(%s)",
        (start, end, [role.value for role in POSTS]),
    ).fetchall()
    events = [
        PostEvent(Role(role), actor, Action(action), at, stage, due)
        for role, actor, action, at, stage, due in rows
    ]
    return post_figures(events)
