"""Pure access logic: password hashes, the login throttle, workflow duties per role."""

from datetime import UTC, datetime, timedelta

from hub.cases.workflow import DEFAULT_WORKFLOW, Action, CaseStatus, Role
from hub.principals import (
    AccessRole,
    LoginThrottle,
    Principal,
    PrincipalKind,
    allowed_actions_for,
    hash_password,
    hash_secret,
    verify_password,
    workflow_role_for,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_password_hashes_are_salted_and_verified() -> None:
    first, second = hash_password("s3cret-pass", n=2**10), hash_password("s3cret-pass", n=2**10)
    assert first != second
    assert first.startswith("scrypt$1024$")
    assert verify_password("s3cret-pass", first)
    assert not verify_password("wrong", first)
    assert not verify_password("s3cret-pass", "garbage")
    assert hash_secret("x") == hash_secret("x") != hash_secret("y")


def test_the_throttle_pauses_one_ip_and_user_after_repeated_failures() -> None:
    throttle = LoginThrottle(max_failures=3, window=timedelta(minutes=5))
    for minute in range(3):
        assert throttle.retry_after("10.0.0.1", "li", T0 + timedelta(minutes=minute)) is None
        throttle.failed("10.0.0.1", "Li", T0 + timedelta(minutes=minute))
    assert throttle.retry_after("10.0.0.1", "li", T0 + timedelta(minutes=3)) == timedelta(minutes=2)
    assert throttle.retry_after("10.0.0.2", "li", T0 + timedelta(minutes=3)) is None
    assert throttle.retry_after("10.0.0.1", "wang", T0 + timedelta(minutes=3)) is None
    assert throttle.retry_after("10.0.0.1", "li", T0 + timedelta(minutes=5)) is None
    throttle.succeeded("10.0.0.1", "li")
    assert throttle.retry_after("10.0.0.1", "li", T0 + timedelta(minutes=3)) is None


def test_the_centre_acts_in_the_duty_each_action_needs() -> None:
    centre = Principal(PrincipalKind.USER, "zhang", AccessRole.CENTRE)
    pick = workflow_role_for
    assert pick(centre, DEFAULT_WORKFLOW, Action.REGISTER) is Role.INTAKE_OPERATOR
    assert pick(centre, DEFAULT_WORKFLOW, Action.DISPATCH) is Role.DISPATCHER
    assert pick(centre, DEFAULT_WORKFLOW, Action.CLOSE) is Role.SHIFT_LEADER
    assert pick(centre, DEFAULT_WORKFLOW, Action.VERIFY_PASS) is Role.INSPECTOR
    assert pick(centre, DEFAULT_WORKFLOW, Action.ACCEPT) is None
    assert pick(centre, DEFAULT_WORKFLOW, Action.REPORT) is Role.INTAKE_OPERATOR
    assert pick(centre, DEFAULT_WORKFLOW, Action.ACCEPT, Role.DEPARTMENT) is None
    crew = Principal(PrincipalKind.TOKEN, "crew", AccessRole.LIGHTING_CREW, token_id=3)
    assert crew.actor == "token:3:crew"
    assert pick(crew, DEFAULT_WORKFLOW, Action.REGISTER) is None
    department = Principal(PrincipalKind.USER, "d", AccessRole.DEPARTMENT, "drainage")
    assert department.department_scope == "drainage"
    assert centre.department_scope is None
    assert allowed_actions_for(department, DEFAULT_WORKFLOW, CaseStatus.DISPATCHED) == [
        Action.ACCEPT,
        Action.RETURN,
        Action.FEEDBACK,
        Action.ATTACH_EVIDENCE,
    ]
    assert Action.ACCEPT not in allowed_actions_for(centre, DEFAULT_WORKFLOW, CaseStatus.DISPATCHED)
