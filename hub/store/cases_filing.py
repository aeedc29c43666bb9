"""Filing cases from alarms by the filing policy, joining alarms of one incident to one
case, and attaching alarms that cleared and stayed clear as verification evidence."""

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.cases.calendar import Urgency
from hub.cases.classification import ClassificationError, ClassKind
from hub.cases.intake import CaseSetup, draft_alarm_case
from hub.cases.routing import (
    RECURRENCE,
    FilingDecision,
    FilingOutcome,
    JoinLookup,
    JoinScope,
    PolicyError,
    decide_filing,
)
from hub.cases.workflow import Action, PayloadValue, Role
from hub.devices.registry import DeviceRecord
from hub.rules.alarm_changes import AlarmRecord
from hub.rules.alarm_types import AlarmType
from hub.store import alarms, registry
from hub.store.cases_records import CaseRecord, Conn, get_case
from hub.store.cases_streets import street_index
from hub.store.cases_workflow import _updated_at, act_on_case, open_case
from hub.store.outbox import OutboxTarget

log = logging.getLogger(__name__)


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


def _decide(
    setup: CaseSetup, alarm: AlarmRecord, device: DeviceRecord | None, event_now: datetime
) -> FilingDecision:
    """The filing policy's decision on one due alarm (no database)."""
    # How long the alarm held is a question of event time: until the event clock, or
    # until it cleared.
    held_to = event_now if alarm.cleared_at is None else min(event_now, alarm.cleared_at)
    return decide_filing(
        setup.policy,
        setup.classes,
        alarm_type=alarm.alarm_type,
        severity=alarm.severity,
        active_since_at=alarm.raised_at,
        now_at=held_to,
        device_class_code=_device_component_code(setup, device.class_code if device else None),
    )


def _file_one(
    conn: Conn,
    setup: CaseSetup,
    alarm: AlarmRecord,
    device: DeviceRecord | None,
    decision: FilingDecision,
    now: datetime,
    targets: Sequence[OutboxTarget],
) -> FiledAlarm:
    """File an alarm the policy files now: join its incident's open case, or open one."""
    parent_id = device.parent_id if device is not None else None
    for lookup in setup.policy.join_lookups(alarm.alarm_type):
        source_id = alarm.source_id if lookup.scope is JoinScope.SOURCE else parent_id
        if source_id is None:
            continue
        found = _open_case_of(conn, source_id, lookup.alarm_types)
        if found is None:
            continue
        existing, case_alarm_type, case_source_id = found
        payload = _join_payload(alarm, lookup, case_alarm_type, case_source_id)
        current = get_case(conn, existing)
        if (
            decision.urgency is Urgency.URGENT
            and current is not None
            and current.state.urgency is not Urgency.URGENT
        ):
            # an urgent alarm joining makes the case urgent: its deadlines shorten now
            payload["raise_urgency"] = True
            payload["note"] = f"urgent {alarm.alarm_type} alarm joined: the case is now urgent"
        record, _ = act_on_case(
            conn,
            setup,
            existing,
            Action.ATTACH_EVIDENCE,
            Role.SYSTEM,
            max(now, _updated_at(conn, existing)),
            payload,
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
    draft = draft_alarm_case(setup, decision, alarm, device, street_index(conn))
    record = open_case(conn, setup, draft, now, targets)
    alarms.link_case(conn, alarm.id, record.id)
    return FiledAlarm(alarm.id, decision.outcome, decision.reason, record)


# What makes an alarm one the policy cannot file (no class for it, a bad policy entry).
_UNFILEABLE = (PolicyError, ClassificationError, ValueError)


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

    The decisions are taken for the whole batch at once, from one look-up of its devices;
    what is skipped or waits is recorded by one statement. Only an alarm filed now costs
    statements of its own (in a savepoint, so one that fails leaves the others): a storm
    of alarms the policy never files (every truck's `no_permit` when permits are first
    loaded) costs a few round trips per hundred alarms, not five per alarm (issue 23).
    """
    event_at = now if event_now is None else event_now
    due = alarms.alarms_due_for_filing(conn, event_at, limit)
    devices = registry.get_devices(conn, {alarm.source_id for alarm in due})
    results: list[FiledAlarm] = []
    again: list[tuple[int, datetime | None]] = []
    for alarm in due:
        device = devices.get(alarm.source_id)
        try:
            decision = _decide(setup, alarm, device, event_at)
        except _UNFILEABLE as err:
            results.append(_cannot_file(alarm, err))
            again.append((alarm.id, None))
            continue
        if decision.outcome is FilingOutcome.SKIP:
            again.append((alarm.id, None))
        elif decision.outcome is FilingOutcome.WAIT:
            # cleared too soon: decided for good
            again.append((alarm.id, decision.file_at if alarm.cleared_at is None else None))
        else:
            try:
                with conn.transaction():
                    results.append(_file_one(conn, setup, alarm, device, decision, now, targets))
            except _UNFILEABLE as err:
                results.append(_cannot_file(alarm, err))
                again.append((alarm.id, None))
            continue
        results.append(FiledAlarm(alarm.id, decision.outcome, decision.reason))
    alarms.set_filing_due(conn, again)
    return results


def _cannot_file(alarm: AlarmRecord, err: Exception) -> FiledAlarm:
    log.warning("alarm %d cannot be filed: %s", alarm.id, err)
    return FiledAlarm(alarm.id, FilingOutcome.SKIP, f"cannot be filed: {err}")


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
