"""Pure translation between JT/T 808 messages and the MQTT wire contract of trucks.

Positions become truck readings (`lat`, `lon`, `speed_kmh`, …); hub commands on
`…/cmd` become 0x8300/0x8606/0x8607 bodies; a terminal's 0x0001 becomes a `cmd/ack`.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from hub.devices.kinds import Load
from hub.ingest.jt808.frame import Version
from hub.ingest.jt808.messages import (
    Item,
    Location,
    MsgId,
    Result,
    Route,
    RoutePoint,
    Status,
    TextMessage,
    encode_route,
    encode_route_deletion,
    encode_text,
)

_SOURCE = re.compile(r"^(!?)(?:status:(\d{1,2})|item:(0x[0-9a-fA-F]{1,2}|\d{1,3})(?::(\d{1,2}))?)$")


@dataclass(frozen=True, slots=True)
class BitSource:
    """Where a vendor puts a yes/no: a status bit, or a bit of an additional item."""

    status_bit: int | None = None
    item_id: int | None = None
    item_bit: int = 0
    inverted: bool = False

    def read(self, loc: Location) -> bool | None:
        """The flag in this report, or None when the report does not carry it."""
        if self.status_bit is not None:
            return loc.status_bit(self.status_bit) != self.inverted
        if self.item_id is None:
            return None
        value = loc.item_int(self.item_id)
        return None if value is None else bool(value >> self.item_bit & 1) != self.inverted


def parse_bit_source(text: str) -> BitSource:
    """`status:<bit>` or `item:<id>[:<bit>]` (id decimal or 0x-hex), `!` first to invert."""
    match = _SOURCE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r}: expected status:<bit> or item:<id>[:<bit>]")
    bang, status, item, bit = match.groups()
    inverted = bang == "!"
    if status is not None:
        if int(status) > 31:
            raise ValueError(f"{text!r}: status bits are 0-31")
        return BitSource(status_bit=int(status), inverted=inverted)
    item_id = int(item, 16) if item.lower().startswith("0x") else int(item)
    if item_id > 255 or int(bit or 0) > 31:
        raise ValueError(f"{text!r}: item ids are 0-255, bits 0-31")
    return BitSource(item_id=item_id, item_bit=int(bit or 0), inverted=inverted)


@dataclass(frozen=True, slots=True)
class BodyMapping:
    """Where body lift and cover state come from; vendors and provincial specs differ."""

    body_lifted: BitSource
    cover_closed: BitSource


# Documented defaults (docs/trucks.md): vendor item 0xEB, bit 0 lifted, bit 1 cover closed.
# An item, not a status bit: a terminal that does not report it is not read as "cover open".
DEFAULT_LIFT_SOURCE = "item:0xEB:0"
DEFAULT_COVER_SOURCE = "item:0xEB:1"


def load_of(status: int) -> Load:
    """Status bits 8-9: 00 empty, 01 half, 11 full (10 is reserved; read as half)."""
    bits = status >> 8 & 0b11
    if bits == 0:
        return Load.EMPTY
    return Load.FULL if bits == 0b11 else Load.HALF


@dataclass(slots=True)
class BodyState:
    """Last known body lift and cover state of a truck, for reports that omit them."""

    body_lifted: bool = False
    cover_closed: bool = True


_NAMED_ITEMS = frozenset(int(i) for i in Item)


def truck_reading(
    loc: Location, mapping: BodyMapping, last: BodyState, **extra: object
) -> dict[str, Any]:
    """One truck reading of the wire contract from a position; updates `last`."""
    lifted = mapping.body_lifted.read(loc)
    closed = mapping.cover_closed.read(loc)
    if lifted is not None:
        last.body_lifted = lifted
    if closed is not None:
        last.cover_closed = closed
    reading: dict[str, Any] = {
        "ts": int(loc.observed_at.timestamp() * 1000),
        "lat": loc.lat,
        "lon": loc.lon,
        "speed_kmh": loc.speed_dkmh / 10,
        "heading_deg": min(loc.direction_deg, 360),
        "acc_on": loc.status_bit(Status.ACC),
        "body_lifted": last.body_lifted,
        "cover_closed": last.cover_closed,
        "load": load_of(loc.status).value,
        "alarm_flags": loc.alarm_flags,
        "positioned": loc.status_bit(Status.FIXED),
        "altitude_m": loc.altitude_m,
    }
    mileage = loc.item_int(Item.MILEAGE)
    if mileage is not None:
        reading["mileage_km"] = mileage / 10
    fuel = loc.item_int(Item.FUEL)
    if fuel is not None:
        reading["fuel_l"] = fuel / 10
    recorder = loc.item_int(Item.RECORDER_SPEED)
    if recorder is not None:
        reading["recorder_speed_kmh"] = recorder / 10
    signal = loc.item_int(Item.SIGNAL)
    if signal is not None:
        reading["signal"] = signal
    satellites = loc.item_int(Item.SATELLITES)
    if satellites is not None:
        reading["satellites"] = satellites
    if not loc.items.keys() <= _NAMED_ITEMS:
        reading["jt808_items"] = {
            f"{k:#04x}": v.hex() for k, v in sorted(loc.items.items()) if k not in _NAMED_ITEMS
        }
    reading.update(extra)
    return reading


class CommandAction(StrEnum):
    """Truck commands the gateway relays (the `action` of a `…/cmd` document)."""

    TEXT = "text"
    SET_ROUTE = "set_route"
    DELETE_ROUTE = "delete_route"


class CommandError(ValueError):
    """A command document the gateway cannot turn into a JT/T 808 message."""


@dataclass(frozen=True, slots=True)
class OutgoingCommand:
    """A hub command as the message for the terminal."""

    command_id: str
    msg_id: int
    body: bytes


def _int(document: dict[str, Any], key: str, default: int | None = None) -> int:
    value = document.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CommandError(f"{key} must be a non-negative integer")
    return value


def _route_points(route: object, corridor_m: int) -> tuple[RoutePoint, ...]:
    if not isinstance(route, list) or len(route) < 2:
        raise CommandError("route must be a list of at least two [lon, lat] points")
    points = []
    for index, point in enumerate(route, start=1):
        if not (
            isinstance(point, list | tuple)
            and len(point) == 2
            and all(isinstance(c, int | float) and not isinstance(c, bool) for c in point)
        ):
            raise CommandError(f"route point {index} is not [lon, lat]")
        lon, lat = float(point[0]), float(point[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise CommandError(f"route point {index} is out of range")
        # The standard carries magnitudes; the terminal knows its hemisphere from its fix.
        points.append(
            RoutePoint(
                point_id=index,
                section_id=index,
                lat_e6=round(abs(lat) * 1e6),
                lon_e6=round(abs(lon) * 1e6),
                width_m=corridor_m,
            )
        )
    return tuple(points)


def parse_command(document: object, version: Version) -> OutgoingCommand:
    """A `…/cmd` document as the message for a terminal of `version`.

    `{"command_id", "action": "text", "text"}`, `{"action": "set_route", "route_id",
    "route": [[lon, lat], …], "corridor_m", "name"?}`, `{"action": "delete_route",
    "route_id"}` (or `"route_ids": [...]`, empty for all).
    """
    if not isinstance(document, dict):
        raise CommandError("a command is a JSON object")
    command_id = document.get("command_id")
    if not isinstance(command_id, str) or not 1 <= len(command_id) <= 64:
        raise CommandError("command_id must be 1-64 characters")
    try:
        action = CommandAction(str(document.get("action")))
    except ValueError as err:
        raise CommandError(f"action must be one of {', '.join(CommandAction)}") from err
    if action == CommandAction.TEXT:
        text = document.get("text")
        if not isinstance(text, str) or not text or len(text.encode("gbk", "replace")) > 1000:
            raise CommandError("text must be 1-1000 GBK bytes")
        flags = 0b0000_1101 if document.get("emergency") is True else 0b0000_1100
        body = encode_text(TextMessage(text, flags), version)
        return OutgoingCommand(command_id, MsgId.TEXT, body)
    if action == CommandAction.SET_ROUTE:
        corridor_m = _int(document, "corridor_m", 50)
        if not 1 <= corridor_m <= 255:
            raise CommandError("corridor_m must be 1-255 (one byte on the wire)")
        points = _route_points(document.get("route"), corridor_m)
        name = document.get("name", "")
        route = Route(
            route_id=_int(document, "route_id"),
            points=points,
            name=name if isinstance(name, str) else "",
        )
        body = encode_route(route, version)
        if len(body) > 1023:
            raise CommandError(f"route of {len(points)} points is too long for one message")
        return OutgoingCommand(command_id, MsgId.SET_ROUTE, body)
    ids = document.get("route_ids")
    if ids is None:
        route_ids: tuple[int, ...] = (_int(document, "route_id"),)
    elif isinstance(ids, list) and all(isinstance(i, int) and 0 <= i < 2**32 for i in ids):
        route_ids = tuple(ids)
    else:
        raise CommandError("route_ids must be a list of route ids")
    try:
        body = encode_route_deletion(route_ids)
    except ValueError as err:
        raise CommandError(str(err)) from err
    return OutgoingCommand(command_id, MsgId.DELETE_ROUTE, body)


_ACK_RESULTS: dict[int, str] = {
    Result.OK: "ok",
    Result.FAILURE: "error",
    Result.BAD_MESSAGE: "rejected",
    Result.UNSUPPORTED: "unsupported",
}


def command_ack(
    command_id: str, result: int, at: datetime, detail: str | None = None
) -> dict[str, Any]:
    """The `cmd/ack` document for a terminal's answer (0x0001 result) to a command."""
    ack: dict[str, Any] = {
        "ts": int(at.timestamp() * 1000),
        "command_id": command_id,
        "result": _ACK_RESULTS.get(result, "error"),
    }
    if detail is not None:
        ack["detail"] = detail[:500]
    elif result != Result.OK:
        ack["detail"] = f"terminal answered result {result}"
    return ack


def normalize_phone(value: object) -> str | None:
    """A terminal number as digits without leading zeros (registry CSVs read it as a number)."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    if not text.isdigit():
        return None
    return text.lstrip("0") or "0"
