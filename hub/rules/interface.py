"""What a rule is: the device view it judges, and the typed protocols rules implement.

A per-device rule (`Rule[StateT, ParamsT]`) is generic over its per-device state and its
parameters model: the engine builds the state with `initial_state()` and validates the
parameters with `params_model`, so a rule receives exactly the types it declares and
needs no casts. A group rule (`GroupRule[ParamsT, ProjectedT]`) is generic over its
parameters and the small piece of each member's reading it keeps. The engine holds rules
of many types side by side (`AnyRule`, `AnyGroupRule`); the types meet inside each rule.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from hub.devices.decode import Reading
from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Observation
from hub.rules.signals import EMPTY_MAPPING, empty_mapping

StateT = TypeVar("StateT")
ParamsT = TypeVar("ParamsT", bound=BaseModel)
ProjectedT = TypeVar("ProjectedT")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the engine needs from the registry about one device."""

    device_id: str
    kind: Kind
    group_id: str | None = None
    attributes: Mapping[str, object] = field(default_factory=empty_mapping)
    lat: float | None = None
    lon: float | None = None

    @classmethod
    def from_record(
        cls, record: DeviceRecord, shared: "SharedAttributes | None" = None
    ) -> "DeviceInfo":
        """A registry record's view for the rules; the parent (cabinet, circuit) is the group.

        With `shared`, devices whose attributes are equal hold one mapping between them.
        """
        attributes = record.attributes if shared is None else shared.share(record.attributes)
        return cls(
            record.device_id,
            record.kind,
            record.parent_id,
            attributes,
            record.lat,
            record.lon,
        )


class SharedAttributes:
    """One mapping per distinct set of registry attributes, for the devices that carry it.

    A lamp's attributes (rating, type, cabinet, circuit, road class) equal those of the
    other lamps on its circuit: ~400 bytes of dict and strings per device, repeated
    100,000 times, where one shared mapping does. Attributes holding a list or an object
    (unhashable) are kept as they are. The mappings are read-only by DeviceInfo's contract.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[tuple[object, ...], Mapping[str, object]] = {}

    def share(self, attributes: Mapping[str, object]) -> Mapping[str, object]:
        """The mapping equal to `attributes` already seen, else `attributes` itself."""
        if not attributes:
            return EMPTY_MAPPING
        # The type is part of the key: 1, 1.0 and True are equal and hash alike.
        key = tuple((name, type(value), value) for name, value in attributes.items())
        try:
            return self._seen.setdefault(key, attributes)
        except TypeError:  # a list or object among the values
            return attributes


class Rule(Protocol[StateT, ParamsT]):
    """A per-device rule: the kinds it judges and how one reading bears on its conditions."""

    @property
    def name(self) -> str:
        """Section name in the rules file."""
        ...

    @property
    def kinds(self) -> frozenset[Kind]:
        """Kinds of device the rule applies to."""
        ...

    @property
    def alarm_types(self) -> frozenset[AlarmType]:
        """Alarm types the rule's observations may carry."""
        ...

    @property
    def params_model(self) -> type[ParamsT]:
        """Pydantic model of the rule's own parameters (extra keys of its section)."""
        ...

    def initial_state(self) -> StateT:
        """A fresh per-device state (mutable, slotted), or None for a stateless rule."""
        ...

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: StateT, params: ParamsT
    ) -> Iterable[Observation]:
        """Observations about the device's conditions at the reading's event time.

        A rule may also take a fifth parameter `faults_only: bool = False` (positional or
        keyword, hub/rules/plan.py): the engine passes True when
        none of the rule's `alarm_types` has a live condition of the device, and the rule
        may then leave out every observation that is not a FAULT (they would change
        nothing); its state changes must not depend on it, and it observes no type it does
        not list (hub/rules/plan.py).
        """
        ...


@dataclass(frozen=True, slots=True)
class GroupView(Generic[ProjectedT]):
    """A group as a group rule sees it: members and each member's latest projected state."""

    group_id: str
    member_ids: tuple[str, ...]
    latest: Mapping[str, ProjectedT]
    ts: datetime


class GroupRule(Protocol[ParamsT, ProjectedT]):
    """A rule over a group's members (e.g. most lamps of a circuit dark → one group alarm)."""

    @property
    def name(self) -> str:
        """Section name in the rules file."""
        ...

    @property
    def member_kinds(self) -> frozenset[Kind]:
        """Kinds of member whose readings the rule follows."""
        ...

    @property
    def alarm_types(self) -> frozenset[AlarmType]:
        """Alarm types the rule's group observations may carry."""
        ...

    @property
    def suppresses(self) -> frozenset[AlarmType]:
        """Member alarm types covered while this rule's group alarm is active."""
        ...

    @property
    def params_model(self) -> type[ParamsT]:
        """Pydantic model of the rule's own parameters."""
        ...

    def project(self, reading: Reading, params: ParamsT) -> ProjectedT:
        """The small piece of a member's reading the group rule keeps (memory per member)."""
        ...

    def evaluate_group(
        self, group: "GroupView[ProjectedT]", params: ParamsT
    ) -> Iterable[Observation]:
        """Observations about the group's conditions after members changed."""
        ...


# The engine's view of its rules: each rule's own types are checked where it is written.
AnyRule = Rule[Any, Any]
AnyGroupRule = GroupRule[Any, Any]
