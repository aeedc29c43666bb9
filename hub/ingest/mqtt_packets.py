"""MQTT 5.0 packets of the hub's ingest connection: pure encoding and incremental decoding.

Covers what a subscribing client sends and receives: CONNECT/CONNACK, SUBSCRIBE/SUBACK,
UNSUBSCRIBE/UNSUBACK, PUBLISH (QoS 0 and 1; QoS 2 is decoded but nothing here answers
it), PUBACK, PINGREQ/PINGRESP and DISCONNECT, with their properties (MQTT 5.0 section
2.2.2) decoded, topic aliases resolved per connection. No I/O and no clock: bytes in,
packets out, and the reverse. Malformed input raises `MalformedPacketError`.
"""

import struct
from collections.abc import Iterable
from enum import IntEnum
from typing import NamedTuple

from hub.ingest.mqtt_properties import (
    EMPTY_PROPERTIES,
    U16,
    MalformedPacketError,
    Properties,
    PropertyId,
    decode_properties,
    decode_variable_int,
    encode_binary,
    encode_properties,
    encode_text,
    encode_variable_int,
    read_binary,
    read_text,
    read_u16,
)

__all__ = [
    "ConnAck",
    "Connect",
    "Disconnect",
    "Packet",
    "PacketReader",
    "PacketType",
    "PingReq",
    "PingResp",
    "PubAck",
    "Publish",
    "SubAck",
    "Subscribe",
    "Subscription",
    "UnsubAck",
    "Unsubscribe",
    "Will",
    "encode_packet",
    "encode_pubacks",
]


class PacketType(IntEnum):
    """Control packet types (MQTT 5.0 section 2.1.2), the high four bits of byte one."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class Will(NamedTuple):
    """The will message a CONNECT may carry."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = EMPTY_PROPERTIES


class Connect(NamedTuple):
    """CONNECT (section 3.1): the client opens a session."""

    client_id: str
    keepalive_s: int = 60
    clean_start: bool = True
    properties: Properties = EMPTY_PROPERTIES
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None


class ConnAck(NamedTuple):
    """CONNACK (section 3.2): the broker's answer to CONNECT; reason code 0 is success."""

    session_present: bool = False
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


_new_tuple = tuple.__new__


class Publish(NamedTuple):
    """PUBLISH (section 3.3), its topic resolved when it came by topic alias."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    packet_id: int = 0
    dup: bool = False
    properties: Properties = EMPTY_PROPERTIES


class PubAck(NamedTuple):
    """PUBACK (section 3.4): a QoS 1 PUBLISH is acknowledged."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


class Subscription(NamedTuple):
    """One topic filter of a SUBSCRIBE with its options (section 3.8.3.1)."""

    topic_filter: str
    qos: int = 1
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


class Subscribe(NamedTuple):
    """SUBSCRIBE (section 3.8)."""

    packet_id: int
    subscriptions: tuple[Subscription, ...]
    properties: Properties = EMPTY_PROPERTIES


class SubAck(NamedTuple):
    """SUBACK (section 3.9): one reason code per topic filter; 0-2 is the granted QoS."""

    packet_id: int
    reason_codes: tuple[int, ...]
    properties: Properties = EMPTY_PROPERTIES


class Unsubscribe(NamedTuple):
    """UNSUBSCRIBE (section 3.10)."""

    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = EMPTY_PROPERTIES


class UnsubAck(NamedTuple):
    """UNSUBACK (section 3.11)."""

    packet_id: int
    reason_codes: tuple[int, ...]
    properties: Properties = EMPTY_PROPERTIES


class PingReq(NamedTuple):
    """PINGREQ (section 3.12): the client is alive and asks whether the broker is."""


class PingResp(NamedTuple):
    """PINGRESP (section 3.13)."""


class Disconnect(NamedTuple):
    """DISCONNECT (section 3.14), from either side, with its reason."""

    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)

# Fixed-header flags: SUBSCRIBE, UNSUBSCRIBE (and PUBREL) carry 0b0010, the others 0.
_FLAGS = {PacketType.SUBSCRIBE: 2, PacketType.UNSUBSCRIBE: 2}
_PUBACK_HEAD = (PacketType.PUBACK << 28) | (2 << 16)


# -- encoding -----------------------------------------------------------------------------


def _frame(kind: PacketType, body: bytes, flags: int = -1) -> bytes:
    flags = _FLAGS.get(kind, 0) if flags < 0 else flags
    return bytes(((kind << 4) | flags,)) + encode_variable_int(len(body)) + body


def _encode_connect(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_start else 0
    will = packet.will
    tail = encode_text(packet.client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        tail += (
            encode_properties(will.properties)
            + encode_text(will.topic)
            + encode_binary(will.payload)
        )
    if packet.username is not None:
        flags |= 0x80
        tail += encode_text(packet.username)
    if packet.password is not None:
        flags |= 0x40
        tail += encode_binary(packet.password)
    head = encode_text("MQTT") + bytes((5, flags)) + U16.pack(packet.keepalive_s)
    return _frame(PacketType.CONNECT, head + encode_properties(packet.properties) + tail)


def encode_packet(packet: Packet) -> bytes:
    """The bytes of one packet."""
    match packet:
        case Connect():
            return _encode_connect(packet)
        case ConnAck(session_present, reason_code, properties):
            body = bytes((int(session_present), reason_code)) + encode_properties(properties)
            return _frame(PacketType.CONNACK, body)
        case Publish(topic, payload, qos, retain, packet_id, dup, properties):
            if qos not in (0, 1, 2):
                raise ValueError(f"QoS {qos}")
            flags = (0x08 if dup else 0) | (qos << 1) | int(retain)
            head = encode_text(topic) + (U16.pack(packet_id) if qos else b"")
            return _frame(PacketType.PUBLISH, head + encode_properties(properties) + payload, flags)
        case PubAck(packet_id, reason_code, properties):
            body = U16.pack(packet_id)
            if reason_code or properties.items:
                body += bytes((reason_code,))
                if properties.items:
                    body += encode_properties(properties)
            return _frame(PacketType.PUBACK, body)
        case Subscribe(packet_id, subscriptions, properties):
            body = U16.pack(packet_id) + encode_properties(properties)
            for sub in subscriptions:
                options = (
                    sub.qos
                    | (0x04 if sub.no_local else 0)
                    | (0x08 if sub.retain_as_published else 0)
                    | (sub.retain_handling << 4)
                )
                body += encode_text(sub.topic_filter) + bytes((options,))
            return _frame(PacketType.SUBSCRIBE, body)
        case SubAck(packet_id, reason_codes, properties):
            body = U16.pack(packet_id) + encode_properties(properties) + bytes(reason_codes)
            return _frame(PacketType.SUBACK, body)
        case Unsubscribe(packet_id, topic_filters, properties):
            body = U16.pack(packet_id) + encode_properties(properties)
            body += b"".join(encode_text(topic_filter) for topic_filter in topic_filters)
            return _frame(PacketType.UNSUBSCRIBE, body)
        case UnsubAck(packet_id, reason_codes, properties):
            body = U16.pack(packet_id) + encode_properties(properties) + bytes(reason_codes)
            return _frame(PacketType.UNSUBACK, body)
        case PingReq():
            return b"\xc0\x00"
        case PingResp():
            return b"\xd0\x00"
        case Disconnect(reason_code, properties):
            if not reason_code and not properties.items:
                return b"\xe0\x00"
            body = bytes((reason_code,))
            if properties.items:
                body += encode_properties(properties)
            return _frame(PacketType.DISCONNECT, body)
    raise TypeError(f"not a packet: {packet!r}")


def encode_pubacks(packet_ids: Iterable[int]) -> bytes:
    """Successful PUBACKs of many packet ids as one run of bytes, for one write.

    Four bytes each: type, remaining length 2, packet id; MQTT 5.0 section 3.4.2.1 lets
    the reason code be left out when it is 0 (success) and there are no properties.
    """
    ids = [_PUBACK_HEAD | packet_id for packet_id in packet_ids]
    return struct.pack(f">{len(ids)}I", *ids)


# -- decoding -----------------------------------------------------------------------------


def _reason_codes(data: bytes, pos: int, end: int) -> tuple[int, ...]:
    if pos >= end:
        raise MalformedPacketError("acknowledgement without reason codes")
    return tuple(data[pos:end])


def _decode_connect(data: bytes, end: int) -> Connect:
    name, pos = read_text(data, 0, end)
    if name != "MQTT" or pos + 4 > end:
        raise MalformedPacketError("not an MQTT CONNECT")
    if data[pos] != 5:
        raise MalformedPacketError(f"protocol level {data[pos]}, not 5")
    flags = data[pos + 1]
    if flags & 0x01:
        raise MalformedPacketError("reserved CONNECT flag set")
    keepalive_s = read_u16(data, pos + 2, end)
    properties, pos = decode_properties(data, pos + 4, end)
    client_id, pos = read_text(data, pos, end)
    will = None
    if flags & 0x04:
        will_properties, pos = decode_properties(data, pos, end)
        topic, pos = read_text(data, pos, end)
        payload, pos = read_binary(data, pos, end)
        will = Will(topic, payload, (flags >> 3) & 3, bool(flags & 0x20), will_properties)
    username = password = None
    if flags & 0x80:
        username, pos = read_text(data, pos, end)
    if flags & 0x40:
        password, pos = read_binary(data, pos, end)
    if pos != end:
        raise MalformedPacketError("bytes left after CONNECT's payload")
    return Connect(client_id, keepalive_s, bool(flags & 0x02), properties, username, password, will)


def _decode_subscribe(data: bytes, end: int) -> Subscribe:
    packet_id = read_u16(data, 0, end)
    properties, pos = decode_properties(data, 2, end)
    subscriptions: list[Subscription] = []
    while pos < end:
        topic_filter, pos = read_text(data, pos, end)
        if pos >= end:
            raise MalformedPacketError("subscription options missing")
        options = data[pos]
        pos += 1
        if options & 0xC0 or options & 0x03 == 3 or (options >> 4) & 3 == 3:
            raise MalformedPacketError(f"bad subscription options 0x{options:02x}")
        subscriptions.append(
            Subscription(
                topic_filter, options & 3, bool(options & 4), bool(options & 8), (options >> 4) & 3
            )
        )
    if not subscriptions:
        raise MalformedPacketError("SUBSCRIBE without topic filters")
    return Subscribe(packet_id, tuple(subscriptions), properties)


def _decode_unsubscribe(data: bytes, end: int) -> Unsubscribe:
    packet_id = read_u16(data, 0, end)
    properties, pos = decode_properties(data, 2, end)
    filters: list[str] = []
    while pos < end:
        topic_filter, pos = read_text(data, pos, end)
        filters.append(topic_filter)
    if not filters:
        raise MalformedPacketError("UNSUBSCRIBE without topic filters")
    return Unsubscribe(packet_id, tuple(filters), properties)


def decode_body(kind: int, flags: int, body: bytes) -> Packet:
    """A packet other than PUBLISH from its type, flags and the bytes after its length."""
    end = len(body)
    expected = 2 if kind in (PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE) else 0
    if flags != expected:
        raise MalformedPacketError(f"packet type {kind} with flags 0x{flags:x}")
    if kind == PacketType.PUBACK:
        packet_id = read_u16(body, 0, end)
        if end == 2:
            return PubAck(packet_id)
        if end == 3:
            return PubAck(packet_id, body[2])
        properties, pos = decode_properties(body, 3, end)
        return PubAck(packet_id, body[2], properties)
    if kind in (PacketType.PINGREQ, PacketType.PINGRESP):
        if end:
            raise MalformedPacketError("PINGREQ/PINGRESP with a body")
        return PingReq() if kind == PacketType.PINGREQ else PingResp()
    if kind == PacketType.CONNACK:
        if end < 2 or body[0] & 0xFE:
            raise MalformedPacketError("bad CONNACK")
        properties, pos = decode_properties(body, 2, end)
        return ConnAck(bool(body[0]), body[1], properties)
    if kind in (PacketType.SUBACK, PacketType.UNSUBACK):
        packet_id = read_u16(body, 0, end)
        properties, pos = decode_properties(body, 2, end)
        codes = _reason_codes(body, pos, end)
        if kind == PacketType.SUBACK:
            return SubAck(packet_id, codes, properties)
        return UnsubAck(packet_id, codes, properties)
    if kind == PacketType.DISCONNECT:
        if not end:
            return Disconnect()
        if end == 1:
            return Disconnect(body[0])
        properties, pos = decode_properties(body, 1, end)
        return Disconnect(body[0], properties)
    if kind == PacketType.CONNECT:
        return _decode_connect(body, end)
    if kind == PacketType.SUBSCRIBE:
        return _decode_subscribe(body, end)
    if kind == PacketType.UNSUBSCRIBE:
        return _decode_unsubscribe(body, end)
    raise MalformedPacketError(f"packet type {kind} is not handled on this connection")


def _remaining_length(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """A fixed header's remaining length and where the body starts; None if cut short."""
    try:
        return decode_variable_int(data, pos, end)
    except MalformedPacketError:
        if end - pos < 4:
            return None  # the rest of the length is in the next read
        raise


class PacketReader:
    """Turns a connection's byte stream into packets; a read may end mid-packet.

    Holds the connection's inbound topic aliases (section 3.3.2.3.4): a PUBLISH that sets
    an alias maps it to its topic, a later one with an empty topic and that alias is given
    the topic. Use one reader per connection: aliases do not outlive it.
    """

    def __init__(self, topic_alias_maximum: int = 0) -> None:
        self._topic_alias_maximum = topic_alias_maximum
        self._aliases: dict[int, str] = {}
        self._chunks: list[bytes] = []
        self._held = 0  # bytes in _chunks
        self._needed = 0  # bytes the packet at the front of _chunks needs, when known

    def feed(self, data: bytes) -> list[Packet]:
        """The packets completed by `data`; the bytes of an unfinished one are kept."""
        chunks = self._chunks
        if chunks:
            chunks.append(data)
            self._held += len(data)
            if self._held < self._needed:
                return []  # a big packet still arriving: join its pieces once, at the end
            data = b"".join(chunks)
            chunks.clear()
        self._needed = 0
        packets: list[Packet] = []
        append = packets.append
        end = len(data)
        pos = 0
        while pos < end:
            if pos + 1 >= end:
                break
            header = data[pos]
            # The remaining length: one byte up to 127, two up to 16,383 (most telemetry).
            length = data[pos + 1]
            body = pos + 2
            if length & 0x80:
                if body < end and not data[body] & 0x80:
                    length = (length & 0x7F) | (data[body] << 7)
                    body += 1
                else:
                    found = _remaining_length(data, pos + 1, end)
                    if found is None:
                        break
                    length, body = found
            stop = body + length
            if stop > end:
                self._needed = stop - pos
                break
            if header >> 4 == 3:
                append(self._decode_publish(data, header, body, stop))
            else:
                append(decode_body(header >> 4, header & 0x0F, data[body:stop]))
            pos = stop
        if pos < end:
            rest = data[pos:] if pos else data
            self._chunks.append(rest)
            self._held = len(rest)
        else:
            self._held = 0
        return packets

    def _decode_publish(self, data: bytes, header: int, body: int, stop: int) -> Publish:
        qos = (header >> 1) & 3
        if body + 2 > stop:
            raise MalformedPacketError("PUBLISH cut short")
        pos = body + 2 + ((data[body] << 8) | data[body + 1])
        raw_topic = data[body + 2 : pos]
        packet_id = 0
        if qos:
            if qos == 3:
                raise MalformedPacketError("PUBLISH with QoS 3")
            if pos + 2 > stop:
                raise MalformedPacketError("PUBLISH cut short")
            packet_id = (data[pos] << 8) | data[pos + 1]
            if not packet_id:
                raise MalformedPacketError("PUBLISH with packet id 0")
            pos += 2
        if pos >= stop:
            raise MalformedPacketError("PUBLISH cut short")
        try:
            topic = raw_topic.decode()
        except UnicodeDecodeError as err:
            raise MalformedPacketError("topic is not well-formed UTF-8") from err
        if data[pos] == 0 and topic:  # no properties, the usual case
            # Built as a tuple: Publish(...) goes through a Python-level __new__ per message.
            return _new_tuple(
                Publish,
                (
                    topic,
                    data[pos + 1 : stop],
                    qos,
                    bool(header & 1),
                    packet_id,
                    bool(header & 8),
                    EMPTY_PROPERTIES,
                ),
            )
        properties, pos = decode_properties(data, pos, stop)
        alias = properties.integer(PropertyId.TOPIC_ALIAS)
        if alias is not None:
            if not 0 < alias <= self._topic_alias_maximum:
                raise MalformedPacketError(f"topic alias {alias} out of range")
            if topic:
                self._aliases[alias] = topic
            else:
                known = self._aliases.get(alias)
                if known is None:
                    raise MalformedPacketError(f"topic alias {alias} used before it was set")
                topic = known
        elif not topic:
            raise MalformedPacketError("PUBLISH without topic or topic alias")
        return Publish(
            topic, data[pos:stop], qos, bool(header & 1), packet_id, bool(header & 8), properties
        )
