"""Which hub of a cluster judges a device, and the hand-off of readings between hubs.

Several hubs share the telemetry stream through an MQTT v5 shared subscription, which
deals messages out round-robin: any hub may store any reading. The rules keep state per
device and per group (a cabinet and its lamps), so each device has one owner, the hub
that judges it. A hub that receives a reading of a device it does not own stores it and
hands the decoded reading to the owner (docs/scaling.md).

Ownership is a stable hash of the partition key, the same in every process (Python's
`hash` of a str is salted per process, so it is not used). The partition key is the
device's registry parent when it has one, else its own id: a group rule sees a cabinet's
lamps, whose parent is the cabinet, so a group and its members have one owner.
"""

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import orjson
from pydantic import TypeAdapter

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.payloads import PAYLOAD_MODELS
from hub.devices.wire import Payload

HANDOFF_VERSION = 3


# One list adapter per kind: a hand-off group's payloads in one pydantic call (version 2,
# and version 3's payloads that this release's models do not fit).
def _list_adapter(model: type[Payload]) -> TypeAdapter[list[Payload]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


_LIST_ADAPTERS = {kind: _list_adapter(model) for kind, model in PAYLOAD_MODELS.items()}
# Each kind's model field names, in the model's order: named once per hand-off group.
_FIELD_NAMES = {kind: list(model.model_fields) for kind, model in PAYLOAD_MODELS.items()}


@dataclass(frozen=True, slots=True)
class _Rebuild:
    """How a kind's payload model is rebuilt from its fields as JSON gave them back.

    `converters` turn the fields JSON cannot carry as they are (a datetime, an enum) back
    into what validation made of them; every other field is JSON's own (text, number,
    boolean, null). None for a model holding a field of any other type: its payloads are
    validated instead.
    """

    model: type[Payload]
    names: list[str]
    converters: tuple[tuple[str, Callable[[Any], Any]], ...]


def _converter(annotation: Any) -> Callable[[Any], Any] | None:
    """The function restoring a field of this type from JSON, None if JSON keeps it as it
    is; TypeError if it cannot be rebuilt without validation."""
    if get_origin(annotation) in (Union, UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"no rebuild of {annotation}")
        return _converter(inner[0])
    if get_origin(annotation) is Annotated:
        return _converter(get_args(annotation)[0])
    if annotation is datetime:
        return datetime.fromisoformat
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation
    if annotation in (str, int, float, bool):
        return None
    raise TypeError(f"no rebuild of {annotation}")


def _rebuild_plan(model: type[Payload], names: list[str]) -> _Rebuild | None:
    converters: list[tuple[str, Callable[[Any], Any]]] = []
    for name, info in model.model_fields.items():
        try:
            convert = _converter(info.annotation)
        except TypeError:
            return None
        if convert is not None:
            converters.append((name, convert))
    return _Rebuild(model, names, tuple(converters))


_REBUILDS = {
    kind: _rebuild_plan(model, _FIELD_NAMES[kind]) for kind, model in PAYLOAD_MODELS.items()
}
_new_object = object.__new__
_set_slot = object.__setattr__


def partition_key(device_id: str, parent_id: str | None) -> str:
    """The key that decides a device's owner: its parent (group) if any, else itself."""
    return parent_id or device_id


def owner_of(key: str, members: int) -> int:
    """The cluster member (0 … members-1) that owns a partition key."""
    if members < 1:
        raise ValueError("a cluster has at least one member")
    return zlib.crc32(key.encode("utf-8")) % members


@dataclass(frozen=True)
class Seat:
    """Where a hub sits in its cluster: how many members there are and which one it is."""

    members: int = 1
    member: int = 0

    def owner(self, device_id: str, parent_id: str | None) -> int:
        """The member that judges a device (its parent's owner when it has one)."""
        return owner_of(partition_key(device_id, parent_id), self.members)

    def judges(self, device_id: str, parent_id: str | None) -> bool:
        """Whether this member judges the device."""
        return self.owner(device_id, parent_id) == self.member


def handoff_topic(root: str, group: str, member: int) -> str:
    """The topic a member receives the readings handed to it on (outside the device tree)."""
    return f"hub/{root}/{group}/rules/{member}"


def encode_handoff(readings: Sequence[Reading]) -> bytes:
    """Readings as one hand-off message; `decode_handoff` gives them back.

    Grouped by kind and channel; each payload goes as its validated fields (the model's
    `__dict__`) and its extra fields, the arrival times once each with an index per
    reading, the whole message written by one orjson call: no Python call per reading.
    A cluster member hands about half of what it receives to the other, and version 2's
    pydantic serialisation and validation cost more per handed reading than decoding the
    device's message had (docs/scaling.md).
    """
    groups: dict[tuple[Kind, Channel], list[Reading]] = {}
    positions: dict[tuple[Kind, Channel], list[int]] = {}
    for position, reading in enumerate(readings):
        key = (reading.kind, reading.channel)
        group = groups.get(key)
        if group is None:
            groups[key] = [reading]
            positions[key] = [position]
        else:
            group.append(reading)
            positions[key].append(position)
    # The readings of one socket read share one arrival time.
    arrivals: dict[datetime, int] = {}
    for reading in readings:
        arrivals.setdefault(reading.received_at, len(arrivals))
    return orjson.dumps(
        {
            "v": HANDOFF_VERSION,
            "n": len(readings),
            "arrivals": list(arrivals),
            "groups": [
                [
                    kind.value,
                    channel.value,
                    positions[kind, channel],
                    [r.device_id for r in group],
                    [arrivals[r.received_at] for r in group],
                    _FIELD_NAMES[kind],
                    [r.payload.__dict__ for r in group],
                    [r.payload.__pydantic_extra__ or None for r in group],
                ]
                for (kind, channel), group in groups.items()
            ],
        }
    )


def decode_handoff(raw: bytes) -> list[Reading]:
    """The readings of a hand-off message; ValueError when it is not one this hub writes.

    Version 3's payloads were validated by the member that decoded the device's message,
    with the same models, and come on a topic only the hub's own account may write
    (deploy/mosquitto/platform.acl): their models are rebuilt from the fields as written,
    the arrival times and every field JSON cannot carry as it is (times, enums) restored,
    without validating the values a second time. A payload whose fields are not exactly
    its model's (a member of another release) is validated. Versions 1 and 2 (payloads
    validated again on arrival) are still read, so members of the previous release can
    hand off to this one during a rolling upgrade.
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"hand-off is not JSON: {err}") from err
    if not isinstance(document, dict):
        raise ValueError(f"hand-off is not version {HANDOFF_VERSION}")
    version = document.get("v")
    if version == 1:
        return _decode_v1(document)
    if version not in (2, HANDOFF_VERSION):
        raise ValueError(f"hand-off is not version {HANDOFF_VERSION}")
    try:
        return _decode_v3(document) if version == HANDOFF_VERSION else _decode_v2(document)
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        raise ValueError(f"hand-off is malformed: {type(err).__name__}: {err}") from err


def _decode_v3(document: dict[str, Any]) -> list[Reading]:
    groups = document["groups"]
    count = int(document["n"])
    if count != sum(len(group[2]) for group in groups):
        raise ValueError("hand-off count differs from its groups")
    from_iso = datetime.fromisoformat
    arrivals = [from_iso(text) for text in document["arrivals"]]
    # In the order handed off: a device's readings of two channels keep their order.
    slots: list[Reading | None] = [None] * count
    new_reading = tuple.__new__
    for kind_name, channel_name, places, device_ids, arrived, names, fields, extras in groups:
        kind = Kind(kind_name)
        channel = Channel(channel_name)
        if not len(places) == len(device_ids) == len(arrived) == len(fields) == len(extras):
            raise ValueError("hand-off group lengths differ")
        models = _rebuild_payloads(kind, names, fields, extras)
        for place, device_id, arrival, model in zip(
            places, device_ids, arrived, models, strict=True
        ):
            slots[place] = new_reading(
                Reading, (kind, str(device_id), channel, model.ts, arrivals[arrival], model)
            )
    readings = [r for r in slots if r is not None]
    if len(readings) != count:
        raise ValueError("hand-off readings missing")
    return readings


def _rebuild_payloads(
    kind: Kind,
    names: list[str],
    fields: list[dict[str, Any]],
    extras: list[dict[str, Any] | None],
) -> list[Payload]:
    """A group's payload models from their fields and extras (see decode_handoff).

    The sender names its model's fields once per group (every validated payload holds them
    all, in the model's order); a group whose names are not this release's model's, or a
    payload with another number of fields, is validated.
    """
    plan = _REBUILDS[kind]
    if plan is None or names != plan.names:
        return _validate_payloads(kind, fields, extras)
    model, converters, count = plan.model, plan.converters, len(names)
    models: list[Payload] = []
    for values, extra in zip(fields, extras, strict=True):
        if len(values) != count:
            models.extend(_validate_payloads(kind, [values], [extra]))
            continue
        for name, convert in converters:
            value = values[name]
            if value is not None:
                values[name] = convert(value)
        payload = _new_object(model)
        _set_slot(payload, "__dict__", values)
        _set_slot(payload, "__pydantic_extra__", extra or {})
        _set_slot(payload, "__pydantic_fields_set__", set(values))
        _set_slot(payload, "__pydantic_private__", None)
        models.append(payload)
    return models


def _validate_payloads(
    kind: Kind, fields: list[dict[str, Any]], extras: list[dict[str, Any] | None]
) -> list[Payload]:
    """A group's payloads validated by this release's model, extras merged back in."""
    return _LIST_ADAPTERS[kind].validate_python(
        [{**values, **(extra or {})} for values, extra in zip(fields, extras, strict=True)]
    )


def _decode_v2(document: dict[str, Any]) -> list[Reading]:
    groups = document["groups"]
    count = int(document["n"])
    if count != sum(len(group[2]) for group in groups):
        raise ValueError("hand-off count differs from its groups")
    # In the order handed off: a device's readings of two channels keep their order.
    slots: list[Reading | None] = [None] * count
    new_reading = tuple.__new__
    from_iso = datetime.fromisoformat
    for kind_name, channel_name, places, device_ids, arrivals, payloads in groups:
        kind = Kind(kind_name)
        channel = Channel(channel_name)
        models = _LIST_ADAPTERS[kind].validate_python(payloads)
        if not len(places) == len(models) == len(device_ids) == len(arrivals):
            raise ValueError("hand-off group lengths differ")
        for place, device_id, received_at, model in zip(
            places, device_ids, arrivals, models, strict=True
        ):
            slots[place] = new_reading(
                Reading, (kind, str(device_id), channel, model.ts, from_iso(received_at), model)
            )
    readings = [r for r in slots if r is not None]
    if len(readings) != count:
        raise ValueError("hand-off readings missing")
    return readings


def _decode_v1(document: dict[str, Any]) -> list[Reading]:
    readings: list[Reading] = []
    for kind_name, device_id, channel_name, received_at, payload in document["readings"]:
        kind = Kind(kind_name)
        model = PAYLOAD_MODELS[kind].model_validate(payload)
        readings.append(
            Reading(
                kind=kind,
                device_id=str(device_id),
                channel=Channel(channel_name),
                ts=model.ts,
                received_at=datetime.fromisoformat(received_at),
                payload=model,
            )
        )
    return readings
