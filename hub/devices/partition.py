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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.payloads import PAYLOAD_MODELS
from hub.devices.wire import Payload

HANDOFF_VERSION = 2


# One list adapter per kind: a hand-off group's payloads in one pydantic call each way.
def _list_adapter(model: type[Payload]) -> TypeAdapter[list[Payload]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


_LIST_ADAPTERS = {kind: _list_adapter(model) for kind, model in PAYLOAD_MODELS.items()}


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

    Grouped by kind and channel, each group's payloads serialised by one pydantic call
    (a list adapter) and its arrival times by orjson, not a Python call per reading:
    a cluster member hands about half of what it receives to the other, and version 1's
    per-reading `model_dump` and `model_validate` were a tenth of a member's CPU under a
    steady load (docs/scaling.md).
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
    return orjson.dumps(
        {
            "v": HANDOFF_VERSION,
            "n": len(readings),
            "groups": [
                [
                    kind.value,
                    channel.value,
                    positions[kind, channel],
                    [r.device_id for r in group],
                    [r.received_at for r in group],
                    orjson.Fragment(_LIST_ADAPTERS[kind].dump_json([r.payload for r in group])),
                ]
                for (kind, channel), group in groups.items()
            ],
        }
    )


def decode_handoff(raw: bytes) -> list[Reading]:
    """The readings of a hand-off message; ValueError when it is not one this hub writes.

    The payloads are validated again, by the same models as at ingest (one call per group).
    Version 1 (a list of readings, each validated on its own) is still read, so members
    of the previous release can hand off to this one during a rolling upgrade.
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
    if version != HANDOFF_VERSION:
        raise ValueError(f"hand-off is not version {HANDOFF_VERSION}")
    try:
        return _decode_v2(document)
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"hand-off is malformed: {type(err).__name__}: {err}") from err


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
