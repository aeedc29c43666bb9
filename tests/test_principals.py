"""Pure access logic: password hashes, the login policy, workflow duties per role."""

import base64
import hashlib
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher, profiles

from hub.cases.workflow import DEFAULT_WORKFLOW, Action, CaseStatus, Role
from hub.principals import (
    PASSWORD_HASHER,
    AccessRole,
    LoginPolicy,
    PasswordCheck,
    Principal,
    PrincipalKind,
    allowed_actions_for,
    check_password,
    hash_password,
    hash_secret,
    verify_password,
    workflow_role_for,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)


def scrypt_hash(password: str, salt: bytes = b"0123456789abcdef", n: int = 2**10) -> str:
    """A hash as earlier versions of the hub stored it."""
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${n}$8$1${encoded[0]}${encoded[1]}"


def test_password_hashes_are_salted_argon2id_and_verified() -> None:
    first, second = hash_password("s3cret-pass", hasher=CHEAP), hash_password("s3cret-pass")
    assert first != hash_password("s3cret-pass", hasher=CHEAP)
    assert first.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert second.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106, second option
    assert verify_password("s3cret-pass", first, hasher=CHEAP)
    assert not verify_password("wrong", first, hasher=CHEAP)
    assert not verify_password("s3cret-pass", "garbage")
    assert not verify_password("s3cret-pass", "$argon2id$garbage")
    assert check_password("s3cret-pass", second) is PasswordCheck.OK
    assert hash_secret("x") == hash_secret("x") != hash_secret("y")


def test_old_hashes_verify_and_ask_to_be_replaced() -> None:
    legacy = scrypt_hash("s3cret-pass")
    assert check_password("s3cret-pass", legacy) is PasswordCheck.OK_REHASH
    assert check_password("wrong", legacy) is PasswordCheck.WRONG
    assert check_password("s3cret-pass", legacy.replace("scrypt$", "scrypt$x")) is (
        PasswordCheck.WRONG
    )
    cheap = hash_password("s3cret-pass", hasher=CHEAP)  # right, but weaker than production
    assert check_password("s3cret-pass", cheap, hasher=PASSWORD_HASHER) is (PasswordCheck.OK_REHASH)
    assert check_password("s3cret-pass", cheap, hasher=CHEAP) is PasswordCheck.OK


def test_the_policy_pauses_an_address_and_user_then_the_user_from_anywhere() -> None:
    policy = LoginPolicy(
        max_failures_per_address=3, max_failures_per_user=5, window=timedelta(minutes=5)
    )
    at = [T0 + timedelta(minutes=m) for m in range(5)]
    now = T0 + timedelta(minutes=3)
    assert policy.retry_after(at[:2], at[:2], now) is None
    # the third failure from one address pauses it until the oldest of the three expires
    assert policy.retry_after(at[:3], at[:3], now) == timedelta(minutes=2)
    assert policy.retry_after(at[:3], at[:3], T0 + timedelta(minutes=5)) is None
    # five from several addresses pause the user name everywhere, even a fresh address
    now = T0 + timedelta(minutes=4, seconds=30)
    assert policy.retry_after([], at, now) == timedelta(seconds=30)
    # the pause lasts until the limit-th newest leaves the window (newest first or not)
    many = [T0 + timedelta(seconds=10 * i) for i in range(8)]
    assert policy.retry_after([], many, T0 + timedelta(minutes=2)) == timedelta(
        minutes=3, seconds=30
    )
    assert policy.retry_after([], list(reversed(many)), T0 + timedelta(minutes=2)) == (
        timedelta(minutes=3, seconds=30)
    )
    # the longer of the two pauses wins
    assert policy.retry_after(at[2:5], at, T0 + timedelta(minutes=5)) == timedelta(minutes=2)


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
