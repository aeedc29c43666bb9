"""Crew alerts, pure: which alarm changes a lighting crew hears about and what they carry."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from hub.devices.kinds import Kind
from hub.rules.alarm_changes import AlarmChange, AlarmChangeKind, AlarmRecord
from hub.rules.alarm_types import SEVERITY_ORDER, AlarmType, Severity

LIGHTING_ALARM_TYPES: frozenset[AlarmType] = frozenset(
    {
        AlarmType.LAMP_OUT,
        AlarmType.LIT_BY_DAY,
        AlarmType.DARK_AT_NIGHT,
        AlarmType.OVER_VOLTAGE,
        AlarmType.UNDER_VOLTAGE,
        AlarmType.OVER_CURRENT,
        AlarmType.POWER_ABNORMAL,
        AlarmType.FLICKER,
        AlarmType.CABINET_TRIP,
        AlarmType.CIRCUIT_DARK,
        AlarmType.DOOR_OPEN,
        AlarmType.CONTACTOR_ANOMALY,
        AlarmType.SUPPLY_LOSS,
        AlarmType.COMMAND_NOT_EFFECTIVE,
    }
)
LIGHTING_KINDS = frozenset({Kind.LIGHTING, Kind.CABINET})


class CrewAlertKind(StrEnum):
    """What a crew is told: a new fault, a worse one, or one that went away."""

    NEW = "new"
    ESCALATED = "escalated"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class AlertLocation:
    """Where the failed asset is, from the registry."""

    kind: Kind
    lat: float
    lon: float
    name: str | None
    grid_code: str | None
    cabinet_id: str | None
    circuit_id: str | None


def is_lighting_fault(alarm_type: AlarmType, device_kind: Kind | None) -> bool:
    """A lighting fault type, or an offline lamp or cabinet."""
    if alarm_type in LIGHTING_ALARM_TYPES:
        return True
    return alarm_type is AlarmType.OFFLINE and device_kind in LIGHTING_KINDS


def severity_rank(severity: Severity) -> int:
    """0 for the most severe."""
    return SEVERITY_ORDER.index(severity)


def crew_alert_kind(change: AlarmChange, previous: Severity | None) -> CrewAlertKind | None:
    """Raised is new, cleared is cleared, an update to a more severe level is escalated."""
    if change.kind is AlarmChangeKind.RAISED:
        return CrewAlertKind.NEW
    if change.kind is AlarmChangeKind.CLEARED:
        return CrewAlertKind.CLEARED
    if (
        change.kind is AlarmChangeKind.UPDATED
        and previous is not None
        and severity_rank(change.alarm.severity) < severity_rank(previous)
    ):
        return CrewAlertKind.ESCALATED
    return None


def crew_alert_topic(root: str, alarm: AlarmRecord) -> str:
    """`<root>/alerts/lighting/<source_id>/<alarm_type>`."""
    return f"{root}/alerts/lighting/{alarm.source_id}/{alarm.alarm_type}"


def crew_alert_document(
    kind: CrewAlertKind, alarm: AlarmRecord, location: AlertLocation | None
) -> dict[str, object]:
    """The alert as pushed (MQTT, SSE, webhook): where, what failed, since when, evidence."""
    where: Mapping[str, object] | None = None
    if location is not None:
        where = {
            "kind": location.kind.value,
            "lat": location.lat,
            "lon": location.lon,
            "name": location.name,
            "grid_code": location.grid_code,
            "cabinet_id": location.cabinet_id,
            "circuit_id": location.circuit_id,
        }
    return {
        "alert": kind.value,
        "alarm_id": alarm.id,
        "source_kind": alarm.source_kind.value,
        "source_id": alarm.source_id,
        "alarm_type": alarm.alarm_type.value,
        "severity": alarm.severity.value,
        "what": alarm.message,
        "since": alarm.raised_at.isoformat(),
        "cleared_at": alarm.cleared_at.isoformat() if alarm.cleared_at else None,
        "count": alarm.count,
        "location": where,
        "evidence": [dict(e) for e in alarm.evidence],
        "details": dict(alarm.details),
        "case_id": alarm.case_id,
    }
