"""The centre's views over cases: the shift leader's (值班长) queues and overdue board, the
departments' evaluation (综合评价), and the working calendar (holidays as data)."""

from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from hub.api.access import case_department_scope, principal_of
from hub.api.cases_models import CaseOut, CaseStoreDep, case_out
from hub.api.schemas import check_instant
from hub.cases.calendar import (
    CalendarError,
    Light,
    calendar_expiry_warning,
    parse_holiday_years,
    with_years,
)
from hub.cases.evaluation import (
    DepartmentScore,
    format_percent,
)
from hub.cases.statistics import NO_AREA, AreaFigures, AreaLevel
from hub.cases.steps import POST_OF_STATUS
from hub.cases.workflow import (
    CaseStatus,
)
from hub.store import calendar as calendar_store
from hub.store.cases import (
    CaseStore,
)


class DepartmentFiguresOut(BaseModel):
    """Evaluation figures of one department over a period, with composite score and grade."""

    department: str
    department_name: str | None
    registered: int
    due: int
    closed: int
    closed_on_time: int
    overdue_open: int
    due_for_handling: int
    handled: int
    handled_on_time: int
    reworked: int
    extended: int
    closure_rate: float | None
    on_time_closure_rate: float | None
    handling_rate: float | None
    on_time_handling_rate: float | None
    rework_rate: float | None
    extension_rate: float | None
    called_back: int = Field(description="reporters reached by a call-back (回访)")
    satisfaction_rate: float | None = Field(
        description="满意率; weighed in by weights.satisfaction"
    )
    closure_rate_text: str
    on_time_closure_rate_text: str
    volume_score: float
    composite: float | None = Field(description="0-100; null (n/a) when a weighted rate is n/a")
    grade: str | None = Field(description="A-E; null with the composite")


class EvaluationOut(BaseModel):
    """Figures per department for cases registered in [start, end), counted as of `as_of`."""

    start: datetime
    end: datetime
    as_of: datetime
    departments: list[DepartmentFiguresOut]


router = APIRouter(tags=["cases"])


class QueueOut(BaseModel):
    """Open cases waiting in one post's queue, by stage light."""

    post: str
    total: int
    green: int
    yellow: int
    red: int
    by_status: dict[str, int]


class SupervisionOut(BaseModel):
    """The shift leader's (值班长) view: queues per post, counts by light, the overdue board."""

    as_of: datetime
    queues: list[QueueOut]
    lights: dict[str, int]
    overdue: list[CaseOut] = Field(description="open and past the stage limit, longest first")


@router.get("/supervision", response_model=SupervisionOut)
def supervision(
    store: CaseStoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> SupervisionOut:
    """Queues per post with their stage lights, and the overdue board, as of now."""
    now = datetime.now(UTC)
    counts, board = store.supervision(now, limit)
    posts = list(dict.fromkeys(POST_OF_STATUS.values()))
    queues = {p: QueueOut(post=p, total=0, green=0, yellow=0, red=0, by_status={}) for p in posts}
    lights = dict.fromkeys((light.value for light in Light), 0)
    for status_text, light_text, count in counts:
        queue = queues[POST_OF_STATUS[CaseStatus(status_text)]]
        queue.total += count
        setattr(queue, light_text, getattr(queue, light_text) + count)
        queue.by_status[status_text] = queue.by_status.get(status_text, 0) + count
        lights[light_text] += count
    return SupervisionOut(
        as_of=now,
        queues=list(queues.values()),
        lights=lights,
        overdue=[CaseOut.model_validate(case_out(store, r, now)) for r in board],
    )


def _period_bound(text: str, name: str, store: CaseStore) -> datetime:
    """An RFC 3339 instant with offset, or a local date meaning its midnight in the city."""
    local_date = len(text) == 10
    try:
        if local_date:
            day = date.fromisoformat(text)
            at = datetime.combine(day, time(), tzinfo=store.setup.calendar.tz)
        else:
            at = datetime.fromisoformat(text)
    except ValueError as err:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{name} must be a date (YYYY-MM-DD) or an RFC 3339 instant with offset",
        ) from err
    try:
        check_instant(at)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} {err}") from err
    return at.astimezone(UTC) if local_date else at


def _figures_out(store: CaseStore, score: DepartmentScore) -> DepartmentFiguresOut:
    f = score.figures
    return DepartmentFiguresOut(
        department=f.department,
        department_name=store.setup.policy.departments.get(f.department),
        registered=f.registered,
        due=f.due,
        closed=f.closed,
        closed_on_time=f.closed_on_time,
        overdue_open=f.overdue_open,
        due_for_handling=f.due_for_handling,
        handled=f.handled,
        handled_on_time=f.handled_on_time,
        reworked=f.reworked,
        extended=f.extended,
        closure_rate=f.closure_rate,
        on_time_closure_rate=f.on_time_closure_rate,
        handling_rate=f.handling_rate,
        on_time_handling_rate=f.on_time_handling_rate,
        rework_rate=f.rework_rate,
        extension_rate=f.extension_rate,
        called_back=f.called_back,
        satisfaction_rate=f.satisfaction_rate,
        closure_rate_text=format_percent(f.closure_rate),
        on_time_closure_rate_text=format_percent(f.on_time_closure_rate),
        volume_score=round(score.volume_score, 4),
        composite=None if score.composite is None else round(score.composite, 2),
        grade=None if score.grade is None else score.grade.value,
    )


@router.get("/evaluation", response_model=EvaluationOut)
def evaluation(
    request: Request,
    store: CaseStoreDep,
    start: Annotated[str, Query(description="YYYY-MM-DD (local) or RFC 3339, inclusive")],
    end: Annotated[str, Query(description="YYYY-MM-DD (local) or RFC 3339, exclusive")],
    as_of: Annotated[str | None, Query(description="count as of; default: end or now")] = None,
) -> EvaluationOut:
    """Figures per department (综合评价) for cases registered in [start, end); a department
    sees its own score (scored among all departments)."""
    start_at = _period_bound(start, "start", store)
    end_at = _period_bound(end, "end", store)
    if start_at >= end_at:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must be before end")
    now = datetime.now(UTC)
    as_of_at = _period_bound(as_of, "as_of", store) if as_of else min(end_at, now)
    scores = store.evaluate(start_at, end_at, as_of_at)
    scope = case_department_scope(request)
    return EvaluationOut(
        start=start_at,
        end=end_at,
        as_of=as_of_at,
        departments=[
            _figures_out(store, s)
            for department, s in scores.items()
            if scope is None or department == scope
        ],
    )


# working calendar (holidays as data; docs/alarms-and-cases.md)


class CalendarImportOut(BaseModel):
    """When an import was made, by whom, from what, for which years."""

    years: list[int]
    source: str
    imported_by: str
    imported_at: datetime


class CalendarOut(BaseModel):
    """The working calendar in force: how far its holidays are known, and its imports."""

    covers_until: date | None = Field(description="last day whose holidays are known")
    warning: str | None = Field(description="set from 60 days before the calendar runs out")
    imported_years: list[int]
    imports: list[CalendarImportOut]


def _calendar_out(store: CaseStore) -> CalendarOut:
    calendar = store.setup.calendar
    with store.db.connection() as conn:
        years = sorted(calendar_store.fetch_holiday_years(conn))
        imports = calendar_store.fetch_imports(conn)
    return CalendarOut(
        covers_until=calendar.covers_until,
        warning=calendar_expiry_warning(calendar, calendar.local_date(datetime.now(UTC))),
        imported_years=years,
        imports=[
            CalendarImportOut(years=y, source=src, imported_by=who, imported_at=at)
            for y, src, who, at in imports
        ],
    )


@router.get("/calendar", response_model=CalendarOut)
def working_calendar(store: CaseStoreDep) -> CalendarOut:
    """How far the working calendar's holidays reach, the warning, and the latest imports."""
    return _calendar_out(store)


@router.post("/calendar/import", response_model=CalendarOut)
async def import_calendar(
    request: Request,
    store: CaseStoreDep,
    source: Annotated[str, Query(min_length=1, max_length=200)] = "api",
) -> CalendarOut:
    """Import whole years of holidays and make-up working days (YAML or JSON body).

    The years replace their days in the database and in this hub's calendar at once.
    """
    body = await request.body()
    try:
        document = parse_holiday_years(body)
        years = document.by_year()
    except CalendarError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    principal = principal_of(request)
    actor = f"{principal.kind}:{principal.name}" if principal is not None else "api"
    with store.db.connection() as conn:
        calendar_store.import_holiday_years(
            conn, document, source=source, actor=actor, now=datetime.now(UTC)
        )
    store.setup = replace(store.setup, calendar=with_years(store.setup.calendar, years))
    return _calendar_out(store)


# statistics by area and department (综合评价 by 单元网格 / 社区 / 街道)


class AreaFiguresOut(BaseModel):
    """One area's or department's figures over a period (rates null where the base is 0)."""

    key: str = Field(description="grid code or its prefix (community 12, street 9), or department")
    name: str | None = Field(description="the department's name, for the department level")
    reported: int
    registered: int = Field(description="registered in the period (the rates' cases)")
    due: int = Field(description="应结案数: closed + overdue and open")
    closed: int
    closed_on_time: int
    due_for_handling: int
    handled: int
    handled_on_time: int
    overdue_open: int
    closure_rate: float | None = Field(description="结案率 = closed / due")
    on_time_closure_rate: float | None = Field(description="按期结案率")
    on_time_handling_rate: float | None = Field(description="按期处置率")
    rework_rate: float | None = Field(description="返工率")
    registration_rate: float | None = Field(description="立案率 = registered / reported")
    on_time_dispatch_rate: float | None = Field(description="按期派遣率")
    satisfaction_rate: float | None = Field(description="满意率 of the reporters called back")
    called_back: int
    top_classes: list[tuple[str, int]] = Field(description="most reported class codes")


class StatisticsOut(BaseModel):
    """Figures per area or department for cases reported or registered in [start, end)."""

    level: AreaLevel
    start: datetime
    end: datetime
    as_of: datetime
    department: str | None = Field(description="set when limited to one department's cases")
    areas: list[AreaFiguresOut] = Field(description="most reported first")
    hot_spots: list[AreaFiguresOut] = Field(description="the unit grids with the most reports")


def _area_out(store: CaseStore, area: AreaFigures, level: AreaLevel) -> AreaFiguresOut:
    f = area.figures
    name = store.setup.policy.departments.get(area.key) if level is AreaLevel.DEPARTMENT else None
    return AreaFiguresOut(
        key=area.key,
        name=name,
        reported=area.reported,
        registered=f.registered,
        due=f.due,
        closed=f.closed,
        closed_on_time=f.closed_on_time,
        due_for_handling=f.due_for_handling,
        handled=f.handled,
        handled_on_time=f.handled_on_time,
        overdue_open=f.overdue_open,
        closure_rate=f.closure_rate,
        on_time_closure_rate=f.on_time_closure_rate,
        on_time_handling_rate=f.on_time_handling_rate,
        rework_rate=f.rework_rate,
        registration_rate=area.registration_rate,
        on_time_dispatch_rate=area.on_time_dispatch_rate,
        satisfaction_rate=area.satisfaction_rate,
        called_back=area.called_back,
        top_classes=list(area.top_classes),
    )


@router.get("/statistics", response_model=StatisticsOut)
def statistics(
    request: Request,
    store: CaseStoreDep,
    start: Annotated[
        str | None,
        Query(description="YYYY-MM-DD (local) or RFC 3339, inclusive; default: this month's 1st"),
    ] = None,
    end: Annotated[
        str | None, Query(description="YYYY-MM-DD (local) or RFC 3339, exclusive; default: now")
    ] = None,
    level: AreaLevel = AreaLevel.GRID,
    as_of: Annotated[str | None, Query(description="count as of; default: end or now")] = None,
    hot_spots: Annotated[int, Query(ge=0, le=100)] = 10,
) -> StatisticsOut:
    """Figures by unit grid, community, street or department; a department sees its own.

    Without dates: this month so far, in the city's own days (not the caller's)."""
    now = datetime.now(UTC)
    month_start = store.setup.calendar.local_date(now).replace(day=1).isoformat()
    start_at = _period_bound(start or month_start, "start", store)
    end_at = _period_bound(end, "end", store) if end else now
    if start_at >= end_at:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must be before end")
    as_of_at = _period_bound(as_of, "as_of", store) if as_of else min(end_at, datetime.now(UTC))
    scope = case_department_scope(request)
    areas = store.statistics(level, start_at, end_at, as_of_at, scope)
    grids = areas if level is AreaLevel.GRID else None
    if grids is None and hot_spots:
        grids = store.statistics(AreaLevel.GRID, start_at, end_at, as_of_at, scope)
    return StatisticsOut(
        level=level,
        start=start_at,
        end=end_at,
        as_of=as_of_at,
        department=scope,
        areas=[_area_out(store, a, level) for a in areas],
        hot_spots=[
            _area_out(store, a, AreaLevel.GRID)
            for a in (grids or [])[:hot_spots]
            if a.key != NO_AREA and a.reported > 0
        ],
    )


# statistics by post (综合评价 per 岗位: 受理员, 派遣员, 监督员, 值班长)


class PostFiguresOut(BaseModel):
    """One person's work at a post in the period."""

    post: str = Field(description="intake_operator, dispatcher, inspector or shift_leader")
    actor_id: str | None = Field(description="the login that acted; null for unnamed actors")
    actions: dict[str, int] = Field(description="actions taken, by action")
    total: int
    stages_ended: int = Field(description="actions that ended a timed stage (立案, 派遣, 核查 …)")
    stages_ended_in_time: int = Field(description="… no later than that stage's deadline")
    in_time_rate: float | None = Field(description="stages_ended_in_time / stages_ended; n/a: null")


class PostStatisticsOut(BaseModel):
    """The centre posts' work per person, for actions in [start, end)."""

    start: datetime
    end: datetime
    posts: list[PostFiguresOut] = Field(
        description="in the order of the seven steps, then by login"
    )


@router.get("/statistics/posts", response_model=PostStatisticsOut)
def post_statistics(
    store: CaseStoreDep,
    start: Annotated[str, Query(description="YYYY-MM-DD (local) or RFC 3339, inclusive")],
    end: Annotated[str, Query(description="YYYY-MM-DD (local) or RFC 3339, exclusive")],
) -> PostStatisticsOut:
    """What each person at each centre post did in the period, and how much of it in time."""
    start_at = _period_bound(start, "start", store)
    end_at = _period_bound(end, "end", store)
    if start_at >= end_at:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must be before end")
    return PostStatisticsOut(
        start=start_at,
        end=end_at,
        posts=[
            PostFiguresOut(
                post=f.role.value,
                actor_id=f.actor_id,
                actions={a.value: n for a, n in sorted(f.actions.items())},
                total=f.total,
                stages_ended=f.stages_ended,
                stages_ended_in_time=f.stages_ended_in_time,
                in_time_rate=f.in_time_rate,
            )
            for f in store.post_statistics(start_at, end_at)
        ],
    )
