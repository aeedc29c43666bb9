"""CaseState and CaseEvent to and from JSON-ready objects, for storage and the event log.

Instants are RFC 3339 strings, durations are seconds, enums their values; decoding
checks every field so a stored state that no longer matches the code fails loudly.
"""

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from hub.cases.calendar import Pause, Urgency
from hub.cases.classification import ClassKind
from hub.cases.workflow import CaseEvent, CaseSource, CaseState, CaseStatus

_INSTANT_FIELDS = frozenset(
    {
        "reported_at",
        "updated_at",
        "stage_started_at",
        "registered_at",
        "first_dispatched_at",
        "dispatched_at",
        "accepted_at",
        "handled_at",
        "verified_at",
        "closed_at",
        "finished_at",
        "urged_at",
        "called_back_at",
    }
)
_DURATION_FIELDS = frozenset({"extension_granted", "requested_extension"})
_ENUM_FIELDS: Mapping[str, type[StrEnum]] = {
    "status": CaseStatus,
    "source": CaseSource,
    "class_kind": ClassKind,
    "urgency": Urgency,
}
_TEXT_FIELDS = frozenset(
    {
        "case_id",
        "class_code",
        "grid_code",
        "department",
        "alarm_id",
        "dispatched_by",
        "inspector",
        "merged_into",
        "callback_result",
    }
)
_INT_FIELDS = frozenset(
    {
        "version",
        "rework_count",
        "return_count",
        "extension_count",
        "suspension_count",
        "urge_level",
    }
)
_OTHER_FIELDS = frozenset({"checked", "pauses"})
CODED_FIELDS = (
    _INSTANT_FIELDS
    | _DURATION_FIELDS
    | frozenset(_ENUM_FIELDS)
    | _TEXT_FIELDS
    | _INT_FIELDS
    | _OTHER_FIELDS
)


class StateCodecError(ValueError):
    """A stored case state cannot be decoded."""


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_instant(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StateCodecError(f"{name} must be an RFC 3339 string, got {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise StateCodecError(f"{name} has no UTC offset: {value!r}")
    return parsed


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _encode_pause(pause: Pause) -> dict[str, object]:
    return {
        "start_at": pause.start_at.isoformat(),
        "end_at": _instant(pause.end_at),
        "granted_s": _seconds(pause.granted),
    }


def _decode_pause(doc: Mapping[str, Any]) -> Pause:
    start_at = _parse_instant(doc.get("start_at"), "pause start_at")
    if start_at is None:
        raise StateCodecError("a pause needs start_at")
    granted_s = doc.get("granted_s")
    return Pause(
        start_at=start_at,
        end_at=_parse_instant(doc.get("end_at"), "pause end_at"),
        granted=None if granted_s is None else timedelta(seconds=float(granted_s)),
    )


def encode_case_state(state: CaseState) -> dict[str, object]:
    """A JSON-ready object of every field of a case state."""
    doc: dict[str, object] = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if f.name in _INSTANT_FIELDS:
            doc[f.name] = _instant(value)
        elif f.name in _DURATION_FIELDS:
            doc[f.name] = _seconds(value)
        elif f.name == "pauses":
            doc[f.name] = [_encode_pause(p) for p in value]
        elif isinstance(value, StrEnum):
            doc[f.name] = value.value
        else:
            doc[f.name] = value
    return doc


def decode_case_state(doc: Mapping[str, Any]) -> CaseState:
    """The case state stored by `encode_case_state`; StateCodecError if it does not fit."""
    values: dict[str, Any] = {}
    try:
        for f in fields(CaseState):
            if f.name not in doc:
                continue
            raw = doc[f.name]
            if f.name in _INSTANT_FIELDS:
                values[f.name] = _parse_instant(raw, f.name)
            elif f.name in _DURATION_FIELDS:
                values[f.name] = None if raw is None else timedelta(seconds=float(raw))
            elif f.name in _ENUM_FIELDS:
                values[f.name] = _ENUM_FIELDS[f.name](raw)
            elif f.name == "pauses":
                values[f.name] = tuple(_decode_pause(p) for p in raw)
            else:
                values[f.name] = raw
        if values.get("extension_granted") is None:
            values.pop("extension_granted", None)
        return CaseState(**values)
    except (TypeError, ValueError) as err:
        raise StateCodecError(f"stored case state does not decode: {err}") from err


def encode_case_event(event: CaseEvent) -> dict[str, object]:
    """A JSON-ready object of a case event."""
    return {
        "case_id": event.case_id,
        "seq": event.seq,
        "action": event.action.value,
        "from_status": None if event.from_status is None else event.from_status.value,
        "to_status": event.to_status.value,
        "actor_role": event.actor_role.value,
        "actor_id": event.actor_id,
        "at": event.at.isoformat(),
        "note": event.note,
        "payload": dict(event.payload),
    }
