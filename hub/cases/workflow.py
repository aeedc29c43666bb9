"""The 数字城管 case workflow as data: states, actions, roles, and a pure `apply_action`.

Steps (DOMAIN.md): 上报 report → 立案 register (or 不予受理 reject / 作废 void) → 派遣
dispatch → 处置 handle (回退 return, 延期 extension, 挂账 suspension, each approved by the
dispatcher) → 反馈 feedback → 核查 verify (fail → 返工 rework, dispatched again) → 结案
close. Each transition yields a `CaseEvent` for the case's event log.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from hub.cases.calendar import Pause, Stage, Urgency, require_aware
from hub.cases.classification import ClassKind, parse_unit_grid_code, validate_class_code

PayloadValue = str | int | float | bool | None
Payload = Mapping[str, PayloadValue]

_EMPTY_PAYLOAD: Payload = MappingProxyType({})


class WorkflowError(ValueError):
    """An action is not allowed now, not for this role, or lacks what it needs."""


class CaseStatus(StrEnum):
    """Where a case stands in the workflow."""

    REPORTED = "reported"  # 上报
    CHECKING = "checking"  # 核实: a public report is being checked on site
    REGISTERED = "registered"  # 立案
    REJECTED = "rejected"  # 不予受理
    VOIDED = "voided"  # 作废
    DISPATCHED = "dispatched"  # 派遣
    IN_PROGRESS = "in_progress"  # 处置中
    RETURNED = "returned"  # 回退
    EXTENSION_REQUESTED = "extension_requested"  # 延期申请
    SUSPENSION_REQUESTED = "suspension_requested"  # 挂账申请
    SUSPENDED = "suspended"  # 挂账
    HANDLED = "handled"  # 反馈
    VERIFYING = "verifying"  # 核查
    VERIFIED = "verified"  # 核查通过
    REWORK = "rework"  # 返工
    CLOSED = "closed"  # 结案
    MERGED = "merged"  # 合并: a duplicate report, merged into the surviving case


TERMINAL_STATUSES: frozenset[CaseStatus] = frozenset(
    {CaseStatus.REJECTED, CaseStatus.VOIDED, CaseStatus.CLOSED, CaseStatus.MERGED}
)
OPEN_STATUSES: frozenset[CaseStatus] = frozenset(CaseStatus) - TERMINAL_STATUSES


class Role(StrEnum):
    """Who acts on a case."""

    INSPECTOR = "inspector"  # 监督员
    INTAKE_OPERATOR = "intake_operator"  # 受理员
    SHIFT_LEADER = "shift_leader"  # 值班长
    DISPATCHER = "dispatcher"  # 派遣员
    DEPARTMENT = "department"  # 专业部门 / 处置单位
    SYSTEM = "system"  # the hub itself, acting by policy
    ADMIN = "admin"  # may take any action the state allows


class CaseSource(StrEnum):
    """Where a report came from."""

    SENSOR = "sensor"
    INSPECTOR = "inspector"
    HOTLINE = "hotline"  # 12319
    OPEN311 = "open311"
    VIDEO = "video"
    SUPERIOR = "superior"


class Action(StrEnum):
    """Something an actor does to a case."""

    REPORT = "report"
    REQUEST_CHECK = "request_check"
    COMPLETE_CHECK = "complete_check"
    REGISTER = "register"
    REJECT = "reject"
    VOID = "void"
    DISPATCH = "dispatch"
    ACCEPT = "accept"
    RETURN = "return"
    REFUSE_RETURN = "refuse_return"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    DENY_EXTENSION = "deny_extension"
    REQUEST_SUSPENSION = "request_suspension"
    APPROVE_SUSPENSION = "approve_suspension"
    DENY_SUSPENSION = "deny_suspension"
    RESUME = "resume"
    FEEDBACK = "feedback"
    SEND_FOR_VERIFICATION = "send_for_verification"
    VERIFY_PASS = "verify_pass"  # noqa: S105 - an action name, not a secret
    VERIFY_FAIL = "verify_fail"
    CLOSE = "close"
    ATTACH_EVIDENCE = "attach_evidence"
    URGE = "urge"  # 督办: the shift leader urges an open case; each urge raises its level
    MERGE = "merge"  # 合并: this case duplicates another (payload `into`) and closes as merged
    CALLBACK = "callback"  # 回访: the reporter was called back after 结案; satisfaction recorded


class Satisfaction(StrEnum):
    """What a reporter said when called back (回访)."""

    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    UNSATISFIED = "unsatisfied"  # 不满意
    UNREACHABLE = "unreachable"  # 联系不上: no answer counts in no rate


SATISFIED_ANSWERS = frozenset({Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED})


@dataclass(frozen=True, slots=True)
class Transition:
    """One allowed action: from which statuses, to which status (None = unchanged), by whom."""

    action: Action
    sources: frozenset[CaseStatus]
    target: CaseStatus | None
    roles: frozenset[Role]
    required: tuple[str, ...] = ()


def _t(
    action: Action,
    sources: Iterable[CaseStatus],
    target: CaseStatus | None,
    roles: Iterable[Role],
    required: tuple[str, ...] = (),
) -> Transition:
    return Transition(action, frozenset(sources), target, frozenset(roles), required)


_S = CaseStatus
_R = Role
_A = Action
_CENTRE_INTAKE = (_R.INTAKE_OPERATOR, _R.SHIFT_LEADER)

TRANSITIONS: tuple[Transition, ...] = (
    _t(_A.REQUEST_CHECK, [_S.REPORTED], _S.CHECKING, _CENTRE_INTAKE),
    _t(_A.COMPLETE_CHECK, [_S.CHECKING], _S.REPORTED, [_R.INSPECTOR]),
    _t(_A.REGISTER, [_S.REPORTED], _S.REGISTERED, [*_CENTRE_INTAKE, _R.SYSTEM]),
    _t(_A.REJECT, [_S.REPORTED, _S.CHECKING], _S.REJECTED, _CENTRE_INTAKE, ("note",)),
    _t(
        _A.VOID,
        [_S.REPORTED, _S.CHECKING, _S.REGISTERED, _S.RETURNED],
        _S.VOIDED,
        [_R.SHIFT_LEADER],
        ("note",),
    ),
    _t(_A.DISPATCH, [_S.REGISTERED, _S.REWORK], _S.DISPATCHED, [_R.DISPATCHER, _R.SYSTEM]),
    _t(_A.DISPATCH, [_S.RETURNED], _S.DISPATCHED, [_R.DISPATCHER], ("department",)),
    _t(_A.ACCEPT, [_S.DISPATCHED], _S.IN_PROGRESS, [_R.DEPARTMENT]),
    _t(_A.RETURN, [_S.DISPATCHED, _S.IN_PROGRESS], _S.RETURNED, [_R.DEPARTMENT], ("note",)),
    _t(_A.REFUSE_RETURN, [_S.RETURNED], _S.DISPATCHED, [_R.DISPATCHER], ("note",)),
    _t(
        _A.REQUEST_EXTENSION,
        [_S.IN_PROGRESS],
        _S.EXTENSION_REQUESTED,
        [_R.DEPARTMENT],
        ("extension_h", "note"),
    ),
    _t(_A.APPROVE_EXTENSION, [_S.EXTENSION_REQUESTED], _S.IN_PROGRESS, [_R.DISPATCHER]),
    _t(_A.DENY_EXTENSION, [_S.EXTENSION_REQUESTED], _S.IN_PROGRESS, [_R.DISPATCHER], ("note",)),
    _t(
        _A.REQUEST_SUSPENSION,
        [_S.IN_PROGRESS],
        _S.SUSPENSION_REQUESTED,
        [_R.DEPARTMENT],
        ("note",),
    ),
    _t(_A.APPROVE_SUSPENSION, [_S.SUSPENSION_REQUESTED], _S.SUSPENDED, [_R.DISPATCHER]),
    _t(_A.DENY_SUSPENSION, [_S.SUSPENSION_REQUESTED], _S.IN_PROGRESS, [_R.DISPATCHER], ("note",)),
    _t(_A.RESUME, [_S.SUSPENDED], _S.IN_PROGRESS, [_R.DISPATCHER]),
    _t(_A.FEEDBACK, [_S.DISPATCHED, _S.IN_PROGRESS], _S.HANDLED, [_R.DEPARTMENT]),
    _t(_A.SEND_FOR_VERIFICATION, [_S.HANDLED], _S.VERIFYING, [*_CENTRE_INTAKE, _R.SYSTEM]),
    _t(_A.VERIFY_PASS, [_S.VERIFYING], _S.VERIFIED, [_R.INSPECTOR]),
    _t(_A.VERIFY_FAIL, [_S.VERIFYING], _S.REWORK, [_R.INSPECTOR], ("note",)),
    _t(_A.CLOSE, [_S.VERIFIED], _S.CLOSED, [_R.SHIFT_LEADER]),
    _t(_A.ATTACH_EVIDENCE, OPEN_STATUSES, None, frozenset(Role), ("evidence",)),
    _t(_A.URGE, OPEN_STATUSES, None, [_R.SHIFT_LEADER], ("note",)),
    _t(_A.MERGE, OPEN_STATUSES, _S.MERGED, _CENTRE_INTAKE, ("into",)),
    _t(_A.CALLBACK, [_S.CLOSED], None, _CENTRE_INTAKE, ("satisfaction",)),
)
"""The default workflow; closing stays a person's decision."""

REPORT_ROLES: frozenset[Role] = frozenset(
    {_R.INSPECTOR, _R.INTAKE_OPERATOR, _R.SHIFT_LEADER, _R.SYSTEM, _R.ADMIN}
)


class Workflow:
    """An indexed set of transitions; `ADMIN` passes every role check, never a state check."""

    __slots__ = ("_index", "transitions")

    def __init__(self, transitions: Iterable[Transition]) -> None:
        self.transitions = tuple(transitions)
        self._index: dict[tuple[CaseStatus, Action], Transition] = {}
        for transition in self.transitions:
            for source in transition.sources:
                key = (source, transition.action)
                if key in self._index:
                    raise WorkflowError(f"two transitions for {transition.action} from {source}")
                if source in TERMINAL_STATUSES and transition.target is not None:
                    raise WorkflowError(f"{transition.action} leaves terminal status {source}")
                self._index[key] = transition

    def find(self, status: CaseStatus, action: Action) -> Transition | None:
        """The transition for an action from a status, if any."""
        return self._index.get((status, action))

    def allowed_from(self, status: CaseStatus) -> tuple[Transition, ...]:
        """Every transition leaving a status, in declaration order."""
        return tuple(t for t in self.transitions if status in t.sources)

    def allowed_actions(self, status: CaseStatus, role: Role) -> tuple[Action, ...]:
        """The actions a role may take from a status."""
        return tuple(
            t.action for t in self.allowed_from(status) if role is Role.ADMIN or role in t.roles
        )

    def describe_allowed(self, status: CaseStatus) -> str:
        """Human-readable list of actions from a status with their roles."""
        if status in TERMINAL_STATUSES and not self.allowed_from(status):
            return f"none, {status} is final"
        parts = []
        for t in self.allowed_from(status):
            roles = "any role" if t.roles == frozenset(Role) else ", ".join(sorted(t.roles))
            parts.append(f"{t.action} ({roles})")
        return "; ".join(parts)

    def with_roles(self, action: Action, extra_roles: Iterable[Role]) -> "Workflow":
        """A copy where `extra_roles` may also take `action`, e.g. the system closing by policy."""
        extra = frozenset(extra_roles)
        return Workflow(
            replace(t, roles=t.roles | extra) if t.action is action else t for t in self.transitions
        )


DEFAULT_WORKFLOW = Workflow(TRANSITIONS)

STAGE_OF_STATUS: Mapping[CaseStatus, Stage] = MappingProxyType(
    {
        CaseStatus.REPORTED: Stage.REGISTER,
        CaseStatus.CHECKING: Stage.REGISTER,
        CaseStatus.REGISTERED: Stage.DISPATCH,
        CaseStatus.RETURNED: Stage.DISPATCH,
        CaseStatus.REWORK: Stage.DISPATCH,
        CaseStatus.DISPATCHED: Stage.HANDLE,
        CaseStatus.IN_PROGRESS: Stage.HANDLE,
        CaseStatus.EXTENSION_REQUESTED: Stage.HANDLE,
        CaseStatus.SUSPENSION_REQUESTED: Stage.HANDLE,
        CaseStatus.SUSPENDED: Stage.HANDLE,
        CaseStatus.HANDLED: Stage.VERIFY,
        CaseStatus.VERIFYING: Stage.VERIFY,
        CaseStatus.VERIFIED: Stage.VERIFY,
    }
)
"""The timed stage each open status belongs to; the stage ends with the step that leaves it."""


def stage_of(status: CaseStatus) -> Stage | None:
    """The timed stage a status is in, None once the case is final."""
    return STAGE_OF_STATUS.get(status)


@dataclass(frozen=True, slots=True)
class CaseState:
    """A case as the workflow sees it: status, routing facts, timestamps and counters."""

    case_id: str
    status: CaseStatus
    source: CaseSource
    class_kind: ClassKind
    class_code: str
    urgency: Urgency
    reported_at: datetime
    updated_at: datetime
    stage_started_at: datetime
    version: int
    grid_code: str | None = None
    department: str | None = None
    alarm_id: str | None = None
    checked: bool | None = None
    registered_at: datetime | None = None
    first_dispatched_at: datetime | None = None
    dispatched_at: datetime | None = None
    accepted_at: datetime | None = None
    handled_at: datetime | None = None
    verified_at: datetime | None = None
    closed_at: datetime | None = None
    finished_at: datetime | None = None
    rework_count: int = 0
    return_count: int = 0
    extension_count: int = 0
    extension_granted: timedelta = timedelta()
    suspension_count: int = 0
    requested_extension: timedelta | None = None
    pauses: tuple[Pause, ...] = ()
    dispatched_by: str | None = None
    inspector: str | None = None
    urge_level: int = 0
    urged_at: datetime | None = None
    merged_into: str | None = None
    callback_result: str | None = None
    called_back_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """True until the case is closed, rejected or voided."""
        return self.status not in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One line of a case's event log: who did what, when, from which status to which."""

    case_id: str
    seq: int
    action: Action
    from_status: CaseStatus | None
    to_status: CaseStatus
    actor_role: Role
    at: datetime
    actor_id: str | None = None
    note: str = ""
    payload: Payload = field(default_factory=lambda: _EMPTY_PAYLOAD)


def _payload_text(payload: Payload, key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise WorkflowError(f"payload {key!r} must be non-empty text, got {value!r}")
    return value.strip()


def _payload_hours(payload: Payload, key: str) -> timedelta | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise WorkflowError(f"payload {key!r} must be a positive number of hours, got {value!r}")
    return timedelta(hours=value)


def _close_pauses(pauses: tuple[Pause, ...], at: datetime) -> tuple[Pause, ...]:
    """Cap every pause at `at`: the handling phase is over, so nothing stays paused."""
    return tuple(replace(p, end_at=at) if p.end_at is None or p.end_at > at else p for p in pauses)


def report_case(
    *,
    case_id: str,
    source: CaseSource,
    class_kind: ClassKind,
    class_code: str,
    reported_at: datetime,
    actor_role: Role,
    urgency: Urgency = Urgency.NORMAL,
    grid_code: str | None = None,
    department: str | None = None,
    alarm_id: str | None = None,
    actor_id: str | None = None,
    note: str = "",
) -> tuple[CaseState, CaseEvent]:
    """Open a case in the reported (上报) status; the event is the first of its log."""
    if actor_role not in REPORT_ROLES:
        raise WorkflowError(
            f"role {actor_role} may not report a case; reporting is for: "
            f"{', '.join(sorted(REPORT_ROLES))}"
        )
    if not case_id:
        raise WorkflowError("a case needs a case_id")
    validate_class_code(class_code)
    if grid_code is not None:
        parse_unit_grid_code(grid_code)
    at = require_aware(reported_at, "reported_at")
    state = CaseState(
        case_id=case_id,
        status=CaseStatus.REPORTED,
        source=source,
        class_kind=class_kind,
        class_code=class_code,
        urgency=urgency,
        reported_at=at,
        updated_at=at,
        stage_started_at=at,
        version=1,
        grid_code=grid_code,
        department=department,
        alarm_id=alarm_id,
    )
    event = CaseEvent(
        case_id=case_id,
        seq=1,
        action=Action.REPORT,
        from_status=None,
        to_status=CaseStatus.REPORTED,
        actor_role=actor_role,
        at=at,
        actor_id=actor_id,
        note=note,
        payload=MappingProxyType({"source": str(source), "class_code": class_code}),
    )
    return state, event


def _check_allowed(
    workflow: Workflow, state: CaseState, action: Action, actor_role: Role
) -> Transition:
    transition = workflow.find(state.status, action)
    if transition is None:
        raise WorkflowError(
            f"cannot {action} case {state.case_id}: it is {state.status}; "
            f"allowed from {state.status}: {workflow.describe_allowed(state.status)}"
        )
    if actor_role is not Role.ADMIN and actor_role not in transition.roles:
        raise WorkflowError(
            f"role {actor_role} may not {action} case {state.case_id}; "
            f"{action} from {state.status} is for: {', '.join(sorted(transition.roles))}"
        )
    return transition


def _effects(state: CaseState, transition: Transition, at: datetime, payload: Payload) -> CaseState:
    """The counters and timestamps an action changes, beyond the status."""
    action = transition.action
    if action in {Action.REQUEST_CHECK, Action.SEND_FOR_VERIFICATION}:
        return replace(state, inspector=_payload_text(payload, "inspector"))
    if action is Action.URGE:
        return replace(state, urge_level=state.urge_level + 1, urged_at=at)
    if action is Action.MERGE:
        into = _payload_text(payload, "into")
        if into == state.case_id:
            raise WorkflowError(f"case {state.case_id} cannot be merged into itself")
        return replace(state, merged_into=into, finished_at=at)
    if action is Action.CALLBACK:
        answer = payload.get("satisfaction")
        try:
            result = Satisfaction(str(answer))
        except ValueError:
            raise WorkflowError(
                f"payload 'satisfaction' must be one of {[s.value for s in Satisfaction]}, "
                f"got {answer!r}"
            ) from None
        return replace(state, callback_result=result.value, called_back_at=at)
    if action is Action.ATTACH_EVIDENCE and payload.get("raise_urgency") is True:
        # an urgent report joining or merged into a case makes the case urgent
        return replace(state, urgency=Urgency.URGENT)
    if action is Action.COMPLETE_CHECK:
        confirmed = payload.get("confirmed", True)
        if not isinstance(confirmed, bool):
            raise WorkflowError(f"payload 'confirmed' must be true or false, got {confirmed!r}")
        return replace(state, checked=confirmed, inspector=None)
    if action is Action.REGISTER:
        class_code = _payload_text(payload, "class_code") or state.class_code
        grid_code = _payload_text(payload, "grid_code") or state.grid_code
        validate_class_code(class_code)
        if grid_code is not None:
            parse_unit_grid_code(grid_code)
        urgency_text = _payload_text(payload, "urgency")
        try:
            urgency = Urgency(urgency_text) if urgency_text else state.urgency
        except ValueError as err:
            raise WorkflowError(f"payload 'urgency' must be one of {list(Urgency)}") from err
        return replace(
            state, registered_at=at, class_code=class_code, grid_code=grid_code, urgency=urgency
        )
    if action in {Action.REJECT, Action.VOID, Action.CLOSE}:
        closed_at = at if action is Action.CLOSE else state.closed_at
        return replace(state, finished_at=at, closed_at=closed_at)
    if action is Action.DISPATCH:
        department = _payload_text(payload, "department") or state.department
        if department is None:
            raise WorkflowError(f"dispatch of case {state.case_id} needs payload 'department'")
        if state.status is CaseStatus.RETURNED and department == state.department:
            raise WorkflowError(
                f"case {state.case_id} was returned by {department}: dispatch it to another "
                "department, or refuse_return to keep it there"
            )
        return replace(
            state,
            department=department,
            dispatched_at=at,
            first_dispatched_at=state.first_dispatched_at or at,
            accepted_at=None,
        )
    if action is Action.ACCEPT:
        return replace(state, accepted_at=at)
    if action is Action.RETURN:
        return replace(
            state, return_count=state.return_count + 1, pauses=_close_pauses(state.pauses, at)
        )
    if action is Action.REQUEST_EXTENSION:
        return replace(state, requested_extension=_payload_hours(payload, "extension_h"))
    if action is Action.APPROVE_EXTENSION:
        granted = _payload_hours(payload, "extension_h") or state.requested_extension
        if granted is None:  # pragma: no cover - the request always records it
            raise WorkflowError("approve_extension needs payload 'extension_h'")
        return replace(
            state,
            extension_count=state.extension_count + 1,
            extension_granted=state.extension_granted + granted,
            requested_extension=None,
            pauses=(*state.pauses, Pause(start_at=at, granted=granted)),
        )
    if action is Action.DENY_EXTENSION:
        return replace(state, requested_extension=None)
    if action is Action.APPROVE_SUSPENSION:
        return replace(
            state,
            suspension_count=state.suspension_count + 1,
            pauses=(*state.pauses, Pause(start_at=at)),
        )
    if action is Action.RESUME:
        return replace(state, pauses=_close_pauses(state.pauses, at))
    if action is Action.FEEDBACK:
        return replace(state, handled_at=at, pauses=_close_pauses(state.pauses, at))
    if action is Action.VERIFY_PASS:
        return replace(state, verified_at=at, inspector=None)
    if action is Action.VERIFY_FAIL:
        return replace(state, verified_at=at, rework_count=state.rework_count + 1, inspector=None)
    return state


def apply_action(
    case_state: CaseState,
    action: Action,
    actor_role: Role,
    at: datetime,
    payload: Payload | None = None,
    *,
    actor_id: str | None = None,
    workflow: Workflow = DEFAULT_WORKFLOW,
) -> tuple[CaseState, CaseEvent]:
    """Apply one action; WorkflowError says what is allowed when the action is refused."""
    if action is Action.REPORT:
        raise WorkflowError("report opens a case: use report_case")
    transition = _check_allowed(workflow, case_state, action, actor_role)
    at = require_aware(at, "at")
    if at < case_state.updated_at:
        raise WorkflowError(
            f"{action} at {at.isoformat()} is before the case's last event at "
            f"{case_state.updated_at.isoformat()}"
        )
    body: Payload = MappingProxyType(dict(payload or {}))
    for key in transition.required:
        if body.get(key) in (None, ""):
            raise WorkflowError(f"{action} of case {case_state.case_id} needs payload {key!r}")
    note = _payload_text(body, "note") or ""
    changed = _effects(case_state, transition, at, body)
    target = transition.target or case_state.status
    stage_started_at = (
        at if stage_of(target) is not stage_of(case_state.status) else case_state.stage_started_at
    )
    new_state = replace(
        changed,
        status=target,
        updated_at=at,
        stage_started_at=stage_started_at,
        version=case_state.version + 1,
    )
    event = CaseEvent(
        case_id=case_state.case_id,
        seq=new_state.version,
        action=action,
        from_status=case_state.status,
        to_status=target,
        actor_role=actor_role,
        at=at,
        actor_id=actor_id,
        note=note,
        payload=body,
    )
    return new_state, event
