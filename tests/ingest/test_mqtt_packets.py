"""The MQTT 5.0 packet codec: round trips, paho's encoder and decoder, malformed input."""

import contextlib
import itertools
import socket
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub.ingest.mqtt_packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
    encode_packet,
    encode_pubacks,
)
from hub.ingest.mqtt_properties import (
    PROPERTY_TYPES,
    REPEATABLE,
    DataType,
    MalformedPacketError,
    Properties,
    PropertyId,
    PropertyValue,
    decode_properties,
    decode_variable_int,
    encode_properties,
    encode_variable_int,
)

# -- strategies ---------------------------------------------------------------------------

texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40
)
u16 = st.integers(1, 0xFFFF)


def property_value(key: PropertyId) -> st.SearchStrategy[PropertyValue]:
    """Values of one property's wire type."""
    kind = PROPERTY_TYPES[key]
    if kind is DataType.BYTE:
        return st.integers(0, 0xFF)
    if kind is DataType.TWO_BYTE:
        return st.integers(0, 0xFFFF)
    if kind is DataType.FOUR_BYTE:
        return st.integers(0, 0xFFFF_FFFF)
    if kind is DataType.VARIABLE:
        return st.integers(0, 268_435_455)
    if kind is DataType.TEXT:
        return texts
    if kind is DataType.BINARY:
        return st.binary(max_size=40)
    return st.tuples(texts, texts)


@st.composite
def properties(draw: st.DrawFn, exclude: frozenset[PropertyId] = frozenset()) -> Properties:
    """Any properties of a packet: each kind once, repeatable ones any number of times."""
    keys = draw(st.lists(st.sampled_from([k for k in PropertyId if k not in exclude])))
    items: list[tuple[PropertyId, PropertyValue]] = []
    seen: set[PropertyId] = set()
    for key in keys:
        if key in seen and key not in REPEATABLE:
            continue
        seen.add(key)
        items.append((key, draw(property_value(key))))
    return Properties(tuple(items))


no_alias = properties(exclude=frozenset({PropertyId.TOPIC_ALIAS}))
reason_codes = st.integers(0, 0xFF)
publishes = st.builds(
    Publish,
    packet_id=u16,
    topic=texts.filter(bool),
    payload=st.binary(max_size=300),
    qos=st.sampled_from([0, 1, 2]),
    retain=st.booleans(),
    dup=st.booleans(),
    properties=no_alias,
).map(lambda p: p._replace(packet_id=0) if p.qos == 0 else p)
packets: st.SearchStrategy[Packet] = st.one_of(
    st.builds(
        Connect,
        client_id=texts,
        keepalive_s=st.integers(0, 0xFFFF),
        clean_start=st.booleans(),
        properties=properties(),
        username=st.none() | texts,
        password=st.none() | st.binary(max_size=20),
        will=st.none()
        | st.builds(
            Will,
            topic=texts,
            payload=st.binary(max_size=50),
            qos=st.integers(0, 2),
            retain=st.booleans(),
            properties=properties(),
        ),
    ),
    st.builds(ConnAck, st.booleans(), reason_codes, properties()),
    publishes,
    st.builds(PubAck, u16, reason_codes, properties()),
    st.builds(
        Subscribe,
        u16,
        st.lists(
            st.builds(
                Subscription,
                texts,
                st.integers(0, 2),
                st.booleans(),
                st.booleans(),
                st.integers(0, 2),
            ),
            min_size=1,
            max_size=5,
        ).map(tuple),
        properties(),
    ),
    st.builds(SubAck, u16, st.lists(reason_codes, min_size=1).map(tuple), properties()),
    st.builds(Unsubscribe, u16, st.lists(texts, min_size=1, max_size=5).map(tuple), properties()),
    st.builds(UnsubAck, u16, st.lists(reason_codes, min_size=1).map(tuple), properties()),
    st.just(PingReq()),
    st.just(PingResp()),
    st.builds(Disconnect, reason_codes, properties()),
)


def read_all(data: bytes, cuts: list[int], topic_alias_maximum: int = 0) -> list[Packet]:
    """Packets of a byte stream that arrives in pieces, cut at the given offsets."""
    reader = PacketReader(topic_alias_maximum)
    out: list[Packet] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, stop in itertools.pairwise(bounds):
        out += reader.feed(data[start:stop])
    return out


# -- pure ---------------------------------------------------------------------------------


@given(st.integers(0, 268_435_455))
def test_variable_byte_integers_round_trip_in_one_to_four_bytes(value: int) -> None:
    raw = encode_variable_int(value)
    assert len(raw) == 1 + (value > 127) + (value > 16_383) + (value > 2_097_151)
    assert decode_variable_int(raw + b"\xff", 0, len(raw) + 1) == (value, len(raw))


def test_a_variable_byte_integer_longer_than_four_bytes_is_malformed() -> None:
    with pytest.raises(MalformedPacketError):
        decode_variable_int(b"\x80\x80\x80\x80\x01", 0, 5)
    with pytest.raises(ValueError, match="does not fit"):
        encode_variable_int(268_435_456)


@given(st.lists(packets, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_every_packet_round_trips_through_any_split_of_the_stream(
    sent: list[Packet], cuts: list[int]
) -> None:
    data = b"".join(encode_packet(p) for p in sent)
    assert read_all(data, cuts) == sent


@given(publishes, st.integers(1, 10))
def test_a_topic_alias_stands_for_its_topic_until_set_again(message: Publish, alias: int) -> None:
    alias_only = Properties(((PropertyId.TOPIC_ALIAS, alias),))
    first = message._replace(properties=alias_only)
    later = Publish("", b"later", properties=alias_only)
    other = Publish("other/topic", b"x", properties=alias_only)
    again = Publish("", b"again", properties=alias_only)
    data = b"".join(encode_packet(p) for p in (first, later, other, again))
    got = read_all(data, [], topic_alias_maximum=10)
    assert [(p.topic, p.payload) for p in got if isinstance(p, Publish)] == [
        (message.topic, message.payload),
        (message.topic, b"later"),
        ("other/topic", b"x"),
        ("other/topic", b"again"),
    ]


@pytest.mark.parametrize(
    ("packet", "maximum"),
    [
        (Publish("", b"x", properties=Properties(((PropertyId.TOPIC_ALIAS, 1),))), 10),
        (Publish("a", b"x", properties=Properties(((PropertyId.TOPIC_ALIAS, 11),))), 10),
        (Publish("a", b"x", properties=Properties(((PropertyId.TOPIC_ALIAS, 1),))), 0),
        (Publish("a", b"x", properties=Properties(((PropertyId.TOPIC_ALIAS, 0),))), 10),
        (Publish("", b"x"), 10),
    ],
    ids=["unknown alias", "above maximum", "none negotiated", "alias zero", "no topic"],
)
def test_topic_alias_errors_are_malformed_packets(packet: Publish, maximum: int) -> None:
    with pytest.raises(MalformedPacketError):
        PacketReader(maximum).feed(encode_packet(packet))


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_arbitrary_bytes_decode_or_raise_malformed_never_anything_else(data: bytes) -> None:
    with contextlib.suppress(MalformedPacketError):
        read_all(data, [7, 50], topic_alias_maximum=5)


@given(packets, st.data())
@settings(max_examples=300)
def test_a_corrupted_packet_decodes_or_raises_malformed(
    packet: Packet, data: st.DataObject
) -> None:
    raw = bytearray(encode_packet(packet))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(MalformedPacketError):
        PacketReader(5).feed(bytes(raw))


@pytest.mark.parametrize(
    "raw",
    [
        "3205 0003 612f 62",  # QoS 1 PUBLISH whose packet id runs off the end
        "3204 0005 6162",  # topic longer than the packet
        "3006 0001 61 05 0102",  # properties longer than the packet
        "3005 0001 61 01 63",  # unknown property identifier 0x63
        "3008 0001 61 04 2300 0123",  # topic alias twice
        "3204 0001 61 0000",  # packet id 0 (no properties length either)
        "3605 0001 61 0001",  # QoS 3
        "3004 0002 ff fe 00",  # topic not UTF-8 (and short)
        "6000",  # PUBREL: not handled here
        "d001 00",  # PINGRESP with a body
        "9002 0001",  # SUBACK without reason codes
        "80 ffffffff7f",  # remaining length of five bytes
    ],
)
def test_malformed_packets_raise_a_typed_error(raw: str) -> None:
    with pytest.raises(MalformedPacketError):
        PacketReader(5).feed(bytes.fromhex(raw))


def test_a_batch_of_pubacks_is_four_bytes_each_and_decodes_as_pubacks() -> None:
    raw = encode_pubacks([1, 0x1234, 0xFFFF])
    # PUBACK (0x40), remaining length 2, packet id: reason code 0 left out (MQTT 5.0 3.4.2.1)
    assert raw == bytes.fromhex("40020001 40021234 4002ffff")
    assert PacketReader().feed(raw) == [PubAck(1), PubAck(0x1234), PubAck(0xFFFF)]
    assert encode_pubacks([]) == b""


# -- against paho -------------------------------------------------------------------------

# paho names each property after the spec without spaces; its table lists for each the
# packet types it may appear in (public attributes of its Properties class).
_PAHO_NAMES = {
    PropertyId(code): name.replace(" ", "")
    for name, code in PahoProperties(PacketTypes.PUBLISH).names.items()  # type: ignore[no-untyped-call]
}


def as_mapping(props: Properties) -> dict[PropertyId, Any]:
    """Properties as paho holds them: repeatable ones as lists."""
    out: dict[PropertyId, Any] = {}
    for key, value in props.items:
        if key in REPEATABLE:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


def to_paho(props: Properties, packet_type: int) -> PahoProperties:
    """paho's Properties with the same values, set through its public attributes."""
    paho_props = PahoProperties(packet_type)  # type: ignore[no-untyped-call]
    for key, value in as_mapping(props).items():
        setattr(paho_props, _PAHO_NAMES[key], value)
    return paho_props


def from_paho(paho_props: PahoProperties) -> dict[PropertyId, Any]:
    """The values a paho Properties holds, by our identifiers."""
    out: dict[PropertyId, Any] = {}
    for key, name in _PAHO_NAMES.items():
        if hasattr(paho_props, name):
            value = getattr(paho_props, name)
            out[key] = list(value) if isinstance(value, list) else value
    return out


# Values the spec forbids and paho refuses to hold (MQTT 5.0 sections 3.1.2.11, 3.3.2.3).
_SPEC_RANGES = {
    PropertyId.RECEIVE_MAXIMUM: st.integers(1, 0xFFFF),
    PropertyId.TOPIC_ALIAS: st.integers(1, 0xFFFF),
    PropertyId.MAXIMUM_PACKET_SIZE: st.integers(1, 268_435_455),
    PropertyId.SUBSCRIPTION_IDENTIFIER: st.integers(1, 268_435_455),
    PropertyId.REQUEST_RESPONSE_INFORMATION: st.integers(0, 1),
    PropertyId.REQUEST_PROBLEM_INFORMATION: st.integers(0, 1),
    PropertyId.PAYLOAD_FORMAT_INDICATOR: st.integers(0, 1),
}


@st.composite
def properties_of_one_packet_type(draw: st.DrawFn) -> tuple[Properties, int]:
    """Properties, with values in the spec's ranges, that paho accepts in one packet type."""
    packet_type = draw(
        st.sampled_from([PacketTypes.PUBLISH, PacketTypes.CONNECT, PacketTypes.CONNACK])
    )
    table: dict[int, tuple[int, list[int]]] = PahoProperties(PacketTypes.PUBLISH).properties  # type: ignore[no-untyped-call]
    keys = draw(st.lists(st.sampled_from([k for k in PropertyId if packet_type in table[k][1]])))
    items: list[tuple[PropertyId, PropertyValue]] = []
    seen: set[PropertyId] = set()
    for key in keys:
        if key in seen and key not in REPEATABLE:
            continue
        seen.add(key)
        items.append((key, draw(_SPEC_RANGES.get(key, property_value(key)))))
    return Properties(tuple(items)), packet_type


@given(properties_of_one_packet_type())
@settings(max_examples=300)
def test_properties_packed_by_paho_decode_to_the_same_values(case: tuple[Properties, int]) -> None:
    props, packet_type = case
    raw = to_paho(props, packet_type).pack()  # type: ignore[no-untyped-call]
    decoded, end = decode_properties(raw, 0, len(raw))
    assert end == len(raw)
    assert as_mapping(decoded) == as_mapping(props)


@given(properties_of_one_packet_type())
@settings(max_examples=300)
def test_properties_we_encode_unpack_in_paho_to_the_same_values(
    case: tuple[Properties, int],
) -> None:
    props, packet_type = case
    raw = encode_properties(props)
    unpacked, length = PahoProperties(packet_type).unpack(raw)  # type: ignore[no-untyped-call]
    assert length == len(raw)
    assert from_paho(unpacked) == as_mapping(props)


class PahoPeer:
    """A paho client connected to a socket we read with our codec and answer with it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="codec-peer",
            protocol=paho.MQTTv5,
        )
        self.client.username_pw_set("hub", "pässword")
        self.client.will_set("city/hub/status", b"offline", 1, retain=True)
        self.published: list[int] = []
        self.lock = threading.Lock()
        self.client.on_publish = lambda *args: self.published.append(args[1])
        self.reader = PacketReader(topic_alias_maximum=10)
        self.conn: socket.socket | None = None

    def open(self) -> Connect:
        props = PahoProperties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        props.ReceiveMaximum = 500
        port = self.listener.getsockname()[1]
        self.client.connect("127.0.0.1", port, keepalive=17, clean_start=False, properties=props)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(10)
        connect = self.receive()
        assert isinstance(connect, Connect)
        self.send(ConnAck(False, 0, Properties(((PropertyId.TOPIC_ALIAS_MAXIMUM, 10),))))
        self.client.loop_start()
        return connect

    def receive(self) -> Packet:
        assert self.conn is not None
        while True:
            got = self.reader.feed(self.conn.recv(65536))
            if got:
                assert len(got) == 1
                return got[0]

    def send(self, packet: Packet) -> None:
        assert self.conn is not None
        self.conn.sendall(encode_packet(packet))

    def close(self) -> None:
        self.client.loop_stop()
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture(scope="module")
def peer() -> Iterator[PahoPeer]:
    connected = PahoPeer()
    try:
        yield connected
    finally:
        connected.close()


def test_paho_connect_subscribe_and_unsubscribe_decode(peer: PahoPeer) -> None:
    connect = peer.open()
    assert connect._replace(properties=Properties()) == Connect(
        "codec-peer",
        17,
        False,
        Properties(),
        "hub",
        "pässword".encode(),
        Will("city/hub/status", b"offline", 1, True),
    )
    assert as_mapping(connect.properties) == {
        PropertyId.SESSION_EXPIRY_INTERVAL: 3600,
        PropertyId.RECEIVE_MAXIMUM: 500,
    }
    peer.client.subscribe(
        [
            ("city/#", SubscribeOptions(qos=1, noLocal=True, retainHandling=1)),
            ("$share/hub/city/x", SubscribeOptions(qos=0, retainAsPublished=True)),
        ]
    )
    subscribe = peer.receive()
    assert isinstance(subscribe, Subscribe)
    assert subscribe.subscriptions == (
        Subscription("city/#", 1, True, False, 1),
        Subscription("$share/hub/city/x", 0, False, True, 0),
    )
    peer.send(SubAck(subscribe.packet_id, (1, 0)))
    peer.client.unsubscribe("city/#")
    unsubscribe = peer.receive()
    assert isinstance(unsubscribe, Unsubscribe)
    assert unsubscribe.topic_filters == ("city/#",)
    peer.send(UnsubAck(unsubscribe.packet_id, (0,)))


@given(
    publishes.filter(lambda p: p.qos < 2 and not {"+", "#"} & set(p.topic)),
    properties_of_one_packet_type().filter(lambda case: case[1] == PacketTypes.PUBLISH),
    st.integers(1, 10),
    st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_paho_publishes_decode_with_their_properties_and_aliases(
    peer: PahoPeer,
    message: Publish,
    case: tuple[Properties, int],
    alias: int,
    by_alias: bool,
) -> None:
    message = message._replace(properties=case[0].without(PropertyId.TOPIC_ALIAS))
    if peer.conn is None:
        peer.open()
    props = to_paho(message.properties, PacketTypes.PUBLISH) if message.properties.items else None
    if by_alias:
        props = props or PahoProperties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.TopicAlias = alias
    peer.client.publish(
        message.topic, message.payload, message.qos, message.retain, properties=props
    )
    got = peer.receive()
    assert isinstance(got, Publish)
    if got.qos:
        peer.send(PubAck(got.packet_id))
    assert (got.topic, got.payload, got.qos, got.retain) == (
        message.topic,
        message.payload,
        message.qos,
        message.retain,
    )
    assert as_mapping(got.properties.without(PropertyId.TOPIC_ALIAS)) == as_mapping(
        message.properties
    )
    if by_alias:
        peer.client.publish("", b"by alias", 0, properties=props)
        again = peer.receive()
        assert isinstance(again, Publish)
        assert (again.topic, again.payload) == (message.topic, b"by alias")


def test_our_disconnect_with_a_reason_reaches_paho(peer: PahoPeer) -> None:
    if peer.conn is None:
        peer.open()
    reasons: list[int] = []
    done = threading.Event()

    def on_disconnect(*args: Any) -> None:
        reasons.append(args[3].value)
        done.set()

    peer.client.on_disconnect = on_disconnect
    reason = Properties(((PropertyId.REASON_STRING, "server shutting down"),))
    peer.send(Disconnect(0x8B, reason))
    assert done.wait(10)
    assert reasons == [0x8B]
