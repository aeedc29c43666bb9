"""Case drafts: what a new case will hold, from an alarm by policy or from a person's report.

A draft has the class, unit grid, responsible department, location, description and
the evidence snapshot; the store gives it a number and opens it. Pure: the device record
and the alarm come in as values.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from hub.cases.calendar import Urgency, WorkingCalendar
from hub.cases.classification import (
    CaseClass,
    ClassificationError,
    ClassificationTable,
    ClassKind,
    parse_unit_grid_code,
)
from hub.cases.grid import UnitGridIndex
from hub.cases.routing import CasePolicy, FilingDecision, FilingOutcome
from hub.cases.streets import StreetIndex
from hub.cases.workflow import DEFAULT_WORKFLOW, CaseSource, Role, Workflow
from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.rules.alarm_changes import AlarmRecord, alarm_document

_EMPTY: Mapping[str, object] = MappingProxyType({})


class IntakeError(ValueError):
    """A report cannot become a case; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class CaseSetup:
    """The city's case configuration: policy, classes, calendar, grids, number prefix."""

    policy: CasePolicy
    classes: ClassificationTable
    calendar: WorkingCalendar
    grids: UnitGridIndex | None = None
    number_prefix: str = ""
    workflow: Workflow = DEFAULT_WORKFLOW


@dataclass(frozen=True, slots=True)
class CaseDraft:
    """Everything needed to open a case except its number and instant."""

    source: CaseSource
    case_class: CaseClass
    urgency: Urgency
    description: str
    actor_role: Role
    grid_code: str | None = None
    department: str | None = None
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    alarm_id: int | None = None
    device_id: str | None = None
    evidence: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    auto_register: bool = False
    auto_dispatch: bool = False
    actor_id: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class PersonReport:
    """A problem reported by a person (hotline, inspector, Open311), before it is a case."""

    source: CaseSource
    class_code: str
    actor_role: Role
    class_kind: ClassKind = ClassKind.MATTER
    description: str = ""
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    address_id: str | None = None
    grid_code: str | None = None
    urgency: Urgency = Urgency.NORMAL
    actor_id: str | None = None
    reporter: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    evidence: Mapping[str, object] = field(default_factory=lambda: _EMPTY)


def _valid_grid(grid_code: str | None) -> str | None:
    if grid_code is None:
        return None
    try:
        parse_unit_grid_code(grid_code)
    except ClassificationError:
        return None
    return grid_code


def locate_grid(
    setup: CaseSetup, grid_code: str | None, lat: float | None, lon: float | None
) -> str | None:
    """The unit grid: the given code when well formed, else the grid holding the point."""
    given = _valid_grid(grid_code)
    if given is not None:
        return given
    if setup.grids is not None and lat is not None and lon is not None:
        return setup.grids.locate(lat=lat, lon=lon)
    return None


MOVING_KINDS = frozenset({Kind.TRUCK})
"""Asset kinds whose registered position is a home, not where their events happen."""


class LocationSource(StrEnum):
    """Where a case's position came from."""

    EVENT = "event"  # the alarm's evidence: where a moving asset was when it happened
    REGISTRY = "registry"  # the device's registered position: a fixed asset
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CaseLocation:
    """A sensor case's position and unit grid, and where they came from."""

    lat: float | None
    lon: float | None
    grid_code: str | None
    source: LocationSource


def _point(value: object) -> tuple[float, float] | None:
    """(lat, lon) of a mapping with finite numeric `lat` and `lon`, else None."""
    if not isinstance(value, Mapping):
        return None
    lat, lon = value.get("lat"), value.get("lon")
    if isinstance(lat, bool) or isinstance(lon, bool):
        return None
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return float(lat), float(lon)


def event_position(alarm: AlarmRecord) -> tuple[float, float] | None:
    """Where the alarm's event happened, from its evidence: the rule's `stop` detail (where
    a truck unloaded), else the first evidence reading with a position; None without one."""
    stop = _point(alarm.details.get("stop"))
    if stop is not None:
        return stop
    for snapshot in alarm.evidence:
        point = _point(snapshot.get("values"))
        if point is not None:
            return point
    return None


def locate_alarm(setup: CaseSetup, alarm: AlarmRecord, device: DeviceRecord | None) -> CaseLocation:
    """A sensor case's place: the event's position and the grid holding it for a moving
    asset (never its home), the registered position and grid for a fixed one."""
    if device is None or device.kind in MOVING_KINDS:
        point = event_position(alarm)
        if point is None:
            return CaseLocation(None, None, None, LocationSource.UNKNOWN)
        lat, lon = point
        grid_code = setup.grids.locate(lat=lat, lon=lon) if setup.grids is not None else None
        return CaseLocation(lat, lon, grid_code, LocationSource.EVENT)
    grid_code = locate_grid(setup, device.grid_code, device.lat, device.lon)
    return CaseLocation(device.lat, device.lon, grid_code, LocationSource.REGISTRY)


def route_department(setup: CaseSetup, class_code: str, grid_code: str | None) -> str:
    """The responsible department for a class in a grid, by the policy's routing table."""
    return setup.policy.routing.route(class_code, grid_code)


def draft_alarm_case(
    setup: CaseSetup,
    decision: FilingDecision,
    alarm: AlarmRecord,
    device: DeviceRecord | None,
    streets: StreetIndex | None = None,
) -> CaseDraft:
    """The case an alarm files into, per a FILE decision of the filing policy; a moving
    asset's case names the street nearest where it happened, when `streets` has one."""
    if decision.outcome is not FilingOutcome.FILE or decision.case_class is None:
        raise IntakeError(f"alarm {alarm.id} is not to be filed now: {decision.reason}")
    where = locate_alarm(setup, alarm, device)
    lat, lon, grid_code = where.lat, where.lon, where.grid_code
    department = decision.department or route_department(setup, decision.case_class.code, grid_code)
    description = decision.description or alarm.message or str(alarm.alarm_type)
    if device is not None and device.name:
        description = f"{description}（{device.name}）"
    alarm_doc = alarm_document(alarm)
    readings = alarm_doc.pop("evidence")
    evidence: dict[str, object] = {
        "alarm": alarm_doc,
        "readings": readings,
        "device": device.model_dump(mode="json") if device is not None else None,
        "location": {
            "lat": lat,
            "lon": lon,
            "grid_code": grid_code,
            "source": where.source.value,
        },
        "filing": {"reason": decision.reason, "urgency": decision.urgency.value},
    }
    address = None
    if where.source is LocationSource.EVENT and lat is not None and lon is not None and streets:
        road = streets.nearest(lat, lon)
        if road is not None:
            address = f"{road.name}（约 {road.distance_m:.0f} m）"
            evidence["road"] = {
                "name": road.name,
                "street_id": road.street_id,
                "distance_m": road.distance_m,
            }
    return CaseDraft(
        source=CaseSource.SENSOR,
        case_class=decision.case_class,
        urgency=decision.urgency,
        description=description,
        actor_role=Role.SYSTEM,
        grid_code=grid_code,
        department=department,
        lat=lat,
        lon=lon,
        address=address,
        alarm_id=alarm.id,
        device_id=device.device_id if device is not None else alarm.source_id,
        evidence=evidence,
        auto_register=decision.auto_register,
        auto_dispatch=decision.auto_dispatch,
        note=f"filed from {alarm.alarm_type} alarm {alarm.id} of {alarm.source_id}",
    )


def missing_grid_warning(
    setup: CaseSetup, grid_code: str | None, lat: float | None, lon: float | None
) -> str | None:
    """Why a reported case has no unit grid, for the intake operator; None when it has one.

    A report is not refused for its place: accepting or rejecting it (不予受理) is the
    intake operator's decision at 立案 (DOMAIN.md), so the case carries the warning instead.
    """
    if grid_code is not None:
        return None
    if setup.grids is None:
        return "no unit-grid file is loaded: give grid_code at registration (立案)"
    if lat is not None and lon is not None:
        return (
            f"位置不在本市网格内: lat/long ({lat:g}, {lon:g}) lies outside the city's unit grids; "
            "check the place before registration (立案)"
        )
    return "located by address only: give grid_code at registration (立案)"


def draft_person_case(setup: CaseSetup, report: PersonReport) -> CaseDraft:
    """The case a person's report opens; ClassificationError for an unknown class."""
    case_class = setup.classes.resolve(report.class_kind, report.class_code)
    located = report.address or report.address_id or report.grid_code
    if report.lat is None and report.lon is None and not located:
        raise IntakeError("a report needs a location: lat and lon, an address, or a grid code")
    if (report.lat is None) != (report.lon is None):
        raise IntakeError("give both lat and lon, or neither")
    if report.grid_code is not None:
        parse_unit_grid_code(report.grid_code)
    grid_code = locate_grid(setup, report.grid_code, report.lat, report.lon)
    location: dict[str, object] = {
        "lat": report.lat,
        "lon": report.lon,
        "address": report.address,
        "address_id": report.address_id,
        "grid_code": grid_code,
    }
    warning = missing_grid_warning(setup, grid_code, report.lat, report.lon)
    if warning is not None:
        location["warning"] = warning
    evidence: dict[str, object] = {
        "location": location,
        "reporter": dict(report.reporter),
        **dict(report.evidence),
    }
    return CaseDraft(
        source=report.source,
        case_class=case_class,
        urgency=report.urgency,
        description=report.description,
        actor_role=report.actor_role,
        grid_code=grid_code,
        department=route_department(setup, case_class.code, grid_code),
        lat=report.lat,
        lon=report.lon,
        address=report.address,
        evidence=evidence,
        actor_id=report.actor_id,
        note=report.description[:200],
    )
