"""Case states and events survive the JSON round trip of the store, every field included."""

from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from hub.cases.calendar import Pause, Urgency
from hub.cases.classification import ClassKind
from hub.cases.state_codec import (
    CODED_FIELDS,
    StateCodecError,
    decode_case_state,
    encode_case_event,
    encode_case_state,
)
from hub.cases.workflow import (
    Action,
    CaseSource,
    CaseState,
    CaseStatus,
    Role,
    apply_action,
    report_case,
)

T0 = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)


def full_state() -> CaseState:
    state, _ = report_case(
        case_id="202603160001",
        source=CaseSource.SENSOR,
        class_kind=ClassKind.MATTER,
        class_code="01003",
        reported_at=T0,
        actor_role=Role.SYSTEM,
        urgency=Urgency.URGENT,
        grid_code="320102001002003",
        department="drainage",
        alarm_id="17",
    )
    return replace(
        state,
        status=CaseStatus.SUSPENDED,
        checked=True,
        registered_at=T0 + timedelta(minutes=1),
        first_dispatched_at=T0 + timedelta(minutes=2),
        dispatched_at=T0 + timedelta(minutes=3),
        accepted_at=T0 + timedelta(minutes=4),
        handled_at=T0 + timedelta(minutes=5),
        verified_at=T0 + timedelta(minutes=6),
        closed_at=T0 + timedelta(minutes=7),
        finished_at=T0 + timedelta(minutes=8),
        rework_count=1,
        return_count=2,
        extension_count=3,
        extension_granted=timedelta(hours=7.5),
        suspension_count=4,
        requested_extension=timedelta(hours=2),
        pauses=(
            Pause(start_at=T0, granted=timedelta(hours=7.5), end_at=T0 + timedelta(hours=1)),
            Pause(start_at=T0 + timedelta(hours=2)),
        ),
    )


def test_every_field_is_coded() -> None:
    assert {f.name for f in fields(CaseState)} == CODED_FIELDS


def test_round_trip_through_json() -> None:
    state = full_state()
    stored = orjson.loads(orjson.dumps(encode_case_state(state)))
    assert decode_case_state(stored) == state
    fresh, _ = report_case(
        case_id="x",
        source=CaseSource.HOTLINE,
        class_kind=ClassKind.MATTER,
        class_code="01037",
        reported_at=T0,
        actor_role=Role.INTAKE_OPERATOR,
    )
    assert decode_case_state(orjson.loads(orjson.dumps(encode_case_state(fresh)))) == fresh


def test_a_state_that_does_not_fit_fails_loudly() -> None:
    stored = encode_case_state(full_state())
    with pytest.raises(StateCodecError):
        decode_case_state({**stored, "status": "lost"})
    with pytest.raises(StateCodecError):
        decode_case_state({**stored, "reported_at": "2026-03-16T09:00:00"})
    with pytest.raises(StateCodecError):
        decode_case_state({k: v for k, v in stored.items() if k != "case_id"})


def test_event_document() -> None:
    state, _ = report_case(
        case_id="n1",
        source=CaseSource.HOTLINE,
        class_kind=ClassKind.MATTER,
        class_code="01003",
        reported_at=T0,
        actor_role=Role.INTAKE_OPERATOR,
    )
    _, event = apply_action(
        state, Action.REJECT, Role.SHIFT_LEADER, T0, {"note": "duplicate"}, actor_id="ld"
    )
    assert encode_case_event(event) == {
        "case_id": "n1",
        "seq": 2,
        "action": "reject",
        "from_status": "reported",
        "to_status": "rejected",
        "actor_role": "shift_leader",
        "actor_id": "ld",
        "at": T0.isoformat(),
        "note": "duplicate",
        "payload": {"note": "duplicate"},
    }
