"""Who may call which route, as data: roles, domains and the declaration of every route."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import State

from hub.api.schemas import INT64
from hub.cases.workflow import Action
from hub.devices.kinds import Kind
from hub.principals import (
    CENTRE_POSTS,
    AccessRole,
)
from hub.rules.alarm_changes import AlarmRecord, alarm_document
from hub.rules.alarm_types import AlarmType
from hub.store.cases import case_document
from hub.store.trucks import TruckStore

SESSION_COOKIE = "hub_session"
AUDIT_BODY_LIMIT = 256 * 1024
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REDACTED_KEYS = frozenset({"secret", "password", "token"})

Snapshot = Callable[[State, Mapping[str, Any]], object]
"""Reads the resource a write is about to change, for the audit log's `before`."""


# declarations

_R = AccessRole
ANY_ROLE = frozenset(AccessRole)
CASE_READERS = frozenset({*CENTRE_POSTS, _R.DEPARTMENT, _R.READ_ONLY})
CASE_ACTORS = frozenset({*CENTRE_POSTS, _R.DEPARTMENT})
CASE_REPORTERS = frozenset({_R.CENTRE, _R.INTAKE_OPERATOR, _R.SHIFT_LEADER, _R.INSPECTOR})
CENTRE_VIEWERS = frozenset({*CENTRE_POSTS, _R.READ_ONLY})
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
resource's domain here; `tests/api/access/test_domain_access.py` walks every role against
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
    ("POST", "/cases"): RouteAccess(CASE_REPORTERS),
    ("GET", "/cases/{case_id}"): RouteAccess(CASE_READERS),
    ("GET", "/cases/{case_id}/actions"): RouteAccess(CASE_READERS),
    **_case_action_routes(),
    ("GET", "/evaluation"): RouteAccess(CASE_READERS),  # a department: its own score
    ("GET", "/supervision"): RouteAccess(CENTRE_VIEWERS),
    ("GET", "/calendar"): RouteAccess(CENTRE_VIEWERS),
    ("GET", "/statistics"): RouteAccess(CASE_READERS),
    ("GET", "/statistics/posts"): RouteAccess(CENTRE_VIEWERS),  # the centre's own staff
    ("POST", "/cases/{case_id}/attachments"): RouteAccess(CASE_ACTORS),
    ("GET", "/cases/{case_id}/attachments"): RouteAccess(CASE_READERS),
    ("GET", "/cases/{case_id}/attachments/{attachment_id}"): RouteAccess(CASE_READERS),
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
    # texts to the driver (0x8300 through the JT/T 808 gateway): enforcement sends
    ("POST", "/trucks/{device_id}/messages"): RouteAccess(frozenset({_R.ENFORCEMENT})),
    ("GET", "/trucks/{device_id}/messages/{command_id}"): RouteAccess(TRUCK_READERS),
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
    ("POST", "/lighting/calendars"): RouteAccess(LIGHTING_ACTORS),
    ("GET", "/lighting/calendars"): RouteAccess(LIGHTING_READERS),
    ("DELETE", "/lighting/calendars/{name}"): RouteAccess(LIGHTING_ACTORS),
    ("POST", "/lighting/scenes"): RouteAccess(LIGHTING_ACTORS),
    ("GET", "/lighting/scenes"): RouteAccess(LIGHTING_READERS),
    ("DELETE", "/lighting/scenes/{name}"): RouteAccess(LIGHTING_ACTORS),
    ("GET", "/lighting/modbus"): RouteAccess(LIGHTING_READERS),
    ("GET", "/lighting/lamps/life"): RouteAccess(LIGHTING_READERS),
    ("GET", "/lighting/lamps/{device_id}/life"): RouteAccess(LIGHTING_READERS),
    # manhole covers
    ("GET", "/manholes"): RouteAccess(MANHOLE_READERS),
    ("GET", "/manholes/{device_id}"): RouteAccess(MANHOLE_READERS),
    ("GET", "/manholes/{device_id}/calibrations"): RouteAccess(MANHOLE_READERS),
    ("POST", "/manholes/{device_id}/recalibrate"): RouteAccess(frozenset({_R.CENTRE})),
}
"""Every route of the assembled app, by (method, path template). A route missing here is
refused for everyone, and tests/api/access fails until it is declared."""
