"""Cases in PostgreSQL: filing from alarms, reports by people, workflow actions, lists, figures.

Every change of a case is one transaction: the new state (with optimistic concurrency
on its version), its events in `case_events` and their rows in the outbox. Case numbers
come from `case_number_seq`, one atomic counter per local date.
"""

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hub.cases.calendar import Light, Stage
from hub.cases.classification import ClassificationError, ClassKind
from hub.cases.evaluation import (
    DepartmentScore,
    evaluate_departments,
    score_departments,
    summarize_case,
)
from hub.cases.intake import CaseDraft, CaseSetup, PersonReport, draft_alarm_case, draft_person_case
from hub.cases.milestones import StageMilestones, evaluate_stage_milestones
from hub.cases.numbering import DEFAULT_SEQ_WIDTH, case_date, format_case_number
from hub.cases.routing import (
    RECURRENCE,
    FilingOutcome,
    JoinLookup,
    JoinScope,
    PolicyError,
    decide_filing,
)
from hub.cases.state_codec import decode_case_state, encode_case_event, encode_case_state
from hub.cases.steps import check_duty, check_step, complete_step
from hub.cases.workflow import (
    TERMINAL_STATUSES,
    Action,
    CaseEvent,
    CaseSource,
    CaseState,
    CaseStatus,
    Payload,
    PayloadValue,
    Role,
    WorkflowError,
    apply_action,
    apply_auto_actions,
    report_case,
)
from hub.rules.alarm_changes import AlarmRecord
from hub.rules.alarm_types import AlarmType
from hub.store import alarms, outbox, registry
from hub.store.database import Database
from hub.store.outbox import OutboxTarget

log = logging.getLogger(__name__)
Conn = psycopg.Connection[tuple[Any, ...]]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_TERMINAL = [s.value for s in TERMINAL_STATUSES]
_COLUMNS = (
    "id, case_number, state, description, lat, lon, address, alarm_id, device_id, evidence,"
    " external_id, created_at, stage, stage_started_at, stage_due_at, stage_yellow_at,"
    " stage_overdue_at, stage_due_beyond_calendar"
)


class CaseNotFoundError(LookupError):
    """No case with that id."""


class IllegalTransitionError(WorkflowError):
    """The case's status does not allow the action; the message names the allowed ones."""


class RoleRefusedError(WorkflowError):
    """The action is allowed now, but not for this role."""


class CaseConflictError(RuntimeError):
    """The case changed since it was read (its version moved on); read it again and retry."""


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """A stored case: workflow state plus location, description, evidence and stage deadlines."""

    id: int
    case_number: str
    state: CaseState
    description: str
    created_at: datetime
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    alarm_id: int | None = None
    device_id: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    external_id: str | None = None
    milestones: StageMilestones | None = None

    def light_at(self, now: datetime) -> Light | None:
        """The running stage's light at an instant; None once final."""
        return None if self.milestones is None else self.milestones.light_at(now)


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """Which cases to list; None or empty means any."""

    statuses: Sequence[CaseStatus] = ()
    class_code: str | None = None
    class_codes: Sequence[str] = ()
    case_numbers: Sequence[str] = ()
    department: str | None = None
    area: str | None = None
    source: CaseSource | None = None
    overdue: bool | None = None
    light: Light | None = None
    alarm_id: int | None = None
    inspector: str | None = None
    open_only: bool = False
    reported_since: datetime | None = None
    reported_until: datetime | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class FiledAlarm:
    """What the filing policy did with one alarm."""

    alarm_id: int
    outcome: FilingOutcome
    reason: str
    case: CaseRecord | None = None


@dataclass(frozen=True, slots=True)
class ClearanceCheck:
    """What the check of a cleared alarm behind a case found."""

    alarm_id: int
    case_id: int
    stayed_clear: bool
    attached: bool
    reason: str


def _record(row: Sequence[Any]) -> CaseRecord:
    milestones = None
    if row[12] is not None:
        milestones = StageMilestones(
            stage=Stage(row[12]),
            started_at=row[13],
            due_at=row[14],
            yellow_at=row[15],
            overdue_at=row[16],
            beyond_calendar=bool(row[17]),
        )
    return CaseRecord(
        id=int(row[0]),
        case_number=str(row[1]),
        state=decode_case_state(row[2]),
        description=str(row[3]),
        lat=row[4],
        lon=row[5],
        address=row[6],
        alarm_id=None if row[7] is None else int(row[7]),
        device_id=row[8],
        evidence=dict(row[9] or {}),
        external_id=row[10],
        created_at=row[11],
        milestones=milestones,
    )


def _state_columns(setup: CaseSetup, state: CaseState) -> dict[str, Any]:
    marks = evaluate_stage_milestones(
        state, calendar=setup.calendar, deadlines=setup.policy.deadlines
    )
    return {
        "status": state.status.value,
        "class_kind": state.class_kind.value,
        "class_code": state.class_code,
        "urgency": state.urgency.value,
        "grid_code": state.grid_code,
        "department": state.department,
        "state": Jsonb(encode_case_state(state)),
        "version": state.version,
        "reported_at": state.reported_at,
        "registered_at": state.registered_at,
        "dispatched_at": state.dispatched_at,
        "handled_at": state.handled_at,
        "closed_at": state.closed_at,
        "finished_at": state.finished_at,
        "updated_at": state.updated_at,
        "stage": marks.stage.value if marks else None,
        "stage_started_at": marks.started_at if marks else None,
        "stage_due_at": marks.due_at if marks else None,
        "stage_yellow_at": marks.yellow_at if marks else None,
        "stage_overdue_at": marks.overdue_at if marks else None,
        "stage_due_beyond_calendar": marks.beyond_calendar if marks else False,
    }


def case_document(setup: CaseSetup, record: CaseRecord) -> dict[str, object]:
    """A case as the webhook and the API show it (without events)."""
    state = record.state
    try:
        class_name = setup.classes.get(state.class_kind, state.class_code).name_zh
    except ClassificationError:
        class_name = None
    return {
        "id": record.id,
        "case_number": record.case_number,
        "status": state.status.value,
        "source": state.source.value,
        "class_kind": state.class_kind.value,
        "class_code": state.class_code,
        "class_name": class_name,
        "urgency": state.urgency.value,
        "department": state.department,
        "department_name": setup.policy.departments.get(state.department or ""),
        "grid_code": state.grid_code,
        "lat": record.lat,
        "lon": record.lon,
        "address": record.address,
        "description": record.description,
        "alarm_id": record.alarm_id,
        "device_id": record.device_id,
        "reported_at": state.reported_at.isoformat(),
        "updated_at": state.updated_at.isoformat(),
        "version": state.version,
        # The running stage's deadline lies past the loaded calendar: computed by weekdays
        # alone, holidays unknown. Import the next year (python -m hub calendar import).
        "deadline_beyond_calendar": (
            record.milestones.beyond_calendar if record.milestones is not None else False
        ),
    }


def next_case_number(conn: Conn, setup: CaseSetup, at: datetime) -> str:
    """Take the next number of the local day of `at` (atomic across processes)."""
    local_date = case_date(at, setup.calendar.tz)
    row = conn.execute(
        "INSERT INTO case_number_seq (local_date, last_seq) VALUES (%s, 1)"
        " ON CONFLICT (local_date) DO UPDATE SET last_seq = case_number_seq.last_seq + 1"
        " RETURNING last_seq",
        (local_date,),
    ).fetchone()
    seq = int(row[0]) if row else 1
    width = max(DEFAULT_SEQ_WIDTH, len(str(seq)))
    return format_case_number(local_date, seq, setup.number_prefix, width)


def _insert_events(
    conn: Conn,
    setup: CaseSetup,
    record: CaseRecord,
    events: Sequence[CaseEvent],
    targets: Sequence[OutboxTarget],
    now: datetime,
) -> None:
    conn.cursor().executemany(
        "INSERT INTO case_events (case_id, seq, action, from_status, to_status, actor_role,"
        " actor_id, at, note, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                record.id,
                e.seq,
                e.action.value,
                None if e.from_status is None else e.from_status.value,
                e.to_status.value,
                e.actor_role.value,
                e.actor_id,
                e.at,
                e.note,
                Jsonb(alarms.json_value(dict(e.payload))),
            )
            for e in events
        ],
    )
    case_doc = case_document(setup, record)
    for event in events:
        names = [t.name for t in targets if t.takes(event.action, record.state.source)]
        if not names:
            continue
        body: dict[str, object] = {
            "event_type": f"case.{event.action.value}",
            "case": case_doc,
            "event": alarms.json_value(encode_case_event(event)),
        }
        if event.action is Action.REPORT:
            body["evidence"] = dict(record.evidence)
        outbox.enqueue(
            conn,
            case_id=record.id,
            case_number=record.case_number,
            seq=event.seq,
            event_type=f"case.{event.action.value}",
            body=body,
            targets=names,
            now=now,
        )


def open_case(
    conn: Conn,
    setup: CaseSetup,
    draft: CaseDraft,
    at: datetime,
    targets: Sequence[OutboxTarget] = (),
) -> CaseRecord:
    """Open a case from a draft: number, report event, automatic steps by policy, outbox rows."""
    number = next_case_number(conn, setup, at)
    state, first = report_case(
        case_id=number,
        source=draft.source,
        class_kind=draft.case_class.kind,
        class_code=draft.case_class.code,
        reported_at=at,
        actor_role=draft.actor_role,
        urgency=draft.urgency,
        grid_code=draft.grid_code,
        department=draft.department,
        alarm_id=None if draft.alarm_id is None else str(draft.alarm_id),
        actor_id=draft.actor_id,
        note=draft.note,
    )
    state, automatic = apply_auto_actions(
        state,
        auto_register=draft.auto_register,
        auto_dispatch=draft.auto_dispatch,
        department=draft.department,
        at=at,
    )
    columns = _state_columns(setup, state)
    row = conn.execute(
        "INSERT INTO cases (case_number, source, class_kind, class_code, urgency, status,"
        " grid_code, department, lat, lon, address, description, alarm_id, device_id, evidence,"
        " state, version, reported_at, registered_at, dispatched_at, handled_at, closed_at,"
        " finished_at, updated_at, stage, stage_started_at, stage_due_at, stage_yellow_at,"
        " stage_overdue_at, stage_due_beyond_calendar) VALUES (%(number)s, %(source)s,"
        " %(class_kind)s, %(class_code)s,"
        " %(urgency)s, %(status)s, %(grid_code)s, %(department)s, %(lat)s, %(lon)s,"
        " %(address)s, %(description)s, %(alarm_id)s, %(device_id)s, %(evidence)s, %(state)s,"
        " %(version)s, %(reported_at)s, %(registered_at)s, %(dispatched_at)s, %(handled_at)s,"
        " %(closed_at)s, %(finished_at)s, %(updated_at)s, %(stage)s, %(stage_started_at)s,"
        " %(stage_due_at)s, %(stage_yellow_at)s, %(stage_overdue_at)s,"
        " %(stage_due_beyond_calendar)s)"
        f" RETURNING {_COLUMNS}",
        {
            **columns,
            "number": number,
            "source": draft.source.value,
            "lat": draft.lat,
            "lon": draft.lon,
            "address": draft.address,
            "description": draft.description,
            "alarm_id": draft.alarm_id,
            "device_id": draft.device_id,
            "evidence": Jsonb(alarms.json_value(dict(draft.evidence))),
        },
    ).fetchone()
    if row is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
        raise RuntimeError("case insert returned nothing")
    record = _record(row)
    _insert_events(conn, setup, record, (first, *automatic), targets, at)
    return record


def get_case(conn: Conn, case_id: int, *, lock: bool = False) -> CaseRecord | None:
    """One case by id."""
    suffix = " FOR UPDATE" if lock else ""
    row = conn.execute(f"SELECT {_COLUMNS} FROM cases WHERE id = %s{suffix}", (case_id,)).fetchone()
    return None if row is None else _record(row)


def get_case_by_number(conn: Conn, case_number: str) -> CaseRecord | None:
    """One case by its case number."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM cases WHERE case_number = %s", (case_number,)
    ).fetchone()
    return None if row is None else _record(row)


def list_case_events(conn: Conn, case_id: int, case_number: str) -> list[CaseEvent]:
    """A case's event log in order."""
    rows = conn.execute(
        "SELECT seq, action, from_status, to_status, actor_role, at, actor_id, note, payload"
        " FROM case_events WHERE case_id = %s ORDER BY seq",
        (case_id,),
    ).fetchall()
    return [
        CaseEvent(
            case_id=case_number,
            seq=int(r[0]),
            action=Action(r[1]),
            from_status=None if r[2] is None else CaseStatus(r[2]),
            to_status=CaseStatus(r[3]),
            actor_role=Role(r[4]),
            at=r[5],
            actor_id=r[6],
            note=str(r[7]),
            payload=MappingProxyType(dict(r[8] or {})),
        )
        for r in rows
    ]


def act_on_case(
    conn: Conn,
    setup: CaseSetup,
    case_id: int,
    action: Action,
    actor_role: Role,
    at: datetime,
    payload: Payload | None = None,
    *,
    actor_id: str | None = None,
    expected_version: int | None = None,
    targets: Sequence[OutboxTarget] = (),
) -> tuple[CaseRecord, CaseEvent]:
    """Apply a workflow action; WorkflowError when refused, CaseConflictError on a stale version."""
    record = get_case(conn, case_id)
    if record is None:
        raise CaseNotFoundError(f"no case with id {case_id}")
    old = record.state
    if expected_version is not None and expected_version != old.version:
        raise CaseConflictError(
            f"case {record.case_number} is at version {old.version}, not {expected_version}: "
            "read it again"
        )
    _check_transition(setup, record, action, actor_role)
    check_step(setup, old, action, payload or {})
    check_duty(setup, old, action, actor_role, actor_id)
    state, event = apply_action(
        old, action, actor_role, at, payload, actor_id=actor_id, workflow=setup.workflow
    )
    state, event = complete_step(setup, old, state, event)
    columns = _state_columns(setup, state)
    attachment = None
    if action is Action.ATTACH_EVIDENCE:
        attachment = Jsonb(
            [alarms.json_value({**dict(event.payload), "at": at, "actor_role": actor_role})]
        )
    row = conn.execute(
        "UPDATE cases SET status = %(status)s, class_kind = %(class_kind)s,"
        " class_code = %(class_code)s, urgency = %(urgency)s, grid_code = %(grid_code)s,"
        " department = %(department)s, state = %(state)s, version = %(version)s,"
        " registered_at = %(registered_at)s, dispatched_at = %(dispatched_at)s,"
        " handled_at = %(handled_at)s, closed_at = %(closed_at)s, finished_at = %(finished_at)s,"
        " updated_at = %(updated_at)s, stage = %(stage)s, stage_started_at = %(stage_started_at)s,"
        " stage_due_at = %(stage_due_at)s, stage_yellow_at = %(stage_yellow_at)s,"
        " stage_overdue_at = %(stage_overdue_at)s,"
        " stage_due_beyond_calendar = %(stage_due_beyond_calendar)s,"
        " evidence = CASE WHEN %(attachment)s::jsonb IS NULL THEN evidence ELSE jsonb_set("
        " evidence, '{attachments}', coalesce(evidence -> 'attachments', '[]'::jsonb)"
        " || %(attachment)s::jsonb) END"
        f" WHERE id = %(id)s AND version = %(old_version)s RETURNING {_COLUMNS}",
        {**columns, "attachment": attachment, "id": case_id, "old_version": old.version},
    ).fetchone()
    if row is None:
        raise CaseConflictError(
            f"case {record.case_number} changed while {action} was applied: read it again"
        )
    updated = _record(row)
    _insert_events(conn, setup, updated, (event,), targets, at)
    return updated, event


def _check_transition(
    setup: CaseSetup, record: CaseRecord, action: Action, actor_role: Role
) -> None:
    """Refuse an action the status does not allow (409) apart from one the role may not take."""
    status = record.state.status
    workflow = setup.workflow
    transition = workflow.find(status, action)
    if transition is None:
        raise IllegalTransitionError(
            f"cannot {action} case {record.case_number}: it is {status}; "
            f"allowed from {status}: {workflow.describe_allowed(status)}"
        )
    if actor_role is not Role.ADMIN and actor_role not in transition.roles:
        raise RoleRefusedError(
            f"role {actor_role} may not {action} case {record.case_number}; "
            f"{action} from {status} is for: {', '.join(sorted(transition.roles))}"
        )


def list_cases(conn: Conn, query: CaseFilter, now: datetime) -> list[CaseRecord]:
    """Cases matching a filter, newest first."""
    light = query.light.value if query.light else None
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM cases"
        " WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))"
        " AND (NOT %(open_only)s OR finished_at IS NULL)"
        " AND (%(class_code)s::text IS NULL OR class_code = %(class_code)s)"
        " AND (%(class_codes)s::text[] IS NULL OR class_code = ANY(%(class_codes)s))"
        " AND (%(numbers)s::text[] IS NULL OR case_number = ANY(%(numbers)s))"
        " AND (%(department)s::text IS NULL OR department = %(department)s)"
        " AND (%(area)s::text IS NULL OR grid_code LIKE %(area)s || '%%')"
        " AND (%(source)s::text IS NULL OR source = %(source)s)"
        " AND (%(alarm_id)s::bigint IS NULL OR alarm_id = %(alarm_id)s)"
        " AND (%(inspector)s::text IS NULL OR (finished_at IS NULL"
        "  AND state ->> 'inspector' = %(inspector)s))"
        " AND (%(since)s::timestamptz IS NULL OR reported_at >= %(since)s)"
        " AND (%(until)s::timestamptz IS NULL OR reported_at < %(until)s)"
        " AND (%(overdue)s::boolean IS NULL OR (%(overdue)s = (finished_at IS NULL"
        "  AND stage_overdue_at IS NOT NULL AND stage_overdue_at <= %(now)s)))"
        " AND (%(light)s::text IS NULL OR (finished_at IS NULL AND stage IS NOT NULL AND"
        "  CASE WHEN stage_overdue_at <= %(now)s THEN 'red'"
        "  WHEN stage_yellow_at <= %(now)s THEN 'yellow' ELSE 'green' END = %(light)s))"
        " ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {
            "statuses": [s.value for s in query.statuses] or None,
            "open_only": query.open_only,
            "class_code": query.class_code,
            "class_codes": list(query.class_codes) or None,
            "numbers": list(query.case_numbers) or None,
            "department": query.department,
            "area": query.area,
            "source": query.source.value if query.source else None,
            "alarm_id": query.alarm_id,
            "inspector": query.inspector,
            "since": query.reported_since,
            "until": query.reported_until,
            "overdue": query.overdue,
            "light": light,
            "now": now,
            "limit": query.limit,
            "offset": query.offset,
        },
    ).fetchall()
    return [_record(r) for r in rows]


def count_open_by_status_and_light(conn: Conn, now: datetime) -> list[tuple[str, str, int]]:
    """(status, light, count) of every open case with a running stage, at `now`."""
    rows = conn.execute(
        "SELECT status, CASE WHEN stage_overdue_at <= %(now)s THEN 'red'"
        " WHEN stage_yellow_at <= %(now)s THEN 'yellow' ELSE 'green' END AS light, count(*)"
        " FROM cases WHERE finished_at IS NULL AND stage IS NOT NULL GROUP BY 1, 2",
        {"now": now},
    ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def overdue_board(conn: Conn, now: datetime, limit: int) -> list[CaseRecord]:
    """Open cases past their stage's limit, longest overdue first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM cases WHERE finished_at IS NULL"
        " AND stage_overdue_at <= %s ORDER BY stage_overdue_at, id LIMIT %s",
        (now, limit),
    ).fetchall()
    return [_record(r) for r in rows]


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


def _device_component_code(setup: CaseSetup, class_code: str | None) -> str | None:
    """A registry class code as a 2026 component code (4-digit 2007 aliases translated)."""
    if class_code is None:
        return None
    try:
        return setup.classes.resolve(ClassKind.COMPONENT, class_code).code
    except ClassificationError:
        return None


def _open_case_of(
    conn: Conn, source_id: str, alarm_types: Iterable[AlarmType]
) -> tuple[int, AlarmType, str] | None:
    """The newest open case filed from an alarm of one of `alarm_types` on `source_id`,
    with that alarm's type and source, locked for the caller's transaction."""
    row = conn.execute(
        "SELECT c.id, a.alarm_type, a.source_id FROM cases c JOIN alarms a ON a.case_id = c.id"
        " WHERE a.source_id = %s AND a.alarm_type = ANY(%s) AND c.finished_at IS NULL"
        " ORDER BY c.id DESC LIMIT 1 FOR UPDATE OF c",
        (source_id, sorted(t.value for t in alarm_types)),
    ).fetchone()
    return None if row is None else (int(row[0]), AlarmType(row[1]), str(row[2]))


# How much of a joining alarm's evidence (its latest readings) goes into the case event.
_JOIN_EVIDENCE_READINGS = 5


def _join_payload(
    alarm: AlarmRecord, lookup: JoinLookup, case_alarm_type: AlarmType, case_source_id: str
) -> dict[str, PayloadValue]:
    """The attach_evidence payload of an alarm joining an open case: why, and its evidence."""
    if lookup.incident == RECURRENCE or (
        case_alarm_type == alarm.alarm_type and case_source_id == alarm.source_id
    ):
        why = f"{alarm.alarm_type} alarm {alarm.id} raised again"
    elif lookup.scope is JoinScope.PARENT:
        why = (
            f"{alarm.alarm_type} alarm {alarm.id} of {alarm.source_id} joins the"
            f" {lookup.incident} case of {case_source_id}"
        )
    else:
        why = f"{alarm.alarm_type} alarm {alarm.id} raised on the same device"
    readings = [dict(e) for e in alarm.evidence[-_JOIN_EVIDENCE_READINGS:]]
    return {
        "evidence": why,
        "alarm_id": alarm.id,
        "alarm_type": alarm.alarm_type.value,
        "source_id": alarm.source_id,
        "incident": lookup.incident,
        "raised_at": alarm.raised_at.isoformat(),
        "message": alarm.message,
        "readings": json.dumps(alarms.json_value(readings), ensure_ascii=False),
    }


def _file_one(
    conn: Conn,
    setup: CaseSetup,
    alarm: AlarmRecord,
    now: datetime,
    targets: Sequence[OutboxTarget],
    event_now: datetime,
) -> FiledAlarm:
    device = registry.get_device(conn, alarm.source_id)
    # How long the alarm held is a question of event time: until the event clock, or
    # until it cleared.
    held_to = event_now if alarm.cleared_at is None else min(event_now, alarm.cleared_at)
    decision = decide_filing(
        setup.policy,
        setup.classes,
        alarm_type=alarm.alarm_type,
        severity=alarm.severity,
        active_since_at=alarm.raised_at,
        now_at=held_to,
        device_class_code=_device_component_code(setup, device.class_code if device else None),
    )
    if decision.outcome is FilingOutcome.SKIP:
        alarms.set_filing_due(conn, alarm.id, None)
        return FiledAlarm(alarm.id, decision.outcome, decision.reason)
    if decision.outcome is FilingOutcome.WAIT:
        again_at = decision.file_at if alarm.cleared_at is None else None  # cleared too soon
        alarms.set_filing_due(conn, alarm.id, again_at)
        return FiledAlarm(alarm.id, decision.outcome, decision.reason)
    parent_id = device.parent_id if device is not None else None
    for lookup in setup.policy.join_lookups(alarm.alarm_type):
        source_id = alarm.source_id if lookup.scope is JoinScope.SOURCE else parent_id
        if source_id is None:
            continue
        found = _open_case_of(conn, source_id, lookup.alarm_types)
        if found is None:
            continue
        existing, case_alarm_type, case_source_id = found
        record, _ = act_on_case(
            conn,
            setup,
            existing,
            Action.ATTACH_EVIDENCE,
            Role.SYSTEM,
            max(now, _updated_at(conn, existing)),
            _join_payload(alarm, lookup, case_alarm_type, case_source_id),
            targets=targets,
        )
        alarms.link_case(conn, alarm.id, record.id)
        again = case_alarm_type == alarm.alarm_type and case_source_id == alarm.source_id
        reason = (
            "recurrence added to the open case"
            if again
            else f"joined the open {lookup.incident} case"
        )
        return FiledAlarm(alarm.id, decision.outcome, reason, record)
    draft = draft_alarm_case(setup, decision, alarm, device)
    record = open_case(conn, setup, draft, now, targets)
    alarms.link_case(conn, alarm.id, record.id)
    return FiledAlarm(alarm.id, decision.outcome, decision.reason, record)


def _updated_at(conn: Conn, case_id: int) -> datetime:
    row = conn.execute("SELECT updated_at FROM cases WHERE id = %s", (case_id,)).fetchone()
    if row is None:  # pragma: no cover - the caller just found the case
        raise CaseNotFoundError(f"no case with id {case_id}")
    updated_at: datetime = row[0]
    return updated_at


def file_due_alarms(
    conn: Conn,
    setup: CaseSetup,
    now: datetime,
    targets: Sequence[OutboxTarget] = (),
    limit: int = 100,
    event_now: datetime | None = None,
) -> list[FiledAlarm]:
    """Apply the filing policy to alarms whose decision is due (in the caller's transaction).

    `event_now` is the stream's event clock (`RuleEngine.event_clock`): a filing delay
    compares it with the alarm's event-time `raised_at`, so a backlog files what the same
    readings file arriving live. It defaults to `now`, which stamps the cases. An alarm
    that cannot be filed (e.g. no class for it) is logged and not looked at again.
    """
    event_at = now if event_now is None else event_now
    results: list[FiledAlarm] = []
    for alarm in alarms.alarms_due_for_filing(conn, event_at, limit):
        try:
            with conn.transaction():
                results.append(_file_one(conn, setup, alarm, now, targets, event_at))
        except (PolicyError, ClassificationError, ValueError) as err:
            log.warning("alarm %d cannot be filed: %s", alarm.id, err)
            alarms.set_filing_due(conn, alarm.id, None)
            results.append(FiledAlarm(alarm.id, FilingOutcome.SKIP, f"cannot be filed: {err}"))
    return results


def check_clearances(
    conn: Conn,
    setup: CaseSetup,
    now: datetime,
    stay_clear: timedelta,
    targets: Sequence[OutboxTarget] = (),
    limit: int = 100,
    event_now: datetime | None = None,
) -> list[ClearanceCheck]:
    """Attach to their cases the alarms that cleared and stayed clear for `stay_clear`.

    "Stayed clear" is measured in event time (`event_now`, default `now`), like the
    clear itself. Closing stays a person's decision: the case gets an attach_evidence
    event for the inspector's verification, nothing more. A clear by a person is not
    evidence.
    """
    event_at = now if event_now is None else event_now
    results: list[ClearanceCheck] = []
    for alarm in alarms.clearances_to_check(conn, event_at - stay_clear, limit):
        if alarm.case_id is None or alarm.cleared_at is None:  # pragma: no cover - by query
            continue
        outcome = _check_one(conn, alarm, alarm.case_id, alarm.cleared_at, stay_clear)
        alarms.mark_clear_checked(
            conn,
            alarm.id,
            now,
            {
                "stayed_clear": outcome.stayed_clear,
                "attached": outcome.attached,
                "why": outcome.reason,
            },
        )
        results.append(outcome)
        if outcome.attached:
            _attach_clearance(
                conn, setup, alarm, alarm.case_id, alarm.cleared_at, stay_clear, now, targets
            )
    return results


def _check_one(
    conn: Conn, alarm: AlarmRecord, case_id: int, cleared_at: datetime, stay_clear: timedelta
) -> ClearanceCheck:
    if alarm.cleared_by is not None:
        return ClearanceCheck(alarm.id, case_id, False, False, f"cleared by {alarm.cleared_by}")
    later = alarms.recurred_since(conn, alarm)
    if later is not None and later.raised_at <= cleared_at + stay_clear:
        return ClearanceCheck(
            alarm.id, case_id, False, False, f"recurred as alarm {later.id} at {later.raised_at}"
        )
    record = get_case(conn, case_id, lock=True)
    if record is None or not record.state.is_open:
        return ClearanceCheck(alarm.id, case_id, True, False, "the case is no longer open")
    return ClearanceCheck(alarm.id, case_id, True, True, "stayed clear")


def _attach_clearance(
    conn: Conn,
    setup: CaseSetup,
    alarm: AlarmRecord,
    case_id: int,
    cleared_at: datetime,
    stay_clear: timedelta,
    now: datetime,
    targets: Sequence[OutboxTarget],
) -> None:
    minutes = stay_clear.total_seconds() / 60
    payload: dict[str, PayloadValue] = {
        "evidence": (
            f"{alarm.alarm_type} alarm {alarm.id} of {alarm.source_id} cleared at "
            f"{cleared_at.isoformat()} and stayed clear for {minutes:g} min"
        ),
        "alarm_id": alarm.id,
        "cleared_at": cleared_at.isoformat(),
        "stayed_clear_s": stay_clear.total_seconds(),
        "note": "sensor verification: the fault is no longer reported",
    }
    act_on_case(
        conn,
        setup,
        case_id,
        Action.ATTACH_EVIDENCE,
        Role.SYSTEM,
        max(now, _updated_at(conn, case_id)),
        payload,
        targets=targets,
    )


class CaseStore:
    """Cases through a connection pool: one transaction per operation."""

    def __init__(
        self, db: Database, setup: CaseSetup, targets: Sequence[OutboxTarget] = ()
    ) -> None:
        self.db = db
        self.setup = setup
        self.targets = tuple(targets)

    def report(self, report: PersonReport, at: datetime) -> CaseRecord:
        """Open a case from a person's report (IntakeError or ClassificationError if it cannot)."""
        draft = draft_person_case(self.setup, report)
        with self.db.connection() as conn:
            return open_case(conn, self.setup, draft, at, self.targets)

    def act(
        self,
        case_id: int,
        action: Action,
        actor_role: Role,
        at: datetime,
        payload: Payload | None = None,
        *,
        actor_id: str | None = None,
        expected_version: int | None = None,
    ) -> CaseRecord:
        """Apply one workflow action as one transaction."""
        with self.db.connection() as conn:
            record, _ = act_on_case(
                conn,
                self.setup,
                case_id,
                action,
                actor_role,
                at,
                payload,
                actor_id=actor_id,
                expected_version=expected_version,
                targets=self.targets,
            )
        return record

    def get(self, case_id: int) -> CaseRecord | None:
        """One case by id."""
        with self.db.connection() as conn:
            return get_case(conn, case_id)

    def get_by_number(self, case_number: str) -> CaseRecord | None:
        """One case by case number."""
        with self.db.connection() as conn:
            return get_case_by_number(conn, case_number)

    def events(self, record: CaseRecord) -> list[CaseEvent]:
        """A case's event log."""
        with self.db.connection() as conn:
            return list_case_events(conn, record.id, record.case_number)

    def search(self, query: CaseFilter, now: datetime) -> list[CaseRecord]:
        """Cases matching a filter, newest first."""
        with self.db.connection() as conn:
            return list_cases(conn, query, now)

    def supervision(
        self, now: datetime, limit: int
    ) -> tuple[list[tuple[str, str, int]], list[CaseRecord]]:
        """Open cases counted by status and light, and the overdue board (值班长 view)."""
        with self.db.connection() as conn:
            return count_open_by_status_and_light(conn, now), overdue_board(conn, now, limit)

    def evaluate(
        self, start: datetime, end: datetime, as_of: datetime
    ) -> dict[str, DepartmentScore]:
        """Department figures, scores and grades for cases registered in [start, end)."""
        with self.db.connection() as conn:
            return evaluate_period(conn, self.setup, start, end, as_of)

    def file_due_alarms(self, now: datetime, event_now: datetime | None = None) -> list[FiledAlarm]:
        """Run the filing policy over alarms whose decision is due at event time `event_now`."""
        results: list[FiledAlarm] = []
        while True:
            with self.db.connection() as conn:
                batch = file_due_alarms(conn, self.setup, now, self.targets, event_now=event_now)
            results.extend(batch)
            if len(batch) < 100:
                return results

    def check_clearances(
        self, now: datetime, stay_clear: timedelta, event_now: datetime | None = None
    ) -> list[ClearanceCheck]:
        """Attach stayed-clear alarms to their cases as verification evidence."""
        with self.db.connection() as conn:
            return check_clearances(
                conn, self.setup, now, stay_clear, self.targets, event_now=event_now
            )
