"""Login, logout, the caller, API tokens and the audit log: the access routes."""

import logging
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from argon2 import PasswordHasher
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from hub.api.access import (
    AccessConfig,
    PrincipalDep,
)
from hub.api.access_table import (
    _R,
    SESSION_COOKIE,
)
from hub.api.schemas import Instant, Int64, Offset
from hub.cases.workflow import Role
from hub.principals import (
    SESSION_PREFIX,
    AccessRole,
    PasswordCheck,
    Principal,
    PrincipalKind,
    check_password,
    hash_password,
    new_secret,
)
from hub.store.access import AccessError, AccessStore, AuditEntry

log = logging.getLogger(__name__)

# login, tokens and audit


def get_access_store(request: Request) -> AccessStore:
    """The access store of this app."""
    store: AccessStore = request.app.state.access_store
    return store


AccessStoreDep = Annotated[AccessStore, Depends(get_access_store)]

router = APIRouter(tags=["access"])

_DUMMY_HASHES: dict[int, str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash to check unknown users against, so their answer takes as long as a real one."""
    key = id(hasher)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = hash_password(new_secret("x"), hasher=hasher)
    return _DUMMY_HASHES[key]


class LoginIn(BaseModel):
    """A console login."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class MeOut(BaseModel):
    """The authenticated caller and what the console offers it."""

    actor: str
    kind: PrincipalKind
    name: str
    display_name: str
    role: AccessRole
    department: str | None
    workflow_roles: list[Role]
    views: list[str]


_CITY_VIEWS = ("overview", "dashboard")  # read devices (any role); panels refused stay empty
CONSOLE_VIEWS: Mapping[AccessRole, tuple[str, ...]] = {
    _R.ADMIN: (
        *("cases", "centre", "evaluation", "faults", "trucks", "parking", "audit", "manholes"),
        *_CITY_VIEWS,
    ),
    _R.CENTRE: ("cases", "centre", "evaluation", "faults", "manholes", *_CITY_VIEWS),
    _R.DEPARTMENT: ("cases", "centre"),
    _R.INTAKE_OPERATOR: ("cases", "centre"),
    _R.DISPATCHER: ("cases", "centre"),
    _R.SHIFT_LEADER: ("cases", "centre", "evaluation"),
    _R.INSPECTOR: ("cases", "centre"),
    _R.LIGHTING_CREW: ("faults", *_CITY_VIEWS),
    _R.ENFORCEMENT: ("trucks", *_CITY_VIEWS),
    _R.PARKING_OPERATOR: ("parking", *_CITY_VIEWS),
    _R.READ_ONLY: (
        *("cases", "centre", "evaluation", "faults", "trucks", "parking", "manholes"),
        *_CITY_VIEWS,
    ),
}
"""The console's views per role; each only calls routes its role is declared for, except the
city views' panels, which read what the role may and stay empty otherwise."""


def _me(principal: Principal) -> MeOut:
    return MeOut(
        actor=principal.actor,
        kind=principal.kind,
        name=principal.name,
        display_name=principal.display_name or principal.name,
        role=principal.role,
        department=principal.department,
        workflow_roles=list(principal.workflow_roles),
        views=list(CONSOLE_VIEWS.get(principal.role, ())),
    )


def _cookie_secure(request: Request, config: AccessConfig) -> bool:
    """Secure when configured so or when the request came over TLS (also via a trusted proxy)."""
    return config.cookie_secure or request.url.scheme == "https"


@router.post("/auth/login", response_model=MeOut)
def login(request: Request, response: Response, store: AccessStoreDep, body: LoginIn) -> MeOut:
    """Check a user name and password; set an HttpOnly, SameSite=Lax session cookie.

    Failed logins are counted in the database, per address and user name and per user name
    from any address, so every hub of a cluster pauses the same guesser; a password stored
    with an older scheme (scrypt) or older argon2 parameters is re-hashed on success."""
    config: AccessConfig = request.app.state.access_config
    ip = request.client.host if request.client else "?"
    now = config.clock()
    policy = config.login_policy
    from_address, from_anywhere = store.recent_login_failures(
        body.username,
        ip,
        now - policy.window,
        policy.max_failures_per_address,
        policy.max_failures_per_user,
    )
    wait = policy.retry_after(from_address, from_anywhere, now)
    if wait is not None:
        seconds = max(1, int(wait.total_seconds() + 0.999))
        log.warning("login for %r from %s paused for %d s", body.username, ip, seconds)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    user = store.get_user(body.username)
    stored = user.password_hash if user else _dummy_hash(config.password_hasher)
    slots: threading.BoundedSemaphore = request.app.state.password_slots
    with slots:
        checked = check_password(body.password, stored, hasher=config.password_hasher)
    if user is None or checked is PasswordCheck.WRONG or user.disabled:
        store.record_login_failure(body.username, ip, now)
        log.warning("failed login for %r from %s", body.username, ip)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    store.forget_login_failures(body.username, ip)
    if checked is PasswordCheck.OK_REHASH:
        with slots:
            upgraded = hash_password(body.password, hasher=config.password_hasher)
        if store.replace_password_hash(user.username, user.password_hash, upgraded):
            log.info("password hash of %r upgraded to argon2id", user.username)
    secret = new_secret(SESSION_PREFIX)
    store.create_session(user.username, secret, now + config.session_ttl)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(config.session_ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_cookie_secure(request, config),
        path="/",
    )
    principal = Principal(
        PrincipalKind.USER, user.username, user.role, user.department, None, user.display_name
    )
    store.write_audit(
        AuditEntry(
            actor=principal.actor,
            role=user.role.value,
            department=user.department,
            method="POST",
            path="/auth/login",
            route="/auth/login",
            status=200,
            client_ip=ip,
            before=None,
            after={"session": "created", "expires_at": (now + config.session_ttl).isoformat()},
        )
    )
    return _me(principal)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, store: AccessStoreDep, principal: PrincipalDep) -> Response:
    """End the session of this cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret and principal.kind is PrincipalKind.USER:
        store.delete_session(secret)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    config: AccessConfig = request.app.state.access_config
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_cookie_secure(request, config),
    )
    return response


@router.get("/auth/me", response_model=MeOut)
def me(principal: PrincipalDep) -> MeOut:
    """Who is calling, its workflow roles and its console views."""
    return _me(principal)


class TokenIn(BaseModel):
    """A new API token."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: AccessRole
    department: str | None = Field(default=None, max_length=100)
    expires_days: float | None = Field(default=None, gt=0, le=3660)


@router.get("/auth/tokens")
def list_tokens(store: AccessStoreDep, include_revoked: bool = False) -> list[dict[str, Any]]:
    """API tokens (never their secrets)."""
    return [t.document() for t in store.list_tokens(include_revoked)]


@router.post("/auth/tokens", status_code=status.HTTP_201_CREATED)
def create_token(
    request: Request, store: AccessStoreDep, principal: PrincipalDep, body: TokenIn
) -> dict[str, Any]:
    """A new token; its `secret` is in this response only (stored as a SHA-256 hash)."""
    config: AccessConfig = request.app.state.access_config
    expires = (
        None if body.expires_days is None else config.clock() + timedelta(days=body.expires_days)
    )
    try:
        record, secret = store.create_token(
            body.name,
            body.role,
            department=body.department,
            expires_at=expires,
            created_by=principal.actor,
        )
    except AccessError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    return {**record.document(), "secret": secret}


@router.delete("/auth/tokens/{token_id}")
def revoke_token(request: Request, store: AccessStoreDep, token_id: Int64) -> dict[str, Any]:
    """Revoke a token at once."""
    config: AccessConfig = request.app.state.access_config
    record = store.revoke_token(token_id, config.clock())
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id}")
    return record.document()


@router.get("/audit")
def audit(
    store: AccessStoreDep,
    actor: str | None = None,
    path: Annotated[str | None, Query(description="request path prefix")] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Writes through the API, newest first: who, what, when, before and after."""
    return store.search_audit(
        actor=actor, path_prefix=path, since=since, until=until, limit=limit, offset=offset
    )
