"""Stored alarms and their changes as plain values, and the Protocol that publishes changes.

The alarm store returns `AlarmChange`s after each commit; publishers (MQTT, the SSE
fan-out) implement `AlarmPublisher` and send `alarm_change_document` as their JSON body.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SourceKind, empty_mapping


class AlarmState(StrEnum):
    """Alarm lifecycle: active → acknowledged → cleared (active → cleared is allowed too)."""

    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


class AlarmChangeKind(StrEnum):
    """What happened to an alarm row."""

    RAISED = "raised"
    UPDATED = "updated"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """One alarm row as stored."""

    id: int
    source_kind: SourceKind
    source_id: str
    alarm_type: AlarmType
    severity: Severity
    state: AlarmState
    raised_at: datetime
    last_seen_at: datetime
    count: int
    message: str
    cleared_at: datetime | None = None
    evidence: Sequence[Mapping[str, object]] = ()
    details: Mapping[str, object] = field(default_factory=empty_mapping)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    cleared_by: str | None = None
    case_id: int | None = None
    updated_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """True until the alarm is cleared."""
        return self.state is not AlarmState.CLEARED


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """An alarm row after a change, and what the change was."""

    kind: AlarmChangeKind
    alarm: AlarmRecord


class AlarmPublisher(Protocol):
    """Somewhere alarm changes go after they are committed (MQTT, SSE clients)."""

    def publish_changes(self, changes: Sequence[AlarmChange]) -> None:
        """Send these changes; must not block for long and must not raise for delivery."""
        ...


def alarm_topic(root: str, alarm: AlarmRecord) -> str:
    """`<root>/alarms/<source_kind>/<source_id>/<alarm_type>`."""
    return f"{root}/alarms/{alarm.source_kind}/{alarm.source_id}/{alarm.alarm_type}"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def alarm_document(alarm: AlarmRecord) -> dict[str, object]:
    """An alarm as a JSON-ready object (the API's and the published shape)."""
    return {
        "id": alarm.id,
        "source_kind": alarm.source_kind.value,
        "source_id": alarm.source_id,
        "alarm_type": alarm.alarm_type.value,
        "severity": alarm.severity.value,
        "state": alarm.state.value,
        "raised_at": _iso(alarm.raised_at),
        "last_seen_at": _iso(alarm.last_seen_at),
        "cleared_at": _iso(alarm.cleared_at),
        "count": alarm.count,
        "message": alarm.message,
        "evidence": [dict(e) for e in alarm.evidence],
        "details": dict(alarm.details),
        "acknowledged_by": alarm.acknowledged_by,
        "acknowledged_at": _iso(alarm.acknowledged_at),
        "cleared_by": alarm.cleared_by,
        "case_id": alarm.case_id,
        "updated_at": _iso(alarm.updated_at),
    }


def alarm_change_document(change: AlarmChange) -> dict[str, object]:
    """A change as published: `{"change": "raised", "alarm": {...}}`."""
    return {"change": change.kind.value, "alarm": alarm_document(change.alarm)}
