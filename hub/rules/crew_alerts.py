"""Crew alerts, pure: which alarm changes a lighting crew hears about and what they carry,
and their numbered fan-out (SSE ids, resume after `Last-Event-ID`)."""

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from hub.devices.kinds import Kind
from hub.rules.alarm_changes import AlarmChange, AlarmChangeKind, AlarmRecord
from hub.rules.alarm_fanout import AlarmFanout
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
        AlarmType.CABLE_THEFT,
        AlarmType.POWER_FACTOR_LOW,
        AlarmType.VOLTAGE_TREND,
    }
)
LIGHTING_KINDS = frozenset({Kind.LIGHTING, Kind.CABINET})


class CrewAlertKind(StrEnum):
    """What a crew is told: a new fault, a worse one, or one that went away."""

    NEW = "new"
    ESCALATED = "escalated"
    UPDATED = "updated"  # still there: last_seen_at and count moved on
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"  # its case was dispatched to a department (a crew)
    CLEARED = "cleared"


UPDATE_EVERY = timedelta(minutes=5)
"""A lasting fault is re-announced (`updated`) at most this often, in its event time."""


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
    asset: Mapping[str, object] = field(default_factory=dict)
    """The asset record from the registry attributes (ASSET_ATTRIBUTES present)."""


ASSET_ATTRIBUTES = (
    "pole_id",
    "fixture_model",
    "lamp_type",
    "rated_power_w",
    "install_date",
    "rated_life_h",
    "road_class",
)
"""Registry attributes a crew alert carries as the asset record (those a device has)."""


# Every type `is_lighting_fault` may say yes to, whatever the device: a change of another
# type needs no look-up of the device's kind.
MAY_BE_LIGHTING_FAULT: frozenset[AlarmType] = LIGHTING_ALARM_TYPES | {AlarmType.OFFLINE}


def is_lighting_fault(alarm_type: AlarmType, device_kind: Kind | None) -> bool:
    """A lighting fault type, or an offline lamp or cabinet."""
    if alarm_type in LIGHTING_ALARM_TYPES:
        return True
    return alarm_type is AlarmType.OFFLINE and device_kind in LIGHTING_KINDS


def severity_rank(severity: Severity) -> int:
    """0 for the most severe."""
    return SEVERITY_ORDER.index(severity)


def crew_alert_kind(
    change: AlarmChange,
    previous: Severity | None,
    last_sent_seen_at: datetime | None = None,
    update_every: timedelta = UPDATE_EVERY,
) -> CrewAlertKind | None:
    """Raised is new, cleared is cleared, acknowledged is acknowledged; an update to a more
    severe level is escalated, another update is `updated` once the fault was seen
    `update_every` after what the crew last heard (`last_sent_seen_at`, else the raise)."""
    if change.kind is AlarmChangeKind.RAISED:
        return CrewAlertKind.NEW
    if change.kind is AlarmChangeKind.CLEARED:
        return CrewAlertKind.CLEARED
    if change.kind is AlarmChangeKind.ACKNOWLEDGED:
        return CrewAlertKind.ACKNOWLEDGED
    if change.kind is not AlarmChangeKind.UPDATED:
        return None
    if previous is not None and severity_rank(change.alarm.severity) < severity_rank(previous):
        return CrewAlertKind.ESCALATED
    heard = last_sent_seen_at or change.alarm.raised_at
    if change.alarm.last_seen_at - heard >= update_every:
        return CrewAlertKind.UPDATED
    return None


def fault_since(alarm: AlarmRecord) -> datetime:
    """When the fault began: the start of the condition the rule debounced (its
    `details.condition_since`), else when the alarm was raised."""
    began = alarm.details.get("condition_since")
    if isinstance(began, str):
        try:
            began = datetime.fromisoformat(began)
        except ValueError:
            began = None
    if isinstance(began, datetime) and began.tzinfo is not None and began <= alarm.raised_at:
        return began
    return alarm.raised_at


def crew_alert_topic(root: str, alarm: AlarmRecord) -> str:
    """`<root>/alerts/lighting/<source_id>/<alarm_type>`."""
    return f"{root}/alerts/lighting/{alarm.source_id}/{alarm.alarm_type}"


@dataclass(frozen=True, slots=True)
class CaseAssignment:
    """The case filed for an alarm, as dispatched: to which department, when, in what state."""

    case_id: int
    case_number: str
    status: str
    department: str | None
    dispatched_at: datetime

    def document(self) -> dict[str, object]:
        """The assignment as alert fields."""
        return {
            "case_id": self.case_id,
            "case_number": self.case_number,
            "status": self.status,
            "department": self.department,
            "dispatched_at": self.dispatched_at.isoformat(),
        }


def crew_alert_document(
    kind: CrewAlertKind,
    alarm: AlarmRecord,
    location: AlertLocation | None,
    assignment: CaseAssignment | None = None,
) -> dict[str, object]:
    """The alert as pushed (MQTT, SSE, webhook): where, what failed, since when, evidence,
    and (an `assigned` alert) to whom its case went."""
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
            "asset": dict(location.asset),
        }
    return {
        "alert": kind.value,
        "alarm_id": alarm.id,
        "source_kind": alarm.source_kind.value,
        "source_id": alarm.source_id,
        "alarm_type": alarm.alarm_type.value,
        "severity": alarm.severity.value,
        "what": alarm.message,
        "since": fault_since(alarm).isoformat(),
        "raised_at": alarm.raised_at.isoformat(),
        "last_seen_at": alarm.last_seen_at.isoformat(),
        "cleared_at": alarm.cleared_at.isoformat() if alarm.cleared_at else None,
        "count": alarm.count,
        "state": alarm.state.value,
        "acknowledged_by": alarm.acknowledged_by,
        "acknowledged_at": alarm.acknowledged_at.isoformat() if alarm.acknowledged_at else None,
        "location": where,
        "evidence": [dict(e) for e in alarm.evidence],
        "details": dict(alarm.details),
        "case_id": alarm.case_id,
        "assignment": None if assignment is None else assignment.document(),
    }


class CrewAlertFanout(AlarmFanout):
    """The crew alert fan-out, numbering each alert (`event_id`, the SSE `id`) and keeping the
    last `keep` so a tablet that lost its connection resumes with `Last-Event-ID`.

    Ids are `<epoch>-<n>`: `n` counts up from 1 in this process, `epoch` tells processes
    apart, so an id from before a restart is recognised as such (the tablet reloads faults).
    """

    def __init__(self, keep: int = 2000, max_pending: int = 1000, epoch: str | None = None) -> None:
        super().__init__(max_pending)
        # the process's start (or a given epoch) tells ids of this process from earlier ones
        self.epoch = epoch or format(time.time_ns() // 1_000_000, "x")
        self._log: deque[tuple[int, dict[str, object]]] = deque(maxlen=keep)
        self._log_lock = threading.Lock()
        self._next = 1

    def publish_documents(self, documents: Sequence[Mapping[str, object]]) -> None:
        """Number and keep the alerts, then hand them to the connected streams, in order."""
        if not documents:
            return
        with self._log_lock:
            stamped: list[dict[str, object]] = []
            for document in documents:
                numbered = {**document, "event_id": f"{self.epoch}-{self._next}"}
                self._log.append((self._next, numbered))
                self._next += 1
                stamped.append(numbered)
            super().publish_documents(stamped)

    def sequence(self, event_id: object) -> int | None:
        """The number of an id of this process, None for another process's or a bad id."""
        if not isinstance(event_id, str):
            return None
        epoch, _, number = event_id.rpartition("-")
        return int(number) if epoch == self.epoch and number.isdigit() else None

    def after(self, last_event_id: str) -> tuple[list[dict[str, object]], bool]:
        """The kept alerts after `last_event_id`, and whether none between was lost (False
        also for an id of an earlier process: the tablet must reload the open faults)."""
        last = self.sequence(last_event_id)
        with self._log_lock:
            kept = list(self._log)
        if last is None:
            return [d for _, d in kept], False
        complete = not kept or kept[0][0] <= last + 1
        return [d for n, d in kept if n > last], complete
