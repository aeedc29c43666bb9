"""What a workflow step needs from the city's setup and its people: a known department to
dispatch to, the on-site check (核实) before a public report is registered, re-routing when
立案 changes the class, and separated duties (an on-site task is done by the inspector it
is assigned to; by policy, nobody verifies their own dispatch). The pure workflow knows
states and roles; this knows the city and who is acting.
"""

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType

from hub.cases.intake import CaseSetup, route_department
from hub.cases.workflow import (
    Action,
    CaseEvent,
    CaseState,
    CaseStatus,
    Payload,
    PayloadValue,
    Role,
    WorkflowError,
    apply_action,
)


class StepPreconditionError(WorkflowError):
    """The status allows the action, but a step that must come first has not happened."""


class DutyRefusedError(WorkflowError):
    """The role may take the action, but not this person: the task is someone else's."""


ON_SITE_ACTIONS = frozenset({Action.COMPLETE_CHECK, Action.VERIFY_PASS, Action.VERIFY_FAIL})
VERIFY_ACTIONS = frozenset({Action.VERIFY_PASS, Action.VERIFY_FAIL})


def check_duty(
    setup: CaseSetup, state: CaseState, action: Action, actor_role: Role, actor_id: str | None
) -> None:
    """Refuse a person who may not take this case's task (admin is never refused here)."""
    if actor_role is Role.ADMIN or action not in ON_SITE_ACTIONS:
        return
    if state.inspector is not None and actor_id != state.inspector:
        raise DutyRefusedError(
            f"the on-site task of case {state.case_id} is assigned to inspector "
            f"{state.inspector}; {actor_id or 'an unnamed actor'} may not {action}"
        )
    if (
        action in VERIFY_ACTIONS
        and setup.policy.centre.separate_dispatch_and_verify
        and actor_id is not None
        and actor_id == state.dispatched_by
    ):
        raise DutyRefusedError(
            f"{actor_id} dispatched case {state.case_id} and so may not verify it (核查): "
            "policy centre.separate_dispatch_and_verify; assign another inspector"
        )


def known_departments(departments: Mapping[str, str]) -> str:
    """The policy's departments as `code (name)`, for a message that says what to send."""
    return ", ".join(f"{code} ({name})" for code, name in sorted(departments.items()))


def check_step(setup: CaseSetup, state: CaseState, action: Action, payload: Payload) -> None:
    """Refuse a step the city's setup does not allow; WorkflowError says what to send instead."""
    if action is Action.DISPATCH:
        given = payload.get("department")
        department = given if isinstance(given, str) and given.strip() else state.department
        departments = setup.policy.departments
        if department is not None and department.strip() not in departments:
            raise WorkflowError(
                f"department {department!r} is not a known department; dispatch to one of: "
                f"{known_departments(departments)}"
            )
    if action is Action.REGISTER and state.source in setup.policy.centre.check_before_register:
        if state.checked is None:
            raise StepPreconditionError(
                f"case {state.case_id} is a public ({state.source}) report: it is checked on "
                "site (核实) before registration: request_check, then the inspector's "
                "complete_check"
            )
        if state.checked is False:
            raise StepPreconditionError(
                f"the on-site check (核实) of case {state.case_id} did not confirm the problem: "
                "reject it (不予受理), or request_check again"
            )


def _with_note(event: CaseEvent, note: str, extra: Mapping[str, PayloadValue]) -> CaseEvent:
    text = f"{event.note}; {note}" if event.note else note
    return replace(event, note=text, payload=MappingProxyType({**event.payload, **extra}))


def complete_step(
    setup: CaseSetup, before: CaseState, after: CaseState, event: CaseEvent
) -> tuple[CaseState, CaseEvent]:
    """What follows a step: 立案 that changes the class re-routes the case by the routing
    table (the timeline says so); a dispatch records its dispatcher; an urge its level."""
    if event.action is Action.DISPATCH:
        return replace(after, dispatched_by=event.actor_id), event
    if event.action is Action.URGE:
        level = after.urge_level
        return after, _with_note(event, f"督办 level {level}", {"level": level})
    if event.action is not Action.REGISTER:
        return after, event
    case_class = setup.classes.resolve(after.class_kind, after.class_code)
    after = replace(after, class_code=case_class.code)
    if case_class.code == before.class_code:
        return after, event
    department = route_department(setup, case_class.code, after.grid_code)
    if department == after.department:
        return after, event
    note = (
        f"reclassified {before.class_code} → {case_class.code}: re-routed from "
        f"{after.department or 'no department'} to {department}"
    )
    event = _with_note(event, note, {"department": department, "rerouted_from": after.department})
    return replace(after, department=department), event


POST_OF_STATUS: Mapping[CaseStatus, str] = MappingProxyType(
    {
        CaseStatus.REPORTED: "intake",
        CaseStatus.CHECKING: "inspector",
        CaseStatus.REGISTERED: "dispatch",
        CaseStatus.RETURNED: "dispatch",
        CaseStatus.REWORK: "dispatch",
        CaseStatus.EXTENSION_REQUESTED: "dispatch",
        CaseStatus.SUSPENSION_REQUESTED: "dispatch",
        CaseStatus.DISPATCHED: "department",
        CaseStatus.IN_PROGRESS: "department",
        CaseStatus.SUSPENDED: "department",
        CaseStatus.HANDLED: "intake",
        CaseStatus.VERIFYING: "inspector",
        CaseStatus.VERIFIED: "shift_leader",
    }
)
"""Whose queue an open case waits in (值班长 view): 受理员 intake, 监督员 inspector (核实,
核查), 派遣员 dispatch (including approvals of extension and suspension), the department,
and the shift leader (结案)."""


def apply_auto_actions(
    case_state: CaseState,
    *,
    auto_register: bool,
    auto_dispatch: bool,
    department: str | None,
    at: datetime,
) -> tuple[CaseState, tuple[CaseEvent, ...]]:
    """Register and dispatch a sensor case as the system, as far as the filing policy allows."""
    events: list[CaseEvent] = []
    state = case_state
    if auto_register and state.status is CaseStatus.REPORTED:
        state, event = apply_action(
            state, Action.REGISTER, Role.SYSTEM, at, {"note": "registered by filing policy"}
        )
        events.append(event)
    if auto_dispatch and state.status is CaseStatus.REGISTERED and department is not None:
        state, event = apply_action(
            state,
            Action.DISPATCH,
            Role.SYSTEM,
            at,
            {"department": department, "note": "dispatched by filing policy"},
        )
        events.append(event)
    return state, tuple(events)
