"""Case writes: opening a case and applying a workflow action, each with its events and outbox.

Every change of a case is one transaction: the new state (with optimistic concurrency
on its version), its events in `case_events` and their rows in the outbox. Case numbers
come from `case_number_seq`, one atomic counter per local date.
"""

from collections.abc import Sequence
from datetime import datetime

from psycopg.types.json import Jsonb

from hub.cases.attachments import check_required_photos
from hub.cases.intake import CaseDraft, CaseSetup
from hub.cases.state_codec import encode_case_event
from hub.cases.steps import apply_auto_actions, check_duty, check_step, complete_step
from hub.cases.workflow import (
    Action,
    CaseEvent,
    Payload,
    Role,
    apply_action,
    report_case,
)
from hub.store import alarms, outbox
from hub.store.cases_attachments import attachment_times
from hub.store.cases_records import (
    _COLUMNS,
    CaseConflictError,
    CaseNotFoundError,
    CaseRecord,
    Conn,
    IllegalTransitionError,
    RoleRefusedError,
    _record,
    _state_columns,
    case_document,
    get_case,
    next_case_number,
)
from hub.store.outbox import OutboxTarget


def _insert_events(
    conn: Conn,
    setup: CaseSetup,
    record: CaseRecord,
    events: Sequence[CaseEvent],
    targets: Sequence[OutboxTarget],
    now: datetime,
    ended: tuple[object, object] = (None, None),
) -> None:
    """Record events; `ended` is the timed stage the events ended and its deadline, if any."""
    conn.cursor().executemany(
        "INSERT INTO case_events (case_id, seq, action, from_status, to_status, actor_role,"
        " actor_id, at, note, payload, ended_stage, ended_stage_due_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
                alarms.jsonb(dict(e.payload)),
                *ended,
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
            "evidence": alarms.jsonb(dict(draft.evidence)),
        },
    ).fetchone()
    if row is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
        raise RuntimeError("case insert returned nothing")
    record = _record(row)
    _insert_events(conn, setup, record, (first, *automatic), targets, at)
    return record


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
    required_photos = setup.policy.centre.photos_required
    if action in required_photos:
        check_required_photos(required_photos, old, action, attachment_times(conn, case_id))
    state, event = apply_action(
        old, action, actor_role, at, payload, actor_id=actor_id, workflow=setup.workflow
    )
    state, event = complete_step(setup, old, state, event)
    columns = _state_columns(setup, state)
    ended: tuple[object, object] = (None, None)
    running = record.milestones  # the stage as stored before this action
    if running is not None and (running.stage.value, running.started_at) != (
        columns["stage"],
        columns["stage_started_at"],
    ):
        ended = (running.stage.value, running.due_at)  # this action ended a timed stage
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
    _insert_events(conn, setup, updated, (event,), targets, at, ended)
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


def _updated_at(conn: Conn, case_id: int) -> datetime:
    row = conn.execute("SELECT updated_at FROM cases WHERE id = %s", (case_id,)).fetchone()
    if row is None:  # pragma: no cover - the caller just found the case
        raise CaseNotFoundError(f"no case with id {case_id}")
    updated_at: datetime = row[0]
    return updated_at
