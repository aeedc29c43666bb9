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

import orjson

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.payloads import PAYLOAD_MODELS

HANDOFF_VERSION = 1


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
    """Readings as one hand-off message; `decode_handoff` gives them back."""
    return orjson.dumps(
        {
            "v": HANDOFF_VERSION,
            "readings": [
                [
                    r.kind.value,
                    r.device_id,
                    r.channel.value,
                    r.received_at.isoformat(),
                    r.payload.model_dump(mode="json"),
                ]
                for r in readings
            ],
        }
    )


def decode_handoff(raw: bytes) -> list[Reading]:
    """The readings of a hand-off message; ValueError when it is not one this hub writes."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"hand-off is not JSON: {err}") from err
    if not isinstance(document, dict) or document.get("v") != HANDOFF_VERSION:
        raise ValueError(f"hand-off is not version {HANDOFF_VERSION}")
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
