"""Who calls the hub: access roles, the authenticated principal, secret hashing, login policy.

Pure: no database or HTTP here. Secrets (API tokens, session cookies) are random and
stored only as their SHA-256; passwords are stored as argon2id hashes (argon2-cffi), and
the scrypt hashes of earlier versions are still checked so their users can log in once
more and have them replaced.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from hub.cases.workflow import REPORT_ROLES, Action, CaseStatus, Role, Workflow


class AccessRole(StrEnum):
    """What a person or a machine may do through the API and the console."""

    ADMIN = "admin"
    CENTRE = "centre"  # 监督指挥中心: intake, dispatch, shift leader (a small centre's one desk)
    INTAKE_OPERATOR = "intake_operator"  # 受理员: one duty of the centre each
    DISPATCHER = "dispatcher"  # 派遣员
    SHIFT_LEADER = "shift_leader"  # 值班长
    INSPECTOR = "inspector"  # 监督员: field inspector, on-site checks (核实/核查)
    DEPARTMENT = "department"  # 专业部门: its own department's cases only
    LIGHTING_CREW = "lighting_crew"
    ENFORCEMENT = "enforcement"
    PARKING_OPERATOR = "parking_operator"
    READ_ONLY = "read_only"


WORKFLOW_DUTIES: Mapping[AccessRole, tuple[Role, ...]] = MappingProxyType(
    {
        AccessRole.ADMIN: (Role.ADMIN,),
        # The centre takes intake, dispatch and shift-leader duties, and records the
        # inspectors' on-site checks (核实/核查) that reach it by phone or the patrol app.
        AccessRole.CENTRE: (
            Role.INTAKE_OPERATOR,
            Role.DISPATCHER,
            Role.SHIFT_LEADER,
            Role.INSPECTOR,
        ),
        AccessRole.DEPARTMENT: (Role.DEPARTMENT,),
        # A centre staffed by post gives each person one duty: what one login may do is
        # then one post's steps, and the audit shows who took each.
        AccessRole.INTAKE_OPERATOR: (Role.INTAKE_OPERATOR,),
        AccessRole.DISPATCHER: (Role.DISPATCHER,),
        AccessRole.SHIFT_LEADER: (Role.SHIFT_LEADER,),
        AccessRole.INSPECTOR: (Role.INSPECTOR,),
    }
)
"""The case-workflow roles each access role acts in; others take no workflow action."""

CENTRE_POSTS: frozenset[AccessRole] = frozenset(
    {
        AccessRole.CENTRE,
        AccessRole.INTAKE_OPERATOR,
        AccessRole.DISPATCHER,
        AccessRole.SHIFT_LEADER,
        AccessRole.INSPECTOR,
    }
)
"""The access roles of the centre's staff: they see every case; each acts in its duties."""


class PrincipalKind(StrEnum):
    """How the caller authenticated."""

    USER = "user"  # console session cookie
    TOKEN = "token"  # noqa: S105 - API bearer token; a kind, not a secret


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    kind: PrincipalKind
    name: str
    role: AccessRole
    department: str | None = None
    token_id: int | None = None
    display_name: str = ""

    @property
    def actor(self) -> str:
        """The id written into case events, alarm actions and the audit log."""
        if self.kind is PrincipalKind.TOKEN:
            return f"token:{self.token_id}:{self.name}"
        return f"user:{self.name}"

    @property
    def workflow_roles(self) -> tuple[Role, ...]:
        """The case-workflow roles this caller acts in."""
        return WORKFLOW_DUTIES.get(self.role, ())

    @property
    def department_scope(self) -> str | None:
        """The one department whose cases this caller is limited to, if any."""
        return self.department if self.role is AccessRole.DEPARTMENT else None


def workflow_role_for(
    principal: Principal, workflow: Workflow, action: Action, requested: Role | None = None
) -> Role | None:
    """The workflow role the caller takes an action in: the requested one if it holds it,
    else the first of its duties the workflow lets take the action; None if none may."""
    duties = principal.workflow_roles
    if requested is not None:
        return requested if requested in duties else None
    if Role.ADMIN in duties:
        return Role.ADMIN
    permitted: set[Role] = set(REPORT_ROLES) if action is Action.REPORT else set()
    for transition in workflow.transitions:
        if transition.action is action:
            permitted |= transition.roles
    return next((role for role in duties if role in permitted), None)


def allowed_actions_for(
    principal: Principal, workflow: Workflow, status: CaseStatus
) -> list[Action]:
    """The actions any of the caller's workflow roles may take from a status, in order."""
    found: list[Action] = []
    for role in principal.workflow_roles:
        for action in workflow.allowed_actions(status, role):
            if action not in found:
                found.append(action)
    return found


# secrets

TOKEN_PREFIX = "hubt_"  # noqa: S105 - a prefix, not a secret
SESSION_PREFIX = "hubs_"


def new_secret(prefix: str) -> str:
    """A fresh random secret (256 bits) with a recognisable prefix."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a random secret: enough for 256-bit random values, and indexable."""
    return hashlib.sha256(secret.encode()).hexdigest()


PASSWORD_HASHER = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
"""argon2id with RFC 9106's second recommended parameters: 64 MiB, 3 passes, 4 lanes."""
_ARGON2_PREFIX = "$argon2"
_SCRYPT_PREFIX = "scrypt$"


class PasswordCheck(StrEnum):
    """What checking a password against its stored hash found."""

    WRONG = "wrong"
    OK = "ok"
    OK_REHASH = "ok_rehash"  # right, but stored with an old scheme or old parameters


def hash_password(password: str, *, hasher: PasswordHasher = PASSWORD_HASHER) -> str:
    """An argon2id hash with a random salt, in the PHC string form ($argon2id$v=19$m=...)."""
    if not password:
        raise ValueError("the password is empty")
    return hasher.hash(password)


def check_password(
    password: str, stored: str, *, hasher: PasswordHasher = PASSWORD_HASHER
) -> PasswordCheck:
    """Whether a password matches its stored hash, and whether the hash should be replaced
    (a legacy scrypt hash, or argon2 parameters other than `hasher`'s)."""
    if stored.startswith(_ARGON2_PREFIX):
        try:
            hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):  # a mismatch is a VerificationError
            return PasswordCheck.WRONG
        return PasswordCheck.OK_REHASH if hasher.check_needs_rehash(stored) else PasswordCheck.OK
    if stored.startswith(_SCRYPT_PREFIX) and _scrypt_matches(password, stored):
        return PasswordCheck.OK_REHASH
    return PasswordCheck.WRONG


def verify_password(
    password: str, stored: str, *, hasher: PasswordHasher = PASSWORD_HASHER
) -> bool:
    """Whether a password matches its stored hash (argon2id, or a legacy scrypt hash)."""
    return check_password(password, stored, hasher=hasher) is not PasswordCheck.WRONG


def _scrypt_matches(password: str, stored: str) -> bool:
    """The hashes of earlier versions: scrypt$n$r$p$salt$hash (base64), constant-time compare."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=256 * 1024 * 1024,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# login throttle


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """When failed logins pause further tries: per address and user name, and per user name
    across every address (a guesser spread over many addresses), within a sliding window."""

    max_failures_per_address: int = 5
    max_failures_per_user: int = 20
    window: timedelta = timedelta(minutes=5)

    def retry_after(
        self,
        address_failures: Sequence[datetime],
        user_failures: Sequence[datetime],
        now: datetime,
    ) -> timedelta | None:
        """How long to wait before the next try, None when it may go ahead now.

        Each sequence holds recent failures, newest first (at most the limit is needed): the
        pause lasts until the limit-th newest leaves the window.
        """
        waits = [
            _wait(failures, limit, self.window, now)
            for failures, limit in (
                (address_failures, self.max_failures_per_address),
                (user_failures, self.max_failures_per_user),
            )
        ]
        return max((w for w in waits if w is not None), default=None)


def _wait(
    newest_first: Sequence[datetime], limit: int, window: timedelta, now: datetime
) -> timedelta | None:
    recent = sorted((at for at in newest_first if now - at < window), reverse=True)
    if len(recent) < limit:
        return None
    return recent[limit - 1] + window - now


Clock = Callable[[], datetime]
