"""JT/T 808 message bodies the gateway speaks: decode what terminals send, encode replies.

Pure. Times on the wire are BCD `YYMMDDhhmmss` in GMT+8 and become UTC-aware datetimes;
strings are GBK.
"""

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum

from hub.ingest.jt808.frame import FrameError, Version, decode_bcd

GMT8 = timezone(timedelta(hours=8))
LOCATION_FIXED_BYTES = 28


class MsgId(IntEnum):
    """Message ids of the standard that the gateway reads or writes."""

    TERMINAL_RESPONSE = 0x0001
    HEARTBEAT = 0x0002
    DEREGISTER = 0x0003
    REGISTER = 0x0100
    AUTHENTICATE = 0x0102
    LOCATION = 0x0200
    LOCATION_BATCH = 0x0704
    PLATFORM_RESPONSE = 0x8001
    RESEND_REQUEST = 0x8003
    REGISTER_RESPONSE = 0x8100
    TEXT = 0x8300
    SET_ROUTE = 0x8606
    DELETE_ROUTE = 0x8607


class Result(IntEnum):
    """General response results (0x0001 and 0x8001)."""

    OK = 0
    FAILURE = 1
    BAD_MESSAGE = 2
    UNSUPPORTED = 3
    ALARM_CONFIRMED = 4


class RegisterResult(IntEnum):
    """0x8100 results."""

    OK = 0
    VEHICLE_TAKEN = 1
    NO_SUCH_VEHICLE = 2
    TERMINAL_TAKEN = 3
    NO_SUCH_TERMINAL = 4


class Item(IntEnum):
    """Additional information items of a location report the gateway names."""

    MILEAGE = 0x01
    FUEL = 0x02
    RECORDER_SPEED = 0x03
    SIGNAL = 0x30
    SATELLITES = 0x31


class Status(IntEnum):
    """Status bits of a location report."""

    ACC = 0
    FIXED = 1
    SOUTH = 2
    WEST = 3


def _need(body: bytes, size: int, what: str) -> None:
    if len(body) < size:
        raise FrameError("bad_body", f"{what}: {len(body)} bytes, needs {size}")


def decode_gbk(data: bytes) -> str:
    """GBK text, cut at the first NUL (fixed-width fields are NUL- or space-padded)."""
    return data.split(b"\x00", 1)[0].decode("gbk", errors="replace").strip()


def encode_gbk(text: str) -> bytes:
    """Text as GBK; characters GBK lacks become '?'."""
    return text.encode("gbk", errors="replace")


# Terminals report the current second, so thousands of positions share a time: decode each
# distinct one once (a datetime is immutable).
@functools.lru_cache(maxsize=4096)
def decode_time(data: bytes) -> datetime:
    """BCD YYMMDDhhmmss in GMT+8 as UTC."""
    digits = decode_bcd(data)
    try:
        local = datetime(
            2000 + int(digits[0:2]),
            int(digits[2:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            tzinfo=GMT8,
        )
    except ValueError as err:
        raise FrameError("bad_time", f"{digits} is not a time") from err
    return local.astimezone(UTC)


def encode_time(when: datetime) -> bytes:
    """An aware datetime as BCD YYMMDDhhmmss in GMT+8."""
    return bytes.fromhex(when.astimezone(GMT8).strftime("%y%m%d%H%M%S"))


@dataclass(frozen=True, slots=True)
class Location:
    """A position report (the body of 0x0200, and each item of 0x0704)."""

    alarm_flags: int
    status: int
    lat_e6: int
    lon_e6: int
    altitude_m: int
    speed_dkmh: int
    direction_deg: int
    observed_at: datetime
    items: dict[int, bytes] = field(default_factory=dict)

    def status_bit(self, bit: int) -> bool:
        """Whether one status bit is set."""
        return bool(self.status >> bit & 1)

    @property
    def lat(self) -> float:
        """Signed WGS-84 latitude in degrees (south is negative)."""
        value = self.lat_e6 / 1e6
        return -value if self.status_bit(Status.SOUTH) else value

    @property
    def lon(self) -> float:
        """Signed WGS-84 longitude in degrees (west is negative)."""
        value = self.lon_e6 / 1e6
        return -value if self.status_bit(Status.WEST) else value

    def item_int(self, item_id: int) -> int | None:
        """An additional item read as an unsigned big-endian integer, if present."""
        value = self.items.get(item_id)
        return None if value is None or not value else int.from_bytes(value, "big")


def decode_location(body: bytes) -> Location:
    """The 0x0200 body: fixed part, then additional items (id, length, value)."""
    _need(body, LOCATION_FIXED_BYTES, "location")
    items: dict[int, bytes] = {}
    offset = LOCATION_FIXED_BYTES
    while offset < len(body):
        if offset + 2 > len(body):
            raise FrameError("bad_body", "additional item header cut short")
        item_id, size = body[offset], body[offset + 1]
        value = body[offset + 2 : offset + 2 + size]
        if len(value) != size:
            raise FrameError("bad_body", f"additional item {item_id:#04x} cut short")
        items[item_id] = value
        offset += 2 + size
    return Location(
        alarm_flags=int.from_bytes(body[0:4], "big"),
        status=int.from_bytes(body[4:8], "big"),
        lat_e6=int.from_bytes(body[8:12], "big"),
        lon_e6=int.from_bytes(body[12:16], "big"),
        altitude_m=int.from_bytes(body[16:18], "big", signed=True),
        speed_dkmh=int.from_bytes(body[18:20], "big"),
        direction_deg=int.from_bytes(body[20:22], "big"),
        observed_at=decode_time(body[22:28]),
        items=items,
    )


def encode_location(loc: Location) -> bytes:
    """A 0x0200 body."""
    out = bytearray()
    out += loc.alarm_flags.to_bytes(4, "big") + loc.status.to_bytes(4, "big")
    out += loc.lat_e6.to_bytes(4, "big") + loc.lon_e6.to_bytes(4, "big")
    out += loc.altitude_m.to_bytes(2, "big", signed=True)
    out += loc.speed_dkmh.to_bytes(2, "big") + loc.direction_deg.to_bytes(2, "big")
    out += encode_time(loc.observed_at)
    for item_id, value in loc.items.items():
        out += bytes((item_id, len(value))) + value
    return bytes(out)


@dataclass(frozen=True, slots=True)
class LocationBatch:
    """0x0704: several positions; `blind_area` marks data the terminal kept while offline."""

    blind_area: bool
    locations: tuple[Location, ...]


def decode_location_batch(body: bytes) -> LocationBatch:
    """The 0x0704 body: count, type, then length-prefixed location bodies."""
    _need(body, 3, "location batch")
    count = int.from_bytes(body[0:2], "big")
    kind = body[2]
    offset = 3
    locations = []
    for _ in range(count):
        _need(body[offset:], 2, "batch item length")
        size = int.from_bytes(body[offset : offset + 2], "big")
        item = body[offset + 2 : offset + 2 + size]
        if len(item) != size:
            raise FrameError("bad_body", "batch item cut short")
        locations.append(decode_location(item))
        offset += 2 + size
    return LocationBatch(blind_area=kind == 1, locations=tuple(locations))


def encode_location_batch(batch: LocationBatch) -> bytes:
    """A 0x0704 body."""
    out = bytearray(len(batch.locations).to_bytes(2, "big"))
    out.append(1 if batch.blind_area else 0)
    for loc in batch.locations:
        item = encode_location(loc)
        out += len(item).to_bytes(2, "big") + item
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Registration:
    """0x0100: who the terminal says it is and which vehicle it sits in."""

    province: int
    city: int
    manufacturer: str
    model: str
    terminal_id: str
    plate_colour: int
    plate: str


# (manufacturer, model, terminal id) field widths per edition.
_REGISTER_WIDTHS = {"2011": (5, 8, 7), "2013": (5, 20, 7), "2019": (11, 30, 30)}


def _register_edition(version: Version, body_length: int) -> str:
    if version == Version.V2019:
        return "2019"
    # 2011 and 2013 share a header; 2013's body is 37 bytes before the plate, 2011's 25.
    return "2013" if body_length >= 37 else "2011"


def decode_registration(body: bytes, version: Version) -> Registration:
    """The 0x0100 body of any edition."""
    manufacturer_w, model_w, terminal_w = _REGISTER_WIDTHS[_register_edition(version, len(body))]
    fixed = 4 + manufacturer_w + model_w + terminal_w + 1
    _need(body, fixed, "registration")
    a = 4
    b = a + manufacturer_w
    c = b + model_w
    d = c + terminal_w
    return Registration(
        province=int.from_bytes(body[0:2], "big"),
        city=int.from_bytes(body[2:4], "big"),
        manufacturer=decode_gbk(body[a:b]),
        model=decode_gbk(body[b:c]),
        terminal_id=decode_gbk(body[c:d]),
        plate_colour=body[d],
        plate=decode_gbk(body[d + 1 :]),
    )


def _fixed(text: str, width: int) -> bytes:
    return encode_gbk(text)[:width].ljust(width, b"\x00")


def encode_registration(reg: Registration, edition: str) -> bytes:
    """A 0x0100 body for an edition: "2011", "2013" or "2019"."""
    manufacturer_w, model_w, terminal_w = _REGISTER_WIDTHS[edition]
    return (
        reg.province.to_bytes(2, "big")
        + reg.city.to_bytes(2, "big")
        + _fixed(reg.manufacturer, manufacturer_w)
        + _fixed(reg.model, model_w)
        + _fixed(reg.terminal_id, terminal_w)
        + bytes((reg.plate_colour,))
        + encode_gbk(reg.plate)
    )


@dataclass(frozen=True, slots=True)
class Authentication:
    """0x0102: the auth code, and in 2019 the IMEI and software version."""

    auth_code: str
    imei: str = ""
    software_version: str = ""


def decode_authentication(body: bytes, version: Version) -> Authentication:
    """The 0x0102 body: the whole body is the code before 2019; length-prefixed in 2019."""
    if version != Version.V2019:
        return Authentication(decode_gbk(body))
    _need(body, 1, "authentication")
    size = body[0]
    _need(body, 1 + size + 15 + 20, "authentication 2019")
    return Authentication(
        auth_code=decode_gbk(body[1 : 1 + size]),
        imei=decode_gbk(body[1 + size : 16 + size]),
        software_version=decode_gbk(body[16 + size : 36 + size]),
    )


def encode_authentication(auth: Authentication, version: Version) -> bytes:
    """A 0x0102 body."""
    code = encode_gbk(auth.auth_code)
    if version != Version.V2019:
        return code
    return bytes((len(code),)) + code + _fixed(auth.imei, 15) + _fixed(auth.software_version, 20)


@dataclass(frozen=True, slots=True)
class GeneralResponse:
    """0x0001 (terminal) and 0x8001 (platform): which message is answered, and how."""

    reply_serial: int
    reply_id: int
    result: int


def decode_general_response(body: bytes) -> GeneralResponse:
    """A 0x0001 or 0x8001 body."""
    _need(body, 5, "general response")
    return GeneralResponse(
        int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big"), body[4]
    )


def encode_general_response(resp: GeneralResponse) -> bytes:
    """A 0x0001 or 0x8001 body."""
    return (
        resp.reply_serial.to_bytes(2, "big")
        + resp.reply_id.to_bytes(2, "big")
        + bytes((resp.result,))
    )


@dataclass(frozen=True, slots=True)
class RegisterResponse:
    """0x8100: the registration's serial, the result and (on success) the auth code."""

    reply_serial: int
    result: int
    auth_code: str = ""


def encode_register_response(resp: RegisterResponse) -> bytes:
    """A 0x8100 body; the auth code only follows a successful result."""
    out = resp.reply_serial.to_bytes(2, "big") + bytes((resp.result,))
    return out + encode_gbk(resp.auth_code) if resp.result == RegisterResult.OK else out


def decode_register_response(body: bytes) -> RegisterResponse:
    """A 0x8100 body (what a terminal reads)."""
    _need(body, 3, "register response")
    return RegisterResponse(int.from_bytes(body[0:2], "big"), body[2], decode_gbk(body[3:]))


# Text flags of 0x8300: bit 0 emergency, 2 terminal display, 3 TTS read-out.
TEXT_DISPLAY_AND_SPEAK = 0b0000_1100


@dataclass(frozen=True, slots=True)
class TextMessage:
    """0x8300: text to the driver; 2019 adds a text type byte (1 notice, 2 service)."""

    text: str
    flags: int = TEXT_DISPLAY_AND_SPEAK
    text_type: int = 1


def encode_text(msg: TextMessage, version: Version) -> bytes:
    """A 0x8300 body for the terminal's edition."""
    head = bytes((msg.flags,)) if version != Version.V2019 else bytes((msg.flags, msg.text_type))
    return head + encode_gbk(msg.text)


def decode_text(body: bytes, version: Version) -> TextMessage:
    """A 0x8300 body (what a terminal reads)."""
    if version == Version.V2019:
        _need(body, 2, "text")
        return TextMessage(decode_gbk(body[2:]), body[0], body[1])
    _need(body, 1, "text")
    return TextMessage(decode_gbk(body[1:]), body[0])


@dataclass(frozen=True, slots=True)
class RoutePoint:
    """One turning point of a route and the section that leaves it."""

    point_id: int
    section_id: int
    lat_e6: int
    lon_e6: int
    width_m: int
    props: int = 0
    long_drive_s: int = 0
    short_drive_s: int = 0
    max_speed_kmh: int = 0
    overspeed_s: int = 0
    night_max_speed_kmh: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    """0x8606: a route the terminal watches (props bit 0: only between start and end)."""

    route_id: int
    points: tuple[RoutePoint, ...]
    props: int = 0
    start: datetime | None = None
    end: datetime | None = None
    name: str = ""


def encode_route(route: Route, version: Version) -> bytes:
    """A 0x8606 body; 2019 adds a night speed per section and the route's name."""
    out = bytearray(route.route_id.to_bytes(4, "big") + route.props.to_bytes(2, "big"))
    if route.props & 1:
        if route.start is None or route.end is None:
            raise ValueError("a time-bound route needs start and end")
        out += encode_time(route.start) + encode_time(route.end)
    out += len(route.points).to_bytes(2, "big")
    for p in route.points:
        out += p.point_id.to_bytes(4, "big") + p.section_id.to_bytes(4, "big")
        out += p.lat_e6.to_bytes(4, "big") + p.lon_e6.to_bytes(4, "big")
        out += bytes((min(p.width_m, 255), p.props))
        if p.props & 1:
            out += p.long_drive_s.to_bytes(2, "big") + p.short_drive_s.to_bytes(2, "big")
        if p.props & 2:
            out += p.max_speed_kmh.to_bytes(2, "big") + bytes((p.overspeed_s,))
            if version == Version.V2019:
                out += p.night_max_speed_kmh.to_bytes(2, "big")
    if version == Version.V2019:
        name = encode_gbk(route.name)
        out += len(name).to_bytes(2, "big") + name
    return bytes(out)


def decode_route(body: bytes, version: Version) -> Route:
    """A 0x8606 body (what a terminal reads)."""
    _need(body, 8, "route")
    route_id = int.from_bytes(body[0:4], "big")
    props = int.from_bytes(body[4:6], "big")
    offset = 6
    start = end = None
    if props & 1:
        start, end = decode_time(body[6:12]), decode_time(body[12:18])
        offset = 18
    count = int.from_bytes(body[offset : offset + 2], "big")
    offset += 2
    points = []
    for _ in range(count):
        _need(body[offset:], 18, "route point")
        chunk = body[offset : offset + 18]
        p_props = chunk[17]
        offset += 18
        long_s = short_s = speed = over = night = 0
        if p_props & 1:
            long_s = int.from_bytes(body[offset : offset + 2], "big")
            short_s = int.from_bytes(body[offset + 2 : offset + 4], "big")
            offset += 4
        if p_props & 2:
            speed = int.from_bytes(body[offset : offset + 2], "big")
            over = body[offset + 2]
            offset += 3
            if version == Version.V2019:
                night = int.from_bytes(body[offset : offset + 2], "big")
                offset += 2
        points.append(
            RoutePoint(
                point_id=int.from_bytes(chunk[0:4], "big"),
                section_id=int.from_bytes(chunk[4:8], "big"),
                lat_e6=int.from_bytes(chunk[8:12], "big"),
                lon_e6=int.from_bytes(chunk[12:16], "big"),
                width_m=chunk[16],
                props=p_props,
                long_drive_s=long_s,
                short_drive_s=short_s,
                max_speed_kmh=speed,
                overspeed_s=over,
                night_max_speed_kmh=night,
            )
        )
    name = ""
    if version == Version.V2019 and offset + 2 <= len(body):
        size = int.from_bytes(body[offset : offset + 2], "big")
        name = decode_gbk(body[offset + 2 : offset + 2 + size])
    return Route(route_id, tuple(points), props, start, end, name)


def encode_route_deletion(route_ids: tuple[int, ...]) -> bytes:
    """A 0x8607 body: count, then route ids (count 0 deletes every route)."""
    if len(route_ids) > 125:
        raise ValueError("at most 125 routes per deletion")
    return bytes((len(route_ids),)) + b"".join(r.to_bytes(4, "big") for r in route_ids)


def decode_route_deletion(body: bytes) -> tuple[int, ...]:
    """A 0x8607 body (what a terminal reads)."""
    _need(body, 1, "route deletion")
    count = body[0]
    _need(body, 1 + 4 * count, "route deletion")
    return tuple(int.from_bytes(body[1 + 4 * i : 5 + 4 * i], "big") for i in range(count))


@dataclass(frozen=True, slots=True)
class ResendRequest:
    """0x8003: the platform asks for the missing packages of a subpackaged message."""

    first_serial: int  # the serial of the message's first package
    package_indexes: tuple[int, ...]


def encode_resend_request(req: ResendRequest, version: Version) -> bytes:
    """The 0x8003 body: first serial, the count (BYTE; WORD in 2019), one WORD per index."""
    count = len(req.package_indexes)
    size = 2 if version == Version.V2019 else 1
    out = req.first_serial.to_bytes(2, "big") + count.to_bytes(size, "big")
    return out + b"".join(i.to_bytes(2, "big") for i in req.package_indexes)


def decode_resend_request(body: bytes, version: Version) -> ResendRequest:
    """Read a 0x8003 body."""
    size = 2 if version == Version.V2019 else 1
    _need(body, 2 + size, "resend request")
    count = int.from_bytes(body[2 : 2 + size], "big")
    _need(body, 2 + size + 2 * count, "resend request")
    start = 2 + size
    indexes = tuple(
        int.from_bytes(body[start + 2 * i : start + 2 * i + 2], "big") for i in range(count)
    )
    return ResendRequest(int.from_bytes(body[0:2], "big"), indexes)
