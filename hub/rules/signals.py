"""What the rule engine emits: alarm signals that the alarm store turns into rows and updates."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from hub.rules.alarm_types import AlarmType, Severity

EMPTY_MAPPING: Mapping[str, object] = MappingProxyType({})


def empty_mapping() -> Mapping[str, object]:
    """The shared read-only empty mapping, as a dataclass default factory."""
    return EMPTY_MAPPING


class SignalAction(StrEnum):
    """What the alarm store should do with the one alarm of (source, type)."""

    RAISE = "raise"
    UPDATE = "update"
    CLEAR = "clear"


class SourceKind(StrEnum):
    """Whether an alarm belongs to one device or to a group (cabinet, circuit, lot)."""

    DEVICE = "device"
    GROUP = "group"


class EvidenceSnapshot(NamedTuple):
    """The fields of one reading (or one offline check) that an alarm decision rests on.

    A named tuple: the condition table keeps one for every FAULT observation (a lamp lit
    by day, a truck without a permit: each of its readings), and a frozen dataclass's
    `__init__` runs as Python even in the compiled rules, three `object.__setattr__`
    calls. Hot paths build it with `tuple.__new__` (hub/rules/condition.py).
    """

    ts: datetime
    device_id: str
    values: Mapping[str, object] = EMPTY_MAPPING


@dataclass(frozen=True, slots=True)
class AlarmSignal:
    """A change to the alarm of (source, type) at an event time, with its evidence.

    RAISE opens the alarm (count = triggering observations so far), UPDATE reports a
    repeat trigger or a severity change on the open alarm, CLEAR closes it.
    """

    action: SignalAction
    source_kind: SourceKind
    source_id: str
    alarm_type: AlarmType
    severity: Severity
    at: datetime
    message: str
    count: int
    evidence: tuple[EvidenceSnapshot, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)
