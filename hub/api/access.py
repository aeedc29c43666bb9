"""Who may call which route: the check (an ASGI middleware) and the principal inside routes.

`create_app` stays open (tests build apps with it); `hub.api.secure.secure_app` adds the
auth and console routes and an ASGI middleware that resolves the matched route, looks up its
declaration in `hub.api.access_table.ROUTE_ACCESS` and refuses: 401 without a valid bearer
token or session cookie, 403 for a role the route does not list, 403 for a route nobody
declared (fail closed), and 403 when the route's resource (a device's readings, an alarm)
belongs to a domain of `DOMAINS` the role is not part of. Admin passes every declared route.
Every write by an authenticated caller lands in `audit_log` with the resource before (where
a snapshot is declared) and the response after.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio.to_thread
import orjson
from argon2 import PasswordHasher
from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.routing import Match, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.access_table import (
    AUDIT_BODY_LIMIT,
    REDACTED_KEYS,
    SESSION_COOKIE,
    WRITE_METHODS,
    RouteAccess,
)
from hub.api.proxies import IPNetwork
from hub.cases.workflow import Action, Role, Workflow
from hub.principals import (
    PASSWORD_HASHER,
    SESSION_PREFIX,
    AccessRole,
    LoginPolicy,
    Principal,
    PrincipalKind,
    workflow_role_for,
)
from hub.settings import Settings
from hub.store.access import AccessStore, AuditEntry

log = logging.getLogger(__name__)

# the principal inside routes


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller, None when the app was built without `secure_app`."""
    found = request.scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else None


def require_principal(request: Request) -> Principal:
    """The authenticated caller; 401 when there is none."""
    principal = principal_of(request)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in or send a bearer token")
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]


def case_department_scope(request: Request) -> str | None:
    """The department whose cases the caller is limited to (department role), else None."""
    principal = principal_of(request)
    return None if principal is None else principal.department_scope


def check_case_scope(request: Request, department: str | None, case_id: int) -> None:
    """404 (not 403: do not confirm other departments' cases exist) outside the caller's scope."""
    scope = case_department_scope(request)
    if scope is not None and department != scope:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case with id {case_id}")


def case_actor(
    request: Request, workflow: Workflow, action: Action, requested: Role | None
) -> tuple[Role, str] | None:
    """(workflow role, actor id) of the authenticated caller for a case action; None when the
    app has no authentication (the role then comes from the body or header as before)."""
    principal = principal_of(request)
    if principal is None:
        return None
    role = workflow_role_for(principal, workflow, action, requested)
    if role is None:
        wanted = f" as {requested}" if requested else ""
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {principal.role} may not {action.value.replace('_', ' ')} cases{wanted}",
        )
    return role, principal.actor


def alarm_actor(request: Request) -> str | None:
    """The actor id of the authenticated caller for an alarm action, None without auth."""
    principal = principal_of(request)
    return None if principal is None else principal.actor


# the check


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """Session, login, proxy and disclosure settings of the secured API."""

    session_ttl: timedelta = timedelta(hours=12)
    cookie_secure: bool = False
    login_max_failures: int = 5
    login_window: timedelta = timedelta(minutes=5)
    clock: Callable[[], datetime] = field(default=utc_now)
    login_user_max_failures: int = 20
    trusted_proxies: tuple[IPNetwork, ...] = ()
    password_hasher: PasswordHasher = PASSWORD_HASHER
    password_checks: int = 2
    """Password hashes computed at once: argon2id takes 64 MiB each, so a flood of logins
    queues here instead of taking the machine's memory."""
    open311_public_details: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "AccessConfig":
        """The access settings of a hub process."""
        return cls(
            session_ttl=timedelta(hours=settings.session_hours),
            cookie_secure=settings.cookie_secure,
            login_max_failures=settings.login_max_failures,
            login_window=timedelta(seconds=settings.login_window_s),
            login_user_max_failures=settings.login_user_max_failures,
            trusted_proxies=settings.trusted_proxy_networks,
            open311_public_details=settings.open311_public_details,
        )

    @property
    def login_policy(self) -> LoginPolicy:
        """When failed logins pause further tries."""
        return LoginPolicy(
            max_failures_per_address=self.login_max_failures,
            max_failures_per_user=self.login_user_max_failures,
            window=self.login_window,
        )


def _json_response(
    status_code: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=dict(headers or {}))


def _redacted(value: object) -> object:
    if isinstance(value, dict):
        return {k: "***" if k in REDACTED_KEYS else _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _after(body: bytes, content_type: str) -> object:
    if not body:
        return None
    if len(body) >= AUDIT_BODY_LIMIT or "json" not in content_type:
        return {"bytes": len(body), "content_type": content_type}
    try:
        return _redacted(orjson.loads(body))
    except orjson.JSONDecodeError:
        return {"bytes": len(body), "content_type": content_type}


class RouteTable:
    """The declarations compiled to path patterns; the most literal matching template wins,
    as it does in the app (specific routes are declared before `{param}` ones)."""

    def __init__(self, table: Mapping[tuple[str, str], RouteAccess]) -> None:
        self.table = table
        compiled = []
        for method, template in table:
            regex, _, convertors = compile_path(template)
            compiled.append((template.count("{"), method, template, regex, convertors))
        compiled.sort(key=lambda c: (c[0], -len(c[2])))
        self._compiled = compiled

    def match(self, method: str, path: str) -> tuple[str, RouteAccess, dict[str, Any]] | None:
        """(template, declaration, path params) of a request, None when nothing is declared."""
        for _, declared_method, template, regex, convertors in self._compiled:
            if declared_method != method:
                continue
            found = regex.match(path)
            if found is not None:
                params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
                return template, self.table[(method, template)], params
        return None


def _app_has_path(scope: Scope) -> bool:
    """Whether any route of the app matches the request's path, whatever its method."""
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", ())
    return any(route.matches(scope)[0] is not Match.NONE for route in routes)


class AccessMiddleware:
    """Authenticates, checks the route's declaration, and audits writes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: AccessStore,
        table: Mapping[tuple[str, str], RouteAccess],
        clock: Callable[[], datetime],
    ) -> None:
        self.app = app
        self.store = store
        self.routes = RouteTable(table)
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, or run the route with `state.principal` set."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = "GET" if scope["method"] == "HEAD" else str(scope["method"])
        matched = self.routes.match(method, str(scope["path"]))
        if matched is None and not _app_has_path(scope):
            # No route of the app has this path (e.g. an unknown case action): say so, as
            # the app would, instead of a 403 that hints the path exists.
            await _json_response(404, f"no route {scope['path']}")(scope, receive, send)
            return
        if matched is None:  # an undeclared route: refused for everyone (fail closed)
            log.warning("refused %s %s: no access declaration", method, scope["path"])
            await _json_response(403, f"{method} {scope['path']} has no access declaration")(
                scope, receive, send
            )
            return
        template, rule, params = matched
        if rule.public:
            await self.app(scope, receive, send)
            return
        principal = await anyio.to_thread.run_sync(self._authenticate, scope)
        if principal is None:
            await _json_response(
                401, "log in or send a bearer token", {"WWW-Authenticate": "Bearer"}
            )(scope, receive, send)
            return
        if not rule.admits(principal.role):
            await _json_response(403, f"role {principal.role} may not {method} {template}")(
                scope, receive, send
            )
            return
        if rule.resource is not None and principal.role is not AccessRole.ADMIN:
            check = rule.resource
            state = scope["app"].state
            found = await anyio.to_thread.run_sync(lambda: check(state, params))
            if found is not None and principal.role not in found.roles:
                allowed = ", ".join(sorted(r.value for r in found.roles)) or "admin"
                await _json_response(
                    403,
                    f"role {principal.role} may not {method} {template} for {found.what}"
                    f" (roles: admin, {allowed})",
                )(scope, receive, send)
                return
        if (
            method in WRITE_METHODS
            and principal.kind is PrincipalKind.USER
            and not _same_origin(scope)
        ):
            await _json_response(403, "cross-origin write refused")(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        if method not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        await self._audited(scope, receive, send, principal, rule, params, template)

    def _authenticate(self, scope: Scope) -> Principal | None:
        headers: dict[str, str] = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        now = self.clock()
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            return self.store.principal_for_token(authorization[7:].strip(), now)
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is just no session
            return None
        morsel = cookie.get(SESSION_COOKIE)
        if morsel is None or not morsel.value.startswith(SESSION_PREFIX):
            return None
        return self.store.principal_for_session(morsel.value, now)

    async def _audited(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        principal: Principal,
        rule: RouteAccess,
        params: dict[str, Any],
        template: str,
    ) -> None:
        state = scope["app"].state
        before: object = None
        if rule.before is not None:
            snapshot = rule.before
            try:
                before = await anyio.to_thread.run_sync(lambda: snapshot(state, params))
            except (ValueError, KeyError) as err:  # bad path parameter: the route answers 4xx
                log.debug("no before-snapshot: %s", err)
        status_code = 500
        content_type = ""
        body = bytearray()
        held: Message | None = None

        async def capture(message: Message) -> None:
            nonlocal status_code, content_type, held
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
                for key, value in message.get("headers", []):
                    if key.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                if len(body) < AUDIT_BODY_LIMIT:
                    body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    held = message  # the audit line is written before the client sees the end
                    return
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            client = scope.get("client")
            entry = AuditEntry(
                actor=principal.actor,
                role=principal.role.value,
                department=principal.department,
                method=str(scope["method"]),
                path=str(scope["path"]),
                route=template,
                status=status_code,
                client_ip=client[0] if client else None,
                before=_redacted(before),
                after=_after(bytes(body), content_type),
            )
            try:
                await anyio.to_thread.run_sync(self.store.write_audit, entry)
            except Exception:
                log.exception("could not write the audit line of %s %s", entry.method, entry.path)
            if held is not None:
                await send(held)


def _same_origin(scope: Scope) -> bool:
    """A cookie-authenticated write must come from the hub's own pages (or name no origin)."""
    headers: dict[str, str] = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
    }
    origin = headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == headers.get("host", "")
