"""Tests of the case state machine: every allowed transition, refusals, counters."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from hub.cases.calendar import Pause, Urgency
from hub.cases.classification import ClassificationError, ClassKind
from hub.cases.steps import apply_auto_actions
from hub.cases.workflow import (
    DEFAULT_WORKFLOW,
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Action,
    CaseSource,
    CaseState,
    CaseStatus,
    Payload,
    Role,
    Transition,
    WorkflowError,
    apply_action,
    report_case,
    stage_of,
)

T0 = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
GRID = "320102001002003"
PAYLOAD: Payload = {
    "note": "why",
    "department": "drainage",
    "extension_h": 7.5,
    "evidence": "alarm cleared and stayed clear",
    "into": "C-2",
    "satisfaction": "satisfied",
}

# How to reach each status from a fresh report: (action, role, payload) steps.
_Step = tuple[Action, Role, Payload]
_PATHS: dict[CaseStatus, tuple[_Step, ...]] = {}
_PATHS[CaseStatus.REPORTED] = ()
_PATHS[CaseStatus.CHECKING] = ((Action.REQUEST_CHECK, Role.INTAKE_OPERATOR, {}),)
_PATHS[CaseStatus.REJECTED] = ((Action.REJECT, Role.INTAKE_OPERATOR, {"note": "duplicate"}),)
_PATHS[CaseStatus.VOIDED] = ((Action.VOID, Role.SHIFT_LEADER, {"note": "test report"}),)
_PATHS[CaseStatus.MERGED] = ((Action.MERGE, Role.INTAKE_OPERATOR, {"into": "C-2"}),)
_PATHS[CaseStatus.REGISTERED] = ((Action.REGISTER, Role.INTAKE_OPERATOR, {}),)
_PATHS[CaseStatus.DISPATCHED] = (
    *_PATHS[CaseStatus.REGISTERED],
    (Action.DISPATCH, Role.DISPATCHER, {"department": "street_lighting"}),
)
_PATHS[CaseStatus.IN_PROGRESS] = (
    *_PATHS[CaseStatus.DISPATCHED],
    (Action.ACCEPT, Role.DEPARTMENT, {}),
)
_PATHS[CaseStatus.RETURNED] = (
    *_PATHS[CaseStatus.IN_PROGRESS],
    (Action.RETURN, Role.DEPARTMENT, {"note": "not our asset"}),
)
_PATHS[CaseStatus.EXTENSION_REQUESTED] = (
    *_PATHS[CaseStatus.IN_PROGRESS],
    (Action.REQUEST_EXTENSION, Role.DEPARTMENT, {"extension_h": 7.5, "note": "parts"}),
)
_PATHS[CaseStatus.SUSPENSION_REQUESTED] = (
    *_PATHS[CaseStatus.IN_PROGRESS],
    (Action.REQUEST_SUSPENSION, Role.DEPARTMENT, {"note": "needs budget"}),
)
_PATHS[CaseStatus.SUSPENDED] = (
    *_PATHS[CaseStatus.SUSPENSION_REQUESTED],
    (Action.APPROVE_SUSPENSION, Role.DISPATCHER, {}),
)
_PATHS[CaseStatus.HANDLED] = (
    *_PATHS[CaseStatus.IN_PROGRESS],
    (Action.FEEDBACK, Role.DEPARTMENT, {"note": "lamp replaced"}),
)
_PATHS[CaseStatus.VERIFYING] = (
    *_PATHS[CaseStatus.HANDLED],
    (Action.SEND_FOR_VERIFICATION, Role.INTAKE_OPERATOR, {}),
)
_PATHS[CaseStatus.VERIFIED] = (
    *_PATHS[CaseStatus.VERIFYING],
    (Action.VERIFY_PASS, Role.INSPECTOR, {}),
)
_PATHS[CaseStatus.REWORK] = (
    *_PATHS[CaseStatus.VERIFYING],
    (Action.VERIFY_FAIL, Role.INSPECTOR, {"note": "still dark"}),
)
_PATHS[CaseStatus.CLOSED] = (
    *_PATHS[CaseStatus.VERIFIED],
    (Action.CLOSE, Role.SHIFT_LEADER, {}),
)


def _new_case() -> CaseState:
    state, _ = report_case(
        case_id="CG202603160001",
        source=CaseSource.SENSOR,
        class_kind=ClassKind.MATTER,
        class_code="01037",
        reported_at=T0,
        actor_role=Role.SYSTEM,
        grid_code=GRID,
        alarm_id="alarm-1",
    )
    return state


def _reach(status: CaseStatus) -> CaseState:
    state = _new_case()
    for index, (action, role, payload) in enumerate(_PATHS[status], start=1):
        state, _ = apply_action(state, action, role, T0 + timedelta(minutes=index), payload)
    assert state.status is status
    return state


def _later(state: CaseState) -> datetime:
    return state.updated_at + timedelta(minutes=5)


def test_every_status_has_a_path() -> None:
    assert set(_PATHS) == set(CaseStatus)


def _allowed_cases() -> Iterator[tuple[Transition, CaseStatus, Role]]:
    for transition in TRANSITIONS:
        for source in sorted(transition.sources):
            for role in sorted(transition.roles | {Role.ADMIN}):
                yield transition, source, role


@pytest.mark.parametrize(
    ("transition", "source", "role"),
    list(_allowed_cases()),
    ids=lambda v: str(v.action) if isinstance(v, Transition) else str(v),
)
def test_every_allowed_transition(transition: Transition, source: CaseStatus, role: Role) -> None:
    state = _reach(source)
    at = _later(state)
    new_state, event = apply_action(state, transition.action, role, at, PAYLOAD, actor_id="user-7")
    expected = transition.target or source
    assert new_state.status is expected
    assert new_state.updated_at == at
    assert new_state.version == state.version + 1
    assert event.seq == new_state.version
    assert (event.from_status, event.to_status) == (source, expected)
    assert (event.action, event.actor_role, event.actor_id, event.at) == (
        transition.action,
        role,
        "user-7",
        at,
    )
    assert event.note == "why"
    assert dict(event.payload) == dict(PAYLOAD)


def test_report_opens_in_reported_with_first_event() -> None:
    state, event = report_case(
        case_id="C1",
        source=CaseSource.INSPECTOR,
        class_kind=ClassKind.MATTER,
        class_code="06011",
        reported_at=T0,
        actor_role=Role.INSPECTOR,
        actor_id="inspector-3",
    )
    assert state.status is CaseStatus.REPORTED
    assert state.version == event.seq == 1
    assert event.action is Action.REPORT
    assert event.from_status is None
    assert event.to_status is CaseStatus.REPORTED
    assert stage_of(state.status) is not None


@pytest.mark.parametrize("role", [Role.DEPARTMENT, Role.DISPATCHER])
def test_report_refused_for_roles_that_do_not_report(role: Role) -> None:
    with pytest.raises(WorkflowError, match=rf"role {role} may not report a case"):
        report_case(
            case_id="C1",
            source=CaseSource.HOTLINE,
            class_kind=ClassKind.MATTER,
            class_code="06011",
            reported_at=T0,
            actor_role=role,
        )


def test_report_refuses_bad_codes() -> None:
    with pytest.raises(ClassificationError, match="unit grid code"):
        report_case(
            case_id="C1",
            source=CaseSource.SENSOR,
            class_kind=ClassKind.MATTER,
            class_code="01037",
            reported_at=T0,
            actor_role=Role.SYSTEM,
            grid_code="1234",
        )


REFUSED: list[tuple[CaseStatus, Action, Role, str]] = [
    # wrong state
    (
        CaseStatus.REPORTED,
        Action.DISPATCH,
        Role.DISPATCHER,
        "cannot dispatch case CG202603160001: it is reported; allowed from reported: "
        "request_check (intake_operator, shift_leader); "
        "register (intake_operator, shift_leader, system); "
        "reject (intake_operator, shift_leader); void (shift_leader); "
        "attach_evidence (any role)",
    ),
    (
        CaseStatus.DISPATCHED,
        Action.CLOSE,
        Role.SHIFT_LEADER,
        "cannot close case CG202603160001: it is dispatched; allowed from dispatched: "
        "accept (department); return (department); feedback (department); "
        "attach_evidence (any role)",
    ),
    (
        CaseStatus.CLOSED,
        Action.DISPATCH,
        Role.ADMIN,
        "cannot dispatch case CG202603160001: it is closed; allowed from closed: "
        "callback (intake_operator, shift_leader)",
    ),
    (
        CaseStatus.VOIDED,
        Action.DISPATCH,
        Role.ADMIN,
        "cannot dispatch case CG202603160001: it is voided; allowed from voided: "
        "none, voided is final",
    ),
    (
        CaseStatus.HANDLED,
        Action.VERIFY_PASS,
        Role.INSPECTOR,
        "it is handled; allowed from handled: send_for_verification",
    ),
    (CaseStatus.SUSPENDED, Action.FEEDBACK, Role.DEPARTMENT, "allowed from suspended: resume"),
    (CaseStatus.REGISTERED, Action.REGISTER, Role.INTAKE_OPERATOR, "it is registered"),
    (CaseStatus.REJECTED, Action.ATTACH_EVIDENCE, Role.SYSTEM, "none, rejected is final"),
    (CaseStatus.VOIDED, Action.REGISTER, Role.SHIFT_LEADER, "none, voided is final"),
    # wrong role
    (
        CaseStatus.REGISTERED,
        Action.DISPATCH,
        Role.DEPARTMENT,
        "role department may not dispatch case CG202603160001; "
        "dispatch from registered is for: dispatcher, system",
    ),
    (
        CaseStatus.VERIFIED,
        Action.CLOSE,
        Role.SYSTEM,
        "role system may not close case CG202603160001; close from verified is for: shift_leader",
    ),
    (
        CaseStatus.VERIFYING,
        Action.VERIFY_PASS,
        Role.DEPARTMENT,
        "role department may not verify_pass",
    ),
    (
        CaseStatus.REPORTED,
        Action.VOID,
        Role.INTAKE_OPERATOR,
        "void from reported is for: shift_leader",
    ),
    (
        CaseStatus.EXTENSION_REQUESTED,
        Action.APPROVE_EXTENSION,
        Role.DEPARTMENT,
        "approve_extension from extension_requested is for: dispatcher",
    ),
    (
        CaseStatus.RETURNED,
        Action.DISPATCH,
        Role.SYSTEM,
        "dispatch from returned is for: dispatcher",
    ),
]


@pytest.mark.parametrize(("status", "action", "role", "message"), REFUSED)
def test_refused_transitions(status: CaseStatus, action: Action, role: Role, message: str) -> None:
    state = _reach(status)
    with pytest.raises(WorkflowError) as caught:
        apply_action(state, action, role, _later(state), PAYLOAD)
    assert message in str(caught.value)


def test_every_action_not_allowed_from_a_status_is_refused() -> None:
    for status in CaseStatus:
        state = _reach(status)
        allowed = {t.action for t in DEFAULT_WORKFLOW.allowed_from(status)}
        for action in set(Action) - allowed - {Action.REPORT}:
            with pytest.raises(WorkflowError, match=rf"allowed from {status}: "):
                apply_action(state, action, Role.ADMIN, _later(state), PAYLOAD)


def test_every_role_not_allowed_is_refused() -> None:
    for transition in TRANSITIONS:
        for source in transition.sources:
            state = _reach(source)
            for role in set(Role) - transition.roles - {Role.ADMIN}:
                with pytest.raises(WorkflowError, match=rf"role {role} may not"):
                    apply_action(state, transition.action, role, _later(state), PAYLOAD)


def test_terminal_statuses_allow_nothing_but_the_call_back() -> None:
    for status in TERMINAL_STATUSES - {CaseStatus.CLOSED}:
        assert DEFAULT_WORKFLOW.allowed_from(status) == ()
    # 回访 after 结案 records the reporter's answer and leaves the case closed
    (callback,) = DEFAULT_WORKFLOW.allowed_from(CaseStatus.CLOSED)
    assert (callback.action, callback.target) == (Action.CALLBACK, None)
    assert all(DEFAULT_WORKFLOW.allowed_from(s) for s in OPEN_STATUSES)


def test_report_action_is_refused() -> None:
    with pytest.raises(WorkflowError, match="use report_case"):
        apply_action(_new_case(), Action.REPORT, Role.SYSTEM, T0)


@pytest.mark.parametrize(
    ("status", "action", "role", "missing"),
    [
        (CaseStatus.REPORTED, Action.REJECT, Role.INTAKE_OPERATOR, "note"),
        (CaseStatus.IN_PROGRESS, Action.RETURN, Role.DEPARTMENT, "note"),
        (CaseStatus.IN_PROGRESS, Action.REQUEST_EXTENSION, Role.DEPARTMENT, "extension_h"),
        (CaseStatus.VERIFYING, Action.VERIFY_FAIL, Role.INSPECTOR, "note"),
        (CaseStatus.RETURNED, Action.DISPATCH, Role.DISPATCHER, "department"),
        (CaseStatus.HANDLED, Action.ATTACH_EVIDENCE, Role.SYSTEM, "evidence"),
    ],
)
def test_missing_payload_is_refused(
    status: CaseStatus, action: Action, role: Role, missing: str
) -> None:
    state = _reach(status)
    with pytest.raises(WorkflowError, match=rf"{action} of case \S+ needs payload '{missing}'"):
        apply_action(state, action, role, _later(state), {"note": "x"} if missing != "note" else {})


def test_bad_payload_values_are_refused() -> None:
    state = _reach(CaseStatus.IN_PROGRESS)
    with pytest.raises(WorkflowError, match="positive number of hours"):
        apply_action(
            state,
            Action.REQUEST_EXTENSION,
            Role.DEPARTMENT,
            _later(state),
            {"extension_h": -1, "note": "x"},
        )
    registered = _reach(CaseStatus.REPORTED)
    with pytest.raises(WorkflowError, match="'urgency' must be one of"):
        apply_action(
            registered, Action.REGISTER, Role.INTAKE_OPERATOR, _later(registered), {"urgency": "x"}
        )


def test_dispatch_needs_a_department() -> None:
    state, _ = report_case(
        case_id="C9",
        source=CaseSource.HOTLINE,
        class_kind=ClassKind.MATTER,
        class_code="06011",
        reported_at=T0,
        actor_role=Role.INTAKE_OPERATOR,
    )
    state, _ = apply_action(state, Action.REGISTER, Role.INTAKE_OPERATOR, T0)
    with pytest.raises(WorkflowError, match="needs payload 'department'"):
        apply_action(state, Action.DISPATCH, Role.DISPATCHER, T0)


def test_returned_case_must_go_to_another_department() -> None:
    state = _reach(CaseStatus.RETURNED)
    with pytest.raises(WorkflowError, match="dispatch it to another department"):
        apply_action(
            state,
            Action.DISPATCH,
            Role.DISPATCHER,
            _later(state),
            {"department": "street_lighting"},
        )
    redispatched, _ = apply_action(
        state, Action.DISPATCH, Role.DISPATCHER, _later(state), {"department": "drainage"}
    )
    assert redispatched.department == "drainage"
    assert redispatched.dispatched_at == _later(state)
    assert redispatched.first_dispatched_at == state.first_dispatched_at
    assert redispatched.return_count == 1


def test_events_cannot_go_back_in_time() -> None:
    state = _reach(CaseStatus.REGISTERED)
    with pytest.raises(WorkflowError, match="before the case's last event"):
        apply_action(state, Action.DISPATCH, Role.DISPATCHER, T0, {"department": "x"})


def test_naive_time_is_refused() -> None:
    state = _reach(CaseStatus.REPORTED)
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_action(state, Action.REGISTER, Role.INTAKE_OPERATOR, datetime(2026, 3, 16, 12))  # noqa: DTZ001 - naive on purpose


def _run(state: CaseState, steps: list[tuple[Action, Role, Payload, datetime]]) -> CaseState:
    for action, role, payload, at in steps:
        state, _ = apply_action(state, action, role, at, payload)
    return state


def test_full_life_with_rework_extension_and_suspension_tracks_counters() -> None:
    h = timedelta(hours=1)
    state = _run(
        _new_case(),
        [
            (Action.REGISTER, Role.INTAKE_OPERATOR, {"urgency": "urgent"}, T0 + h),
            (Action.DISPATCH, Role.DISPATCHER, {"department": "street_lighting"}, T0 + 2 * h),
            (Action.ACCEPT, Role.DEPARTMENT, {}, T0 + 3 * h),
            (
                Action.REQUEST_EXTENSION,
                Role.DEPARTMENT,
                {"extension_h": 8, "note": "x"},
                T0 + 4 * h,
            ),
            (Action.APPROVE_EXTENSION, Role.DISPATCHER, {"extension_h": 4}, T0 + 5 * h),
            (Action.REQUEST_SUSPENSION, Role.DEPARTMENT, {"note": "budget"}, T0 + 6 * h),
            (Action.APPROVE_SUSPENSION, Role.DISPATCHER, {}, T0 + 7 * h),
        ],
    )
    assert state.urgency is Urgency.URGENT
    assert state.registered_at == T0 + h
    assert state.dispatched_at == state.first_dispatched_at == T0 + 2 * h
    assert state.accepted_at == T0 + 3 * h
    assert state.extension_count == 1
    assert state.extension_granted == timedelta(hours=4)
    assert state.requested_extension is None
    assert state.suspension_count == 1
    assert state.pauses == (
        Pause(start_at=T0 + 5 * h, granted=timedelta(hours=4)),
        Pause(start_at=T0 + 7 * h),
    )
    state = _run(
        state,
        [
            (Action.RESUME, Role.DISPATCHER, {}, T0 + 9 * h),
            (Action.FEEDBACK, Role.DEPARTMENT, {}, T0 + 10 * h),
        ],
    )
    assert state.pauses == (
        Pause(start_at=T0 + 5 * h, end_at=T0 + 9 * h, granted=timedelta(hours=4)),
        Pause(start_at=T0 + 7 * h, end_at=T0 + 9 * h),
    )
    assert state.handled_at == T0 + 10 * h
    state = _run(
        state,
        [
            (Action.SEND_FOR_VERIFICATION, Role.SYSTEM, {}, T0 + 11 * h),
            (Action.VERIFY_FAIL, Role.INSPECTOR, {"note": "still dark"}, T0 + 12 * h),
        ],
    )
    assert state.status is CaseStatus.REWORK
    assert state.rework_count == 1
    assert state.stage_started_at == T0 + 12 * h
    state = _run(
        state,
        [
            (Action.DISPATCH, Role.DISPATCHER, {}, T0 + 13 * h),
            (Action.FEEDBACK, Role.DEPARTMENT, {}, T0 + 14 * h),
            (Action.SEND_FOR_VERIFICATION, Role.INTAKE_OPERATOR, {}, T0 + 15 * h),
            (Action.VERIFY_PASS, Role.INSPECTOR, {}, T0 + 16 * h),
            (Action.CLOSE, Role.SHIFT_LEADER, {}, T0 + 17 * h),
        ],
    )
    assert state.status is CaseStatus.CLOSED
    assert state.department == "street_lighting"
    assert state.dispatched_at == T0 + 13 * h
    assert state.first_dispatched_at == T0 + 2 * h
    assert state.handled_at == T0 + 14 * h
    assert state.verified_at == T0 + 16 * h
    assert state.closed_at == state.finished_at == T0 + 17 * h
    assert state.rework_count == 1
    assert not state.is_open
    assert state.version == 17  # the report plus 16 actions


def test_denials_return_to_handling_without_pausing() -> None:
    state = _reach(CaseStatus.EXTENSION_REQUESTED)
    denied, _ = apply_action(
        state, Action.DENY_EXTENSION, Role.DISPATCHER, _later(state), {"note": "no"}
    )
    assert denied.status is CaseStatus.IN_PROGRESS
    assert denied.pauses == ()
    assert denied.extension_count == 0
    state = _reach(CaseStatus.SUSPENSION_REQUESTED)
    denied, _ = apply_action(
        state, Action.DENY_SUSPENSION, Role.DISPATCHER, _later(state), {"note": "no"}
    )
    assert denied.status is CaseStatus.IN_PROGRESS
    assert denied.suspension_count == 0


def test_check_records_confirmation() -> None:
    state = _reach(CaseStatus.CHECKING)
    checked, _ = apply_action(
        state, Action.COMPLETE_CHECK, Role.INSPECTOR, _later(state), {"confirmed": False}
    )
    assert checked.status is CaseStatus.REPORTED
    assert checked.checked is False
    with pytest.raises(WorkflowError, match="'confirmed' must be true or false"):
        apply_action(state, Action.COMPLETE_CHECK, Role.INSPECTOR, _later(state), {"confirmed": 1})


def test_attach_evidence_keeps_the_status() -> None:
    state = _reach(CaseStatus.HANDLED)
    same, event = apply_action(
        state, Action.ATTACH_EVIDENCE, Role.SYSTEM, _later(state), {"evidence": "alarm cleared"}
    )
    assert same.status is CaseStatus.HANDLED
    assert same.stage_started_at == state.stage_started_at
    assert event.payload["evidence"] == "alarm cleared"


def test_auto_actions_register_and_dispatch_by_policy() -> None:
    state, events = apply_auto_actions(
        _new_case(), auto_register=True, auto_dispatch=True, department="street_lighting", at=T0
    )
    assert state.status is CaseStatus.DISPATCHED
    assert [e.action for e in events] == [Action.REGISTER, Action.DISPATCH]
    assert all(e.actor_role is Role.SYSTEM for e in events)
    only_registered, events = apply_auto_actions(
        _new_case(), auto_register=True, auto_dispatch=False, department="x", at=T0
    )
    assert only_registered.status is CaseStatus.REGISTERED
    assert len(events) == 1
    untouched, events = apply_auto_actions(
        _new_case(), auto_register=False, auto_dispatch=False, department=None, at=T0
    )
    assert untouched.status is CaseStatus.REPORTED
    assert events == ()


def test_policy_can_let_the_system_verify_and_close() -> None:
    workflow = DEFAULT_WORKFLOW.with_roles(Action.VERIFY_PASS, [Role.SYSTEM]).with_roles(
        Action.CLOSE, [Role.SYSTEM]
    )
    state = _reach(CaseStatus.VERIFYING)
    state, _ = apply_action(
        state, Action.VERIFY_PASS, Role.SYSTEM, _later(state), workflow=workflow
    )
    state, _ = apply_action(state, Action.CLOSE, Role.SYSTEM, _later(state), workflow=workflow)
    assert state.status is CaseStatus.CLOSED
    assert Action.CLOSE not in DEFAULT_WORKFLOW.allowed_actions(CaseStatus.VERIFIED, Role.SYSTEM)


def test_allowed_actions_per_role() -> None:
    assert DEFAULT_WORKFLOW.allowed_actions(CaseStatus.IN_PROGRESS, Role.DEPARTMENT) == (
        Action.RETURN,
        Action.REQUEST_EXTENSION,
        Action.REQUEST_SUSPENSION,
        Action.FEEDBACK,
        Action.ATTACH_EVIDENCE,
    )
    assert DEFAULT_WORKFLOW.allowed_actions(CaseStatus.CLOSED, Role.ADMIN) == (Action.CALLBACK,)
    assert DEFAULT_WORKFLOW.allowed_actions(CaseStatus.MERGED, Role.ADMIN) == ()
