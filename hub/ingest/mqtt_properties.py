"""MQTT 5.0 wire primitives and properties: integers, strings, and the property block.

The building blocks of every packet the ingest connection encodes or decodes (MQTT 5.0
sections 1.5 and 2.2.2): variable byte integers, length-prefixed UTF-8 strings and binary
data, and properties with their data types, decoded into `Properties` in wire order.
Pure: bytes in, values out, and the reverse. Malformed input raises `MalformedPacketError`.
"""

import struct
from dataclasses import dataclass
from enum import IntEnum, StrEnum


class MalformedPacketError(ValueError):
    """Bytes that are not a well-formed MQTT 5.0 packet, or a protocol error in one."""


class DataType(StrEnum):
    """How a property's value is laid out on the wire (MQTT 5.0 section 1.5)."""

    BYTE = "byte"
    TWO_BYTE = "two-byte integer"
    FOUR_BYTE = "four-byte integer"
    VARIABLE = "variable byte integer"
    TEXT = "UTF-8 string"
    BINARY = "binary data"
    TEXT_PAIR = "UTF-8 string pair"


class PropertyId(IntEnum):
    """Property identifiers (MQTT 5.0 section 2.2.2.2)."""

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


PROPERTY_TYPES: dict[PropertyId, DataType] = {
    PropertyId.PAYLOAD_FORMAT_INDICATOR: DataType.BYTE,
    PropertyId.MESSAGE_EXPIRY_INTERVAL: DataType.FOUR_BYTE,
    PropertyId.CONTENT_TYPE: DataType.TEXT,
    PropertyId.RESPONSE_TOPIC: DataType.TEXT,
    PropertyId.CORRELATION_DATA: DataType.BINARY,
    PropertyId.SUBSCRIPTION_IDENTIFIER: DataType.VARIABLE,
    PropertyId.SESSION_EXPIRY_INTERVAL: DataType.FOUR_BYTE,
    PropertyId.ASSIGNED_CLIENT_IDENTIFIER: DataType.TEXT,
    PropertyId.SERVER_KEEP_ALIVE: DataType.TWO_BYTE,
    PropertyId.AUTHENTICATION_METHOD: DataType.TEXT,
    PropertyId.AUTHENTICATION_DATA: DataType.BINARY,
    PropertyId.REQUEST_PROBLEM_INFORMATION: DataType.BYTE,
    PropertyId.WILL_DELAY_INTERVAL: DataType.FOUR_BYTE,
    PropertyId.REQUEST_RESPONSE_INFORMATION: DataType.BYTE,
    PropertyId.RESPONSE_INFORMATION: DataType.TEXT,
    PropertyId.SERVER_REFERENCE: DataType.TEXT,
    PropertyId.REASON_STRING: DataType.TEXT,
    PropertyId.RECEIVE_MAXIMUM: DataType.TWO_BYTE,
    PropertyId.TOPIC_ALIAS_MAXIMUM: DataType.TWO_BYTE,
    PropertyId.TOPIC_ALIAS: DataType.TWO_BYTE,
    PropertyId.MAXIMUM_QOS: DataType.BYTE,
    PropertyId.RETAIN_AVAILABLE: DataType.BYTE,
    PropertyId.USER_PROPERTY: DataType.TEXT_PAIR,
    PropertyId.MAXIMUM_PACKET_SIZE: DataType.FOUR_BYTE,
    PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE: DataType.BYTE,
    PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE: DataType.BYTE,
    PropertyId.SHARED_SUBSCRIPTION_AVAILABLE: DataType.BYTE,
}
# The properties that may appear more than once in one packet (section 3.3.2.3.8, 3.1.2.11.8).
REPEATABLE = frozenset({PropertyId.USER_PROPERTY, PropertyId.SUBSCRIPTION_IDENTIFIER})
# The largest value a variable byte integer holds (four bytes of seven bits).
VARIABLE_INT_MAX = 268_435_455

PropertyValue = int | str | bytes | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Properties:
    """A packet's properties in wire order; repeatable ones appear once per occurrence."""

    items: tuple[tuple[PropertyId, PropertyValue], ...] = ()

    def get(self, key: PropertyId) -> PropertyValue | None:
        """The value of a property that appears at most once, or None."""
        for item_key, value in self.items:
            if item_key == key:
                return value
        return None

    def integer(self, key: PropertyId) -> int | None:
        """An integer property's value, or None when absent."""
        value = self.get(key)
        return value if isinstance(value, int) else None

    def text(self, key: PropertyId) -> str | None:
        """A string property's value, or None when absent."""
        value = self.get(key)
        return value if isinstance(value, str) else None

    def user_properties(self) -> list[tuple[str, str]]:
        """The user properties, in order."""
        return [v for k, v in self.items if k == PropertyId.USER_PROPERTY and isinstance(v, tuple)]

    def without(self, key: PropertyId) -> "Properties":
        """The same properties but one kind."""
        return Properties(tuple(item for item in self.items if item[0] != key))


EMPTY_PROPERTIES = Properties()

U16 = struct.Struct(">H")
U32 = struct.Struct(">I")


# -- primitives ---------------------------------------------------------------------------


def encode_variable_int(value: int) -> bytes:
    """A variable byte integer (section 1.5.5): seven bits a byte, low bits first."""
    if not 0 <= value <= VARIABLE_INT_MAX:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_variable_int(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The variable byte integer at `pos` (not past `end`) and the position after it."""
    value = shift = 0
    for index in range(pos, min(pos + 4, end)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    if end - pos >= 4:
        raise MalformedPacketError("variable byte integer longer than four bytes")
    raise MalformedPacketError("variable byte integer cut short")


def encode_text(value: str) -> bytes:
    """A UTF-8 string with its two-byte length in front (section 1.5.4)."""
    raw = value.encode()
    if len(raw) > 0xFFFF:
        raise ValueError("UTF-8 string longer than 65,535 bytes")
    return U16.pack(len(raw)) + raw


def encode_binary(value: bytes) -> bytes:
    """Binary data with its two-byte length in front (section 1.5.6)."""
    if len(value) > 0xFFFF:
        raise ValueError("binary data longer than 65,535 bytes")
    return U16.pack(len(value)) + value


def read_u16(data: bytes, pos: int, end: int) -> int:
    """The two-byte big-endian integer at `pos`, not past `end`."""
    if pos + 2 > end:
        raise MalformedPacketError("two-byte integer cut short")
    return (data[pos] << 8) | data[pos + 1]


def read_binary(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """The length-prefixed binary data at `pos` and the position after it."""
    size = read_u16(data, pos, end)
    stop = pos + 2 + size
    if stop > end:
        raise MalformedPacketError("string or binary data runs past its packet")
    return data[pos + 2 : stop], stop


def read_text(data: bytes, pos: int, end: int) -> tuple[str, int]:
    """The length-prefixed UTF-8 string at `pos` and the position after it."""
    raw, pos = read_binary(data, pos, end)
    try:
        return raw.decode(), pos
    except UnicodeDecodeError as err:
        raise MalformedPacketError("string is not well-formed UTF-8") from err


# -- properties ---------------------------------------------------------------------------


def _encode_property(key: PropertyId, value: PropertyValue) -> bytes:
    kind = PROPERTY_TYPES[key]
    head = encode_variable_int(key)
    if kind is DataType.TEXT_PAIR:
        if not isinstance(value, tuple):
            raise TypeError(f"{key.name} takes a pair of strings")
        return head + encode_text(value[0]) + encode_text(value[1])
    if kind is DataType.TEXT:
        if not isinstance(value, str):
            raise TypeError(f"{key.name} takes a string")
        return head + encode_text(value)
    if kind is DataType.BINARY:
        if not isinstance(value, bytes):
            raise TypeError(f"{key.name} takes bytes")
        return head + encode_binary(value)
    if not isinstance(value, int):
        raise TypeError(f"{key.name} takes an integer")
    if kind is DataType.BYTE:
        return head + bytes((value,))
    if kind is DataType.TWO_BYTE:
        return head + U16.pack(value)
    if kind is DataType.FOUR_BYTE:
        return head + U32.pack(value)
    return head + encode_variable_int(value)


def encode_properties(properties: Properties) -> bytes:
    """Properties with their length in front (section 2.2.2)."""
    body = b"".join(_encode_property(key, value) for key, value in properties.items)
    return encode_variable_int(len(body)) + body


def decode_properties(data: bytes, pos: int, end: int) -> tuple[Properties, int]:
    """The properties (length first) at `pos`, not past `end`, and the position after them."""
    size, pos = decode_variable_int(data, pos, end)
    stop = pos + size
    if stop > end:
        raise MalformedPacketError("properties run past their packet")
    if size == 0:
        return EMPTY_PROPERTIES, pos
    items: list[tuple[PropertyId, PropertyValue]] = []
    seen: set[PropertyId] = set()
    while pos < stop:
        code, pos = decode_variable_int(data, pos, stop)
        try:
            key = PropertyId(code)
        except ValueError as err:
            raise MalformedPacketError(f"unknown property identifier 0x{code:02x}") from err
        if key in seen and key not in REPEATABLE:
            raise MalformedPacketError(f"{key.name} appears twice")
        seen.add(key)
        kind = PROPERTY_TYPES[key]
        value: PropertyValue
        if kind is DataType.BYTE:
            if pos >= stop:
                raise MalformedPacketError("byte property cut short")
            value = data[pos]
            pos += 1
        elif kind is DataType.TWO_BYTE:
            value = read_u16(data, pos, stop)
            pos += 2
        elif kind is DataType.FOUR_BYTE:
            if pos + 4 > stop:
                raise MalformedPacketError("four-byte integer cut short")
            value = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
        elif kind is DataType.VARIABLE:
            value, pos = decode_variable_int(data, pos, stop)
        elif kind is DataType.TEXT:
            value, pos = read_text(data, pos, stop)
        elif kind is DataType.BINARY:
            value, pos = read_binary(data, pos, stop)
        else:
            name, pos = read_text(data, pos, stop)
            text, pos = read_text(data, pos, stop)
            value = (name, text)
        items.append((key, value))
    return Properties(tuple(items)), stop
