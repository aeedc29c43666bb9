"""Case endpoints: list and filter, detail, reports by people, one POST per workflow action.

Behind `secure_app` the actor is the authenticated principal, acting in the workflow role
its access role holds (`actor_role` in the body may pick one of them), and the department
role sees and acts on its own department's cases only. An app built without it takes the
role from the body (`actor_role`) or `X-Actor-Role`, the actor from `actor_id` or
`X-Actor-Id`. An action
the case's status does not allow is 409 with the allowed actions named; a role that may
not take it is 403; bad input is 422; a stale `expected_version` is 409.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from hub.api.access import case_actor, case_department_scope, check_case_scope, principal_of
from hub.api.schemas import Instant, Int64, JsonObject, Offset, check_instant
from hub.cases.calendar import (
    CalendarError,
    Light,
    Stage,
    Urgency,
    calendar_expiry_warning,
    parse_holiday_years,
    with_years,
)
from hub.cases.classification import ClassificationError, ClassKind
from hub.cases.evaluation import (
    DepartmentScore,
    current_stage_clock,
    format_percent,
    granted_extension,
)
from hub.cases.intake import IntakeError, PersonReport
from hub.cases.steps import POST_OF_STATUS, DutyRefusedError, StepPreconditionError
from hub.cases.workflow import (
    Action,
    CaseEvent,
    CaseSource,
    CaseStatus,
    PayloadValue,
    Role,
    WorkflowError,
)
from hub.store import calendar as calendar_store
from hub.store.cases import (
    CaseConflictError,
    CaseFilter,
    CaseNotFoundError,
    CaseRecord,
    CaseStore,
    IllegalTransitionError,
    RoleRefusedError,
    case_document,
)


def get_case_store(request: Request) -> CaseStore:
    """The case store of this app."""
    store: CaseStore = request.app.state.case_store
    return store


CaseStoreDep = Annotated[CaseStore, Depends(get_case_store)]
RoleHeader = Annotated[str | None, Header(description="actor role until real auth arrives")]
ActorHeader = Annotated[str | None, Header(description="actor id until real auth arrives")]

PERSON_SOURCES = frozenset(
    {CaseSource.HOTLINE, CaseSource.INSPECTOR, CaseSource.VIDEO, CaseSource.SUPERIOR}
)


class StageClockOut(BaseModel):
    """The running stage against its limit; an approved extension (延期) adds to the limit."""

    stage: str
    started_at: datetime
    limit_h: float = Field(description="the stage's limit plus extensions granted in it")
    base_limit_h: float = Field(description="the stage's limit by the deadline table")
    extension_h: float = Field(description="extensions granted since the latest dispatch")
    basis: str
    elapsed_h: float
    due_at: datetime | None
    light: Light
    overdue: bool


class CaseEventOut(BaseModel):
    """One line of the case's event log."""

    seq: int
    action: Action
    from_status: CaseStatus | None
    to_status: CaseStatus
    actor_role: Role
    actor_id: str | None
    at: datetime
    note: str
    payload: dict[str, PayloadValue]


class CaseOut(BaseModel):
    """A case in a list."""

    id: int
    case_number: str
    status: CaseStatus
    source: CaseSource
    class_kind: ClassKind
    class_code: str
    class_name: str | None
    urgency: Urgency
    department: str | None
    department_name: str | None
    grid_code: str | None
    lat: float | None
    lon: float | None
    address: str | None
    description: str
    alarm_id: int | None
    device_id: str | None
    reported_at: datetime
    updated_at: datetime
    version: int
    stage: str | None
    stage_due_at: datetime | None
    light: Light | None
    overdue: bool


class CaseDetailOut(CaseOut):
    """A case with its evidence, event log, stage clock and the actions it allows now."""

    evidence: dict[str, Any]
    events: list[CaseEventOut]
    stage_clock: StageClockOut | None
    allowed_actions: list[str]
    registered_at: datetime | None
    dispatched_at: datetime | None
    handled_at: datetime | None
    closed_at: datetime | None
    rework_count: int
    return_count: int
    extension_count: int
    suspension_count: int
    external_id: str | None
    dispatched_by: str | None = Field(description="who dispatched it last")
    inspector: str | None = Field(description="inspector assigned the open on-site task")
    urge_level: int = Field(description="督办: how many times the shift leader urged it")
    urged_at: datetime | None


class CaseReportIn(BaseModel):
    """A problem reported by a person (hotline 12319, inspector, video, superior)."""

    model_config = ConfigDict(extra="forbid")

    source: CaseSource = CaseSource.HOTLINE
    class_code: str = Field(description="2026 class code (5 digits) or 2007 alias (4 digits)")
    class_kind: ClassKind = ClassKind.MATTER
    description: str = Field(default="", max_length=4000)
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    address: str | None = Field(default=None, max_length=500)
    grid_code: str | None = Field(default=None, pattern=r"^[0-9]{15}$")
    urgency: Urgency = Urgency.NORMAL
    reporter: dict[str, str] = Field(default_factory=dict)
    evidence: JsonObject = Field(default_factory=dict)
    actor_role: Role | None = None
    actor_id: str | None = Field(default=None, max_length=100)


class ActionIn(BaseModel):
    """Who acts, optional optimistic-concurrency version, and the action's payload."""

    model_config = ConfigDict(extra="forbid")

    actor_role: Role | None = None
    actor_id: str | None = Field(default=None, max_length=100)
    expected_version: Int64 | None = Field(default=None, ge=1)
    note: str | None = Field(default=None, max_length=2000)
    department: str | None = None
    extension_h: float | None = Field(
        default=None, le=24 * 366, allow_inf_nan=False, description="hours, at most a year"
    )
    class_code: str | None = None
    grid_code: str | None = None
    urgency: str | None = None
    evidence: str | None = Field(default=None, max_length=4000)
    confirmed: bool | None = None
    inspector: str | None = Field(
        default=None,
        max_length=100,
        description="request_check / send_for_verification: the inspector (监督员) assigned",
    )

    def payload(self) -> dict[str, PayloadValue]:
        """The workflow payload: the given fields other than who acts."""
        skip = {"actor_role", "actor_id", "expected_version"}
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k not in skip}


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


def _case_out(store: CaseStore, record: CaseRecord, now: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = case_document(store.setup, record)
    marks = record.milestones
    light = record.light_at(now)
    doc.update(
        stage=None if marks is None else marks.stage.value,
        stage_due_at=None if marks is None else marks.due_at,
        light=light,
        overdue=light is Light.RED,
    )
    return doc


def _detail(store: CaseStore, record: CaseRecord, now: datetime) -> CaseDetailOut:
    state = record.state
    clock = current_stage_clock(
        state, now_at=now, calendar=store.setup.calendar, deadlines=store.setup.policy.deadlines
    )
    clock_out = None
    if clock is not None:
        hour = timedelta(hours=1)
        extension = granted_extension(state) if clock.stage is Stage.HANDLE else timedelta()
        elapsed = clock.elapsed
        if extension:  # shown as a longer limit: the extension's clock time counts as elapsed
            elapsed = store.setup.calendar.elapsed(
                clock.started_at,
                now,
                basis=clock.limit.basis,
                pauses=[p for p in state.pauses if p.granted is None],
            )
        clock_out = StageClockOut(
            stage=clock.stage.value,
            started_at=clock.started_at,
            limit_h=(clock.limit.amount + extension) / hour,
            base_limit_h=clock.limit.amount / hour,
            extension_h=extension / hour,
            basis=clock.limit.basis.value,
            elapsed_h=round(elapsed / hour, 4),
            due_at=clock.due_at,
            light=clock.light,
            overdue=clock.overdue,
        )
    events = [_event_out(e) for e in store.events(record)]
    allowed = [t.action.value for t in store.setup.workflow.allowed_from(state.status)]
    return CaseDetailOut.model_validate(
        {
            **_case_out(store, record, now),
            "evidence": dict(record.evidence),
            "events": events,
            "stage_clock": clock_out,
            "allowed_actions": allowed,
            "registered_at": state.registered_at,
            "dispatched_at": state.dispatched_at,
            "handled_at": state.handled_at,
            "closed_at": state.closed_at,
            "rework_count": state.rework_count,
            "return_count": state.return_count,
            "extension_count": state.extension_count,
            "suspension_count": state.suspension_count,
            "external_id": record.external_id,
            "dispatched_by": state.dispatched_by,
            "inspector": state.inspector,
            "urge_level": state.urge_level,
            "urged_at": state.urged_at,
        }
    )


def _event_out(event: CaseEvent) -> CaseEventOut:
    return CaseEventOut(
        seq=event.seq,
        action=event.action,
        from_status=event.from_status,
        to_status=event.to_status,
        actor_role=event.actor_role,
        actor_id=event.actor_id,
        at=event.at,
        note=event.note,
        payload=dict(event.payload),
    )


def _role(given: Role | None, header: str | None) -> Role:
    if given is None and header:
        try:
            given = Role(header)
        except ValueError:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"X-Actor-Role {header!r} is not a role; roles: {', '.join(r.value for r in Role)}",
            ) from None
    if given is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "say who acts: actor_role in the body or the X-Actor-Role header",
        )
    if given is Role.SYSTEM:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "role 'system' is the hub's own, not a person's"
        )
    return given


router = APIRouter(tags=["cases"])


@router.get("/cases", response_model=list[CaseOut])
def list_cases(
    request: Request,
    store: CaseStoreDep,
    status_: Annotated[
        list[CaseStatus] | None, Query(alias="status", description="repeat for several")
    ] = None,
    open_only: Annotated[
        bool, Query(alias="open", description="not closed/rejected/voided")
    ] = False,
    class_code: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
    department: str | None = None,
    area: Annotated[
        str | None, Query(pattern=r"^\d{1,15}$", description="unit-grid code prefix")
    ] = None,
    source: CaseSource | None = None,
    overdue: bool | None = None,
    light: Light | None = None,
    alarm_id: Int64 | None = None,
    inspector: Annotated[
        str | None, Query(description="open on-site tasks (核实/核查) assigned to this inspector")
    ] = None,
    since: Annotated[Instant | None, Query(description="reported at or after")] = None,
    until: Annotated[Instant | None, Query(description="reported before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[CaseOut]:
    """Cases, newest first, filtered by status, class, department, area, light and overdue."""
    scope = case_department_scope(request)
    if scope is not None:  # the department role sees its own department's cases only
        if department not in (None, scope):
            return []
        department = scope
    now = datetime.now(UTC)
    records = store.search(
        CaseFilter(
            statuses=status_ or (),
            class_code=class_code,
            department=department,
            area=area,
            source=source,
            overdue=overdue,
            light=light,
            alarm_id=alarm_id,
            inspector=inspector,
            open_only=open_only,
            reported_since=since,
            reported_until=until,
            limit=limit,
            offset=offset,
        ),
        now,
    )
    return [CaseOut.model_validate(_case_out(store, r, now)) for r in records]


@router.post("/cases", response_model=CaseDetailOut, status_code=status.HTTP_201_CREATED)
def report_case(
    request: Request,
    store: CaseStoreDep,
    body: CaseReportIn,
    x_actor_role: RoleHeader = None,
    x_actor_id: ActorHeader = None,
) -> CaseDetailOut:
    """Open a case from a person's report (hotline, inspector, video, superior)."""
    if body.source not in PERSON_SOURCES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"source must be one of {sorted(s.value for s in PERSON_SOURCES)}; sensor cases "
            "come from alarms and public reports through /open311/v2",
        )
    acting = case_actor(request, store.setup.workflow, Action.REPORT, body.actor_role)
    role, actor_id = acting or (
        _role(body.actor_role, x_actor_role),
        body.actor_id or x_actor_id,
    )
    now = datetime.now(UTC)
    try:
        record = store.report(
            PersonReport(
                source=body.source,
                class_code=body.class_code,
                class_kind=body.class_kind,
                actor_role=role,
                description=body.description,
                lat=body.lat,
                lon=body.lon,
                address=body.address,
                grid_code=body.grid_code,
                urgency=body.urgency,
                actor_id=actor_id,
                reporter=body.reporter,
                evidence=body.evidence,
            ),
            now,
        )
    except (IntakeError, ClassificationError) as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    except WorkflowError as err:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(err)) from err
    return _detail(store, record, now)


@router.get("/cases/{case_id}", response_model=CaseDetailOut)
def get_case(request: Request, store: CaseStoreDep, case_id: Int64) -> CaseDetailOut:
    """A case with its evidence, event log, current stage clock and allowed actions."""
    record = store.get(case_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case with id {case_id}")
    check_case_scope(request, record.state.department, case_id)
    return _detail(store, record, datetime.now(UTC))


def _action_endpoint(action: Action) -> Callable[..., CaseDetailOut]:
    def endpoint(
        request: Request,
        store: CaseStoreDep,
        case_id: Int64,
        body: ActionIn | None = None,
        x_actor_role: RoleHeader = None,
        x_actor_id: ActorHeader = None,
    ) -> CaseDetailOut:
        given = body or ActionIn()
        acting = case_actor(request, store.setup.workflow, action, given.actor_role)
        role, actor_id = acting or (
            _role(given.actor_role, x_actor_role),
            given.actor_id or x_actor_id,
        )
        if case_department_scope(request) is not None:
            current = store.get(case_id)
            check_case_scope(request, current.state.department if current else None, case_id)
        now = datetime.now(UTC)
        try:
            record = store.act(
                case_id,
                action,
                role,
                now,
                given.payload(),
                actor_id=actor_id,
                expected_version=given.expected_version,
            )
        except CaseNotFoundError as err:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err
        except (IllegalTransitionError, StepPreconditionError, CaseConflictError) as err:
            raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
        except (RoleRefusedError, DutyRefusedError) as err:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(err)) from err
        except (WorkflowError, ClassificationError) as err:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
        return _detail(store, record, now)

    endpoint.__name__ = f"case_{action.value}"
    endpoint.__doc__ = f"Take the workflow action {action.value} on a case."
    return endpoint


for _action in Action:
    if _action is Action.REPORT:
        continue
    router.add_api_route(
        f"/cases/{{case_id}}/{_action.value.replace('_', '-')}",
        _action_endpoint(_action),
        methods=["POST"],
        response_model=CaseDetailOut,
        summary=f"{_action.value.replace('_', ' ')} a case",
    )


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
        overdue=[CaseOut.model_validate(_case_out(store, r, now)) for r in board],
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
        closure_rate_text=format_percent(f.closure_rate),
        on_time_closure_rate_text=format_percent(f.on_time_closure_rate),
        volume_score=round(score.volume_score, 4),
        composite=None if score.composite is None else round(score.composite, 2),
        grade=None if score.grade is None else score.grade.value,
    )


@router.get("/evaluation", response_model=EvaluationOut)
def evaluation(
    store: CaseStoreDep,
    start: Annotated[str, Query(description="YYYY-MM-DD (local) or RFC 3339, inclusive")],
    end: Annotated[str, Query(description="YYYY-MM-DD (local) or RFC 3339, exclusive")],
    as_of: Annotated[str | None, Query(description="count as of; default: end or now")] = None,
) -> EvaluationOut:
    """Figures per department (综合评价) for cases registered in [start, end)."""
    start_at = _period_bound(start, "start", store)
    end_at = _period_bound(end, "end", store)
    if start_at >= end_at:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must be before end")
    now = datetime.now(UTC)
    as_of_at = _period_bound(as_of, "as_of", store) if as_of else min(end_at, now)
    scores = store.evaluate(start_at, end_at, as_of_at)
    return EvaluationOut(
        start=start_at,
        end=end_at,
        as_of=as_of_at,
        departments=[_figures_out(store, s) for s in scores.values()],
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
