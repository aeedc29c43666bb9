"""What the case routes share: the case store of the app, and the shapes of cases in and out."""

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from hub.api.schemas import Int64, JsonObject
from hub.cases.attachments import AttachmentKind
from hub.cases.calendar import Light, Stage, Urgency
from hub.cases.classification import ClassKind
from hub.cases.evaluation import (
    current_stage_clock,
    granted_extension,
)
from hub.cases.workflow import (
    Action,
    CaseEvent,
    CaseSource,
    CaseStatus,
    PayloadValue,
    Role,
    Satisfaction,
)
from hub.store.cases import (
    CaseRecord,
    CaseStore,
    case_document,
)
from hub.store.cases_attachments import AttachmentRecord
from hub.store.cases_records import callback_due


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
    merged_into: str | None = Field(description="合并: the case number this one was merged into")
    merged_from: list[str] = Field(description="合并: the case numbers merged into this one")
    callback_result: str | None = Field(description="回访: what the reporter said")
    called_back_at: datetime | None
    callback_due: bool = Field(description="closed public report whose reporter awaits 回访")
    attachments: list["AttachmentOut"]


class AttachmentOut(BaseModel):
    """An attachment of a case (its bytes at `url`)."""

    id: int
    kind: AttachmentKind
    content_type: str
    filename: str
    size: int
    sha256: str
    uploaded_by: str | None
    actor_role: Role
    uploaded_at: datetime
    url: str


def attachment_out(record: AttachmentRecord) -> AttachmentOut:
    """An attachment as the API shows it."""
    return AttachmentOut(
        id=record.id,
        kind=record.kind,
        content_type=record.content_type,
        filename=record.filename,
        size=record.size,
        sha256=record.sha256,
        uploaded_by=record.uploaded_by,
        actor_role=record.actor_role,
        uploaded_at=record.uploaded_at,
        url=f"/cases/{record.case_id}/attachments/{record.id}",
    )


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
    into: Annotated[str, Field(max_length=40)] | Int64 | None = Field(
        default=None, description="merge: the surviving case (its number or id)"
    )
    satisfaction: Satisfaction | None = Field(
        default=None, description="callback (回访): what the reporter said"
    )

    def payload(self) -> dict[str, PayloadValue]:
        """The workflow payload: the given fields other than who acts."""
        skip = {"actor_role", "actor_id", "expected_version"}
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k not in skip}


def case_out(store: CaseStore, record: CaseRecord, now: datetime) -> dict[str, Any]:
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


def case_detail(store: CaseStore, record: CaseRecord, now: datetime) -> CaseDetailOut:
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
    events = [event_out(e) for e in store.events(record)]
    allowed = [t.action.value for t in store.setup.workflow.allowed_from(state.status)]
    return CaseDetailOut.model_validate(
        {
            **case_out(store, record, now),
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
            "merged_into": state.merged_into,
            "merged_from": [
                str(m.get("case_number"))
                for m in record.evidence.get("merged", [])
                if isinstance(m, dict)
            ],
            "callback_result": state.callback_result,
            "called_back_at": state.called_back_at,
            "callback_due": callback_due(store.setup, record),
            "attachments": [attachment_out(a) for a in store.attachments(record.id)],
        }
    )


def event_out(event: CaseEvent) -> CaseEventOut:
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


def role_of(given: Role | None, header: str | None) -> Role:
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
