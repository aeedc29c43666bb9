"""Who calls the hub: access roles, the authenticated principal, secret hashing, login throttle.

Pure: no database or HTTP here. Secrets (API tokens, session cookies) are random and
stored only as their SHA-256; passwords are stored as scrypt hashes with a per-user salt.
"""

import base64
import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from hub.cases.workflow import REPORT_ROLES, Action, CaseStatus, Role, Workflow


class AccessRole(StrEnum):
    """What a person or a machine may do through the API and the console."""

    ADMIN = "admin"
    CENTRE = "centre"  # 监督指挥中心: intake, dispatch, shift leader
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
    }
)
"""The case-workflow roles each access role acts in; others take no workflow action."""


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


_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1


def hash_password(password: str, *, n: int = _SCRYPT_N) -> str:
    """A salted scrypt hash in the form scrypt$n$r$p$salt$hash (base64)."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    parts = (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${parts[0]}${parts[1]}"


def verify_password(password: str, stored: str) -> bool:
    """Whether a password matches a stored scrypt hash (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# login throttle


@dataclass(slots=True)
class LoginThrottle:
    """Refuses logins for an (IP, user) pair after too many failures within a window."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=5)
    _failures: dict[tuple[str, str], deque[datetime]] = field(default_factory=dict)

    def _recent(self, key: tuple[str, str], now: datetime) -> deque[datetime]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def retry_after(self, ip: str, username: str, now: datetime) -> timedelta | None:
        """How long the pair must wait before trying again, None when it may try now."""
        key = (ip, username.lower())
        times = self._recent(key, now)
        if len(times) < self.max_failures:
            if not times:
                self._failures.pop(key, None)
            return None
        return times[0] + self.window - now

    def failed(self, ip: str, username: str, now: datetime) -> None:
        """Count a failed attempt."""
        key = (ip, username.lower())
        self._recent(key, now).append(now)
        if len(self._failures) > 100_000:  # bound memory under a spray of usernames
            oldest = next(iter(self._failures))
            del self._failures[oldest]

    def succeeded(self, ip: str, username: str) -> None:
        """Forget the pair's failures."""
        self._failures.pop((ip, username.lower()), None)


Clock = Callable[[], datetime]
