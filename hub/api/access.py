"""Who may call which route: the declaration table, the check, login, tokens and the audit log.

`create_app` stays open (tests build apps with it); `hub.api.secure.secure_app` adds the
auth and console routes and an ASGI middleware that resolves the matched route, looks up its
declaration in `ROUTE_ACCESS` and refuses: 401 without a valid bearer token or session
cookie, 403 for a role the route does not list, 403 for a route nobody declared (fail
closed), and 403 when the route's resource (a device's readings, an alarm) belongs to a
domain of `DOMAINS` the role is not part of. Admin passes every declared route. Every write
by an authenticated caller lands in `audit_log` with the resource before (where a snapshot
is declared) and the response after.
"""

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio.to_thread
import orjson
from argon2 import PasswordHasher
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import State
from starlette.routing import Match, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.proxies import IPNetwork
from hub.api.schemas import INT64, Instant, Int64, Offset
from hub.cases.workflow import Action, Role, Workflow
from hub.devices.kinds import Kind
from hub.principals import (
    PASSWORD_HASHER,
    SESSION_PREFIX,
    AccessRole,
    LoginPolicy,
    PasswordCheck,
    Principal,
    PrincipalKind,
    check_password,
    hash_password,
    new_secret,
    workflow_role_for,
)
from hub.rules.alarm_changes import AlarmRecord, alarm_document
from hub.rules.alarm_types import AlarmType
from hub.settings import Settings
from hub.store.access import AccessError, AccessStore, AuditEntry
from hub.store.cases import case_document
from hub.store.trucks import TruckStore

log = logging.getLogger(__name__)

SESSION_COOKIE = "hub_session"
AUDIT_BODY_LIMIT = 256 * 1024
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REDACTED_KEYS = frozenset({"secret", "password", "token"})

Snapshot = Callable[[State, Mapping[str, Any]], object]
"""Reads the resource a write is about to change, for the audit log's `before`."""


# declarations

_R = AccessRole
ANY_ROLE = frozenset(AccessRole)
CASE_READERS = frozenset({_R.CENTRE, _R.DEPARTMENT, _R.READ_ONLY})
CASE_ACTORS = frozenset({_R.CENTRE, _R.DEPARTMENT})
ALARM_READERS = frozenset(
    {_R.CENTRE, _R.LIGHTING_CREW, _R.ENFORCEMENT, _R.PARKING_OPERATOR, _R.READ_ONLY}
)
ALARM_ACTORS = frozenset({_R.CENTRE, _R.LIGHTING_CREW, _R.ENFORCEMENT, _R.PARKING_OPERATOR})
TRUCK_READERS = frozenset({_R.ENFORCEMENT, _R.CENTRE, _R.READ_ONLY})
PARKING_READERS = frozenset({_R.PARKING_OPERATOR, _R.CENTRE, _R.READ_ONLY})
MANHOLE_READERS = frozenset({_R.CENTRE, _R.READ_ONLY})
LIGHTING_READERS = frozenset({_R.LIGHTING_CREW, _R.CENTRE, _R.READ_ONLY})
LIGHTING_ACTORS = frozenset({_R.LIGHTING_CREW})
ADMIN_ONLY: frozenset[AccessRole] = frozenset()


@dataclass(frozen=True, slots=True)
class Domain:
    """A field of work: its asset kinds, who reads their raw readings, who acts on its alarms."""

    name: str
    kinds: frozenset[Kind]
    readers: frozenset[AccessRole]
    alarm_actors: frozenset[AccessRole]
    alarm_types: frozenset[AlarmType] = frozenset()
    """Alarm types only this domain raises (offline and low_battery go by the source's kind)."""


_T = AlarmType
DOMAINS: tuple[Domain, ...] = (
    Domain(
        "lighting",
        frozenset({Kind.LIGHTING, Kind.CABINET}),
        LIGHTING_READERS,
        frozenset({_R.LIGHTING_CREW, _R.CENTRE}),
        frozenset(
            {
                _T.LAMP_OUT,
                _T.LIT_BY_DAY,
                _T.OVER_VOLTAGE,
                _T.UNDER_VOLTAGE,
                _T.OVER_CURRENT,
                _T.POWER_ABNORMAL,
                _T.FLICKER,
                _T.CABINET_TRIP,
                _T.CIRCUIT_DARK,
                _T.DOOR_OPEN,
                _T.CONTACTOR_ANOMALY,
                _T.SUPPLY_LOSS,
            }
        ),
    ),
    Domain(
        "trucks",
        frozenset({Kind.TRUCK}),
        TRUCK_READERS,
        frozenset({_R.ENFORCEMENT, _R.CENTRE}),
        frozenset(
            {
                _T.ROUTE_DEVIATION,
                _T.ILLEGAL_DUMPING,
                _T.UNAPPROVED_DISPOSAL,
                _T.OUTSIDE_HOURS,
                _T.NO_PERMIT,
                _T.COVER_OPEN_MOVING,
                _T.OVERSPEED,
                _T.TRACK_GAP,
                _T.TRACK_JUMP,
                _T.RESTRICTED_ZONE,
            }
        ),
    ),
    Domain(
        "parking",
        frozenset({Kind.PARKING}),
        PARKING_READERS,
        frozenset({_R.PARKING_OPERATOR, _R.CENTRE}),
        frozenset({_T.OVERSTAY, _T.STUCK_SENSOR}),
    ),
    Domain(
        "manholes",
        frozenset({Kind.MANHOLE}),
        MANHOLE_READERS,
        frozenset({_R.CENTRE}),
        frozenset({_T.TILT, _T.COVER_OPEN, _T.WATER_ALERT, _T.WATER_DANGER, _T.GAS}),
    ),
)
"""Who works on what: one row per domain. The readings routes and the alarm actions check the
resource's domain here; `tests/api_access/test_domain_access.py` walks every role against
every kind and domain."""
DOMAIN_OF_KIND: Mapping[Kind, Domain] = {kind: d for d in DOMAINS for kind in d.kinds}
DOMAIN_OF_ALARM_TYPE: Mapping[AlarmType, Domain] = {
    alarm_type: d for d in DOMAINS for alarm_type in d.alarm_types
}
READING_READERS = frozenset().union(*(d.readers for d in DOMAINS))
UNPLACED_ALARM_ACTORS = frozenset({_R.CENTRE})
"""Who acts on an alarm no domain claims (offline of an unregistered source, say)."""


@dataclass(frozen=True, slots=True)
class ResourceAccess:
    """The roles that may act on one resource of a route, and what to call it in a refusal."""

    what: str
    roles: frozenset[AccessRole]


ResourceCheck = Callable[[State, Mapping[str, Any]], ResourceAccess | None]
"""Reads the resource a request names; None when there is none (the route answers 404/422)."""


@dataclass(frozen=True, slots=True)
class RouteAccess:
    """Who may call a route; `public` routes need no credentials (Open311 uses api_key).

    `resource` narrows `roles` per request: a lighting crew may call the readings route, but
    only for lamps and cabinets."""

    roles: frozenset[AccessRole] = ADMIN_ONLY
    public: bool = False
    before: Snapshot | None = None
    resource: ResourceCheck | None = None

    def admits(self, role: AccessRole) -> bool:
        """Whether a caller of this role passes (admin always does)."""
        return role is AccessRole.ADMIN or role in self.roles


PUBLIC = RouteAccess(public=True)


def _case_before(state: State, params: Mapping[str, Any]) -> object:
    store = state.case_store
    case_id = _int64(params["case_id"])
    record = None if case_id is None else store.get(case_id)
    return None if record is None else case_document(store.setup, record)


def _alarm_before(state: State, params: Mapping[str, Any]) -> object:
    alarm_id = _int64(params["alarm_id"])
    alarm = None if alarm_id is None else state.alarm_store.get(alarm_id)
    return None if alarm is None else alarm_document(alarm)


def _int64(value: object) -> int | None:
    """A path id as the routes take it, None when it is not one (the route answers 422)."""
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if -INT64 <= number < INT64 else None


def _device_readings(state: State, params: Mapping[str, Any]) -> ResourceAccess | None:
    device = state.db.get_device(str(params["device_id"]))
    if device is None:
        return None
    domain = DOMAIN_OF_KIND[device.kind]
    return ResourceAccess(f"readings of {device.kind} devices", domain.readers)


def alarm_domain(alarm: AlarmRecord, source_kind: Kind | None) -> Domain | None:
    """The domain an alarm belongs to: by its type, else by its source device's kind."""
    by_type = DOMAIN_OF_ALARM_TYPE.get(alarm.alarm_type)
    if by_type is not None:
        return by_type
    return None if source_kind is None else DOMAIN_OF_KIND.get(source_kind)


def _alarm_action(state: State, params: Mapping[str, Any]) -> ResourceAccess | None:
    alarm_id = _int64(params["alarm_id"])
    alarm = None if alarm_id is None else state.alarm_store.get(alarm_id)
    if alarm is None:
        return None
    source_kind: Kind | None = None
    if alarm.alarm_type not in DOMAIN_OF_ALARM_TYPE:
        device = state.db.get_device(alarm.source_id)
        source_kind = None if device is None else device.kind
    domain = alarm_domain(alarm, source_kind)
    if domain is None:
        return ResourceAccess("alarms of no domain", UNPLACED_ALARM_ACTORS)
    return ResourceAccess(f"{domain.name} alarms", domain.alarm_actors)


def _device_before(state: State, params: Mapping[str, Any]) -> object:
    device = state.db.get_device(str(params["device_id"]))
    return None if device is None else device.model_dump(mode="json")


def _truck_before(getter: str, key: str) -> Snapshot:
    def snapshot(state: State, params: Mapping[str, Any]) -> object:
        found = getattr(TruckStore(state.db), getter)(str(params[key]))
        return None if found is None else found.model_dump(mode="json")

    return snapshot


def _token_before(state: State, params: Mapping[str, Any]) -> object:
    token_id = _int64(params["token_id"])
    token = None if token_id is None else state.access_store.get_token(token_id)
    return None if token is None else token.document()


def _case_action_routes() -> dict[tuple[str, str], RouteAccess]:
    return {
        ("POST", f"/cases/{{case_id}}/{action.value.replace('_', '-')}"): RouteAccess(
            CASE_ACTORS, before=_case_before
        )
        for action in Action
        if action is not Action.REPORT
    }


def _crud(
    prefix: str,
    key: str,
    getter: str,
    readers: frozenset[AccessRole],
    writers: frozenset[AccessRole],
) -> dict[tuple[str, str], RouteAccess]:
    item = f"{prefix}/{{{key}}}"
    snapshot = _truck_before(getter, key)
    return {
        ("GET", prefix): RouteAccess(readers),
        ("GET", item): RouteAccess(readers),
        ("POST", prefix): RouteAccess(writers),
        ("PUT", item): RouteAccess(writers, before=snapshot),
        ("DELETE", item): RouteAccess(writers, before=snapshot),
    }


ROUTE_ACCESS: Mapping[tuple[str, str], RouteAccess] = {
    # system
    ("GET", "/health"): PUBLIC,
    ("GET", "/metrics"): RouteAccess(frozenset({_R.READ_ONLY})),
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # console: the login page and its assets are public; the data behind them is not
    ("GET", "/"): PUBLIC,
    ("GET", "/console"): PUBLIC,
    ("GET", "/console/{path:path}"): PUBLIC,
    ("GET", "/city/layers"): RouteAccess(ANY_ROLE),
    ("GET", "/city/layers/{name}"): RouteAccess(ANY_ROLE),
    # authentication, tokens, audit
    ("POST", "/auth/login"): PUBLIC,
    ("POST", "/auth/logout"): RouteAccess(ANY_ROLE),
    ("GET", "/auth/me"): RouteAccess(ANY_ROLE),
    ("GET", "/auth/tokens"): RouteAccess(ADMIN_ONLY),
    ("POST", "/auth/tokens"): RouteAccess(ADMIN_ONLY),
    ("DELETE", "/auth/tokens/{token_id}"): RouteAccess(ADMIN_ONLY, before=_token_before),
    ("GET", "/audit"): RouteAccess(ADMIN_ONLY),
    # device registry and telemetry
    ("GET", "/devices"): RouteAccess(ANY_ROLE),
    ("POST", "/devices"): RouteAccess(ADMIN_ONLY),
    ("GET", "/devices/{device_id}"): RouteAccess(ANY_ROLE),
    ("PUT", "/devices/{device_id}"): RouteAccess(ADMIN_ONLY, before=_device_before),
    ("DELETE", "/devices/{device_id}"): RouteAccess(ADMIN_ONLY, before=_device_before),
    ("GET", "/devices/{device_id}/latest"): RouteAccess(READING_READERS, resource=_device_readings),
    ("GET", "/devices/{device_id}/readings"): RouteAccess(
        READING_READERS, resource=_device_readings
    ),
    # alarms
    ("GET", "/alarms"): RouteAccess(ALARM_READERS),
    ("GET", "/alarms/stream"): RouteAccess(ALARM_READERS),
    ("GET", "/alarms/{alarm_id}"): RouteAccess(ALARM_READERS),
    ("POST", "/alarms/{alarm_id}/acknowledge"): RouteAccess(
        ALARM_ACTORS, before=_alarm_before, resource=_alarm_action
    ),
    ("POST", "/alarms/{alarm_id}/clear"): RouteAccess(
        ALARM_ACTORS, before=_alarm_before, resource=_alarm_action
    ),
    # cases (the department role is further limited to its own department's cases)
    ("GET", "/cases"): RouteAccess(CASE_READERS),
    ("POST", "/cases"): RouteAccess(frozenset({_R.CENTRE})),
    ("GET", "/cases/{case_id}"): RouteAccess(CASE_READERS),
    ("GET", "/cases/{case_id}/actions"): RouteAccess(CASE_READERS),
    **_case_action_routes(),
    ("GET", "/evaluation"): RouteAccess(frozenset({_R.CENTRE, _R.READ_ONLY})),
    ("GET", "/supervision"): RouteAccess(frozenset({_R.CENTRE, _R.READ_ONLY})),
    ("GET", "/calendar"): RouteAccess(frozenset({_R.CENTRE, _R.READ_ONLY})),
    ("POST", "/calendar/import"): RouteAccess(ADMIN_ONLY),
    # Open311 GeoReport v2: public, posting needs an api_key
    ("GET", "/open311/v2/services.{fmt}"): PUBLIC,
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): PUBLIC,
    ("POST", "/open311/v2/requests.{fmt}"): PUBLIC,
    ("GET", "/open311/v2/requests.{fmt}"): PUBLIC,
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): PUBLIC,
    # muck trucks
    ("GET", "/trucks/positions"): RouteAccess(TRUCK_READERS),
    ("GET", "/trucks/violations"): RouteAccess(TRUCK_READERS),
    ("GET", "/trucks/{device_id}/track"): RouteAccess(TRUCK_READERS),
    ("GET", "/trucks/{device_id}/trips"): RouteAccess(TRUCK_READERS),
    **_crud("/trucks/sites", "site_id", "get_site", TRUCK_READERS, frozenset({_R.ENFORCEMENT})),
    **_crud(
        "/trucks/permits", "permit_id", "get_permit", TRUCK_READERS, frozenset({_R.ENFORCEMENT})
    ),
    **_crud("/trucks/zones", "zone_id", "get_zone", TRUCK_READERS, frozenset({_R.ENFORCEMENT})),
    # parking
    ("POST", "/parking/import"): RouteAccess(frozenset({_R.PARKING_OPERATOR})),
    ("GET", "/parking/guidance"): RouteAccess(PARKING_READERS),
    ("GET", "/parking/overstays"): RouteAccess(PARKING_READERS),
    ("GET", "/parking/health"): RouteAccess(PARKING_READERS),
    ("GET", "/parking/ngsi/ParkingSpot"): RouteAccess(PARKING_READERS),
    ("GET", "/parking/ngsi/OffStreetParking"): RouteAccess(PARKING_READERS),
    ("GET", "/parking/ngsi/OnStreetParking"): RouteAccess(PARKING_READERS),
    ("GET", "/parking/{area_kind}"): RouteAccess(PARKING_READERS),
    ("GET", "/parking/{area_kind}/{area_id}"): RouteAccess(PARKING_READERS),
    ("GET", "/parking/{area_kind}/{area_id}/history"): RouteAccess(PARKING_READERS),
    ("GET", "/parking/{area_kind}/{area_id}/flows"): RouteAccess(PARKING_READERS),
    # street lighting
    ("GET", "/lighting/faults"): RouteAccess(LIGHTING_READERS),
    ("GET", "/lighting/alerts/stream"): RouteAccess(LIGHTING_READERS),
    ("GET", "/lighting/rate"): RouteAccess(LIGHTING_READERS),
    ("GET", "/lighting/energy"): RouteAccess(LIGHTING_READERS),
    ("POST", "/lighting/commands"): RouteAccess(LIGHTING_ACTORS),
    ("GET", "/lighting/commands"): RouteAccess(LIGHTING_READERS),
    ("GET", "/lighting/devices/{device_id}/commands"): RouteAccess(LIGHTING_READERS),
    ("DELETE", "/lighting/commands/{command_id}"): RouteAccess(LIGHTING_ACTORS),
    ("POST", "/lighting/lockouts"): RouteAccess(LIGHTING_ACTORS),
    ("GET", "/lighting/lockouts"): RouteAccess(LIGHTING_READERS),
    ("DELETE", "/lighting/lockouts/{lockout_id}"): RouteAccess(LIGHTING_ACTORS),
    ("POST", "/lighting/schedules"): RouteAccess(LIGHTING_ACTORS),
    ("GET", "/lighting/schedules"): RouteAccess(LIGHTING_READERS),
    ("PATCH", "/lighting/schedules/{schedule_id}"): RouteAccess(LIGHTING_ACTORS),
    ("DELETE", "/lighting/schedules/{schedule_id}"): RouteAccess(LIGHTING_ACTORS),
    ("GET", "/lighting/modbus"): RouteAccess(LIGHTING_READERS),
    # manhole covers
    ("GET", "/manholes"): RouteAccess(MANHOLE_READERS),
    ("GET", "/manholes/{device_id}"): RouteAccess(MANHOLE_READERS),
    ("GET", "/manholes/{device_id}/calibrations"): RouteAccess(MANHOLE_READERS),
    ("POST", "/manholes/{device_id}/recalibrate"): RouteAccess(frozenset({_R.CENTRE})),
}
"""Every route of the assembled app, by (method, path template). A route missing here is
refused for everyone, and tests/api_access fails until it is declared."""


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
        *("cases", "evaluation", "faults", "trucks", "parking", "audit", "manholes"),
        *_CITY_VIEWS,
    ),
    _R.CENTRE: ("cases", "evaluation", "faults", "manholes", *_CITY_VIEWS),
    _R.DEPARTMENT: ("cases",),
    _R.LIGHTING_CREW: ("faults", *_CITY_VIEWS),
    _R.ENFORCEMENT: ("trucks", *_CITY_VIEWS),
    _R.PARKING_OPERATOR: ("parking", *_CITY_VIEWS),
    _R.READ_ONLY: ("cases", "evaluation", "faults", "trucks", "parking", "manholes", *_CITY_VIEWS),
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
