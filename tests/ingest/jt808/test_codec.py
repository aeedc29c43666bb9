"""JT/T 808 framing and message bodies against published frames, plus round-trip properties.

Sources of the frames (hex copied as test data, code not used):
- X2013: a real 2013 location report in a device-response example of a Rust project
  (found by the search corpus; terminal 010019326051, serial 0x0054).
- SMALLCHI: SmallChi/JT808 `src/JT808.Protocol.Test/MessageBody/JT808_0x0100Test.cs` and
  `JT808_0x0102Test.cs` (2013 and 2019 registration, 2013 authentication).
- XTREAM: makeclan/xtream-codec `debug/jt/jt-808-server-spring-boot-starter-debug-ui/src/
  utils/codec-utils.ts` (2019 frames of 0x0200, 0x0704, 0x8001, 0x8100, 0x8300 both
  editions, 0x8606 and 0x8607, 0x0002).
"""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.ingest.jt808 import frame as fr
from hub.ingest.jt808 import gateway as gw
from hub.ingest.jt808 import messages as m

X2013_LOCATION = (
    "7E0200003B010019326051005400000000600000020253FBB307045B360001000000E4200312141854"
    "01040000000230011FE107046000210434E7E9013CE703000000E8033000025B7E"
)
SMALLCHI_REGISTER_2013 = (
    "7E0100002D000123456789000A002800323132333430736D616C6C636869313233303030303030303030"
    "4348493132333001D4C1413132333435BA7E"
)
SMALLCHI_REGISTER_2019 = (
    "7e0100405401000000000222222222220001000000003030304b6f696b6530303230303030303030303030"
    "3030303030303030303030304b6f696b65303032303030303030303030303030303030303030303030304b"
    "6f696b6530303202d4c1413132333436107e"
)
SMALLCHI_AUTH_2013 = "7E010200090123456789003039343536313231313131BE7E"
XTREAM_LOCATION_2019 = (
    "7e02004026010000000001391234432900000000006f0000001601dc9a0707456246007b00420003250129"
    "2233440202006401040000000c417e"
)
XTREAM_BATCH_2019 = (
    "7e0704403f01000000000139123443290000000200001c000000010000000101d907f2073d336c029a0021"
    "0059241029213903001c000000010000000101d907f3073d336d03090043005a241029213903f87e"
)
XTREAM_8001_2019 = "7e8001400501000000000139123443290000006f020000dc7e"
XTREAM_8100_2019 = "7e8100400d01000000000139123443290000006f006f6b2e2e6f6b2e2e6f6bd27e"
XTREAM_8300_2013 = (
    "7e8300001901391234432300000148656c6c6f576f726c6420babad7d62047424b20b1e0c2ebf27e"
)
XTREAM_8300_2019 = (
    "7e8300401a01000000000139123443290000010148656c6c6f576f726c6420babad7d62047424b20b1e0c2ebbb7e"
)
XTREAM_8606_2013 = (
    "7e8606003f01391234432300000000029a000324102618395624102620395600020000006f0000045701d9"
    "07f1073d336b1403270f045700ea06000000de000008ae01d907f3073d336d1400b47e"
)
XTREAM_8607_2019 = "7e8607400d01000000000139123443290000030000006f000000de0000014d477e"
XTREAM_HEARTBEAT_2019 = "7e0002400001000000000139123443290000377e"


def wire(text: str) -> bytes:
    """Hex as bytes."""
    return bytes.fromhex(text)


def test_2013_location_report_from_a_real_terminal() -> None:
    frame = fr.decode_frame(wire(X2013_LOCATION))
    assert frame.header.msg_id == m.MsgId.LOCATION
    assert frame.header.version == fr.Version.V2013
    assert frame.header.phone == "010019326051"
    assert frame.header.serial == 0x54
    loc = m.decode_location(frame.body)
    assert (loc.lat, loc.lon) == (39.058355, 117.726006)
    assert loc.status_bit(m.Status.FIXED)
    assert not loc.status_bit(m.Status.ACC)
    assert (loc.altitude_m, loc.speed_dkmh, loc.direction_deg) == (1, 0, 228)
    # 2020-03-12 14:18:54 in GMT+8 is 06:18:54 UTC.
    assert loc.observed_at == datetime(2020, 3, 12, 6, 18, 54, tzinfo=UTC)
    assert loc.item_int(m.Item.MILEAGE) == 2
    assert loc.item_int(m.Item.SIGNAL) == 31
    assert loc.items[0xE9] == b"\x3c"  # vendor items are kept, not fatal
    assert 0xE1 in loc.items


def test_2019_location_report_and_its_items() -> None:
    frame = fr.decode_frame(wire(XTREAM_LOCATION_2019))
    assert frame.header.version == fr.Version.V2019
    assert frame.header.protocol_version == 1
    assert frame.header.phone == "00000000013912344329"
    loc = m.decode_location(frame.body)
    assert loc.alarm_flags == 111
    assert (loc.lat_e6, loc.lon_e6, loc.altitude_m) == (31234567, 121987654, 123)
    assert (loc.speed_dkmh, loc.direction_deg) == (66, 3)
    assert loc.observed_at == datetime(2025, 1, 29, 14, 33, 44, tzinfo=UTC)
    assert loc.item_int(m.Item.MILEAGE) == 12
    assert loc.item_int(m.Item.FUEL) == 100
    # Re-encoding gives the same bytes: items keep their order.
    assert fr.encode_frame(frame.header, m.encode_location(loc)) == wire(XTREAM_LOCATION_2019)


def test_2019_batch_upload() -> None:
    frame = fr.decode_frame(wire(XTREAM_BATCH_2019))
    batch = m.decode_location_batch(frame.body)
    assert not batch.blind_area
    assert [loc.lat_e6 for loc in batch.locations] == [31000562, 31000563]
    assert [loc.altitude_m for loc in batch.locations] == [666, 777]
    assert m.encode_location_batch(batch) == frame.body


def test_blind_area_batch_is_marked() -> None:
    body = bytearray(fr.decode_frame(wire(XTREAM_BATCH_2019)).body)
    body[2] = 1
    assert m.decode_location_batch(bytes(body)).blind_area


def test_registration_2013_and_2019() -> None:
    frame = fr.decode_frame(wire(SMALLCHI_REGISTER_2013))
    assert frame.header.phone == "000123456789"
    assert frame.header.serial == 10
    reg = m.decode_registration(frame.body, frame.header.version)
    assert (reg.province, reg.city, reg.plate_colour) == (40, 50, 1)
    assert reg.plate == "粤A12345"
    assert reg.terminal_id == "CHI1230"
    frame19 = fr.decode_frame(wire(SMALLCHI_REGISTER_2019))
    assert frame19.header.version == fr.Version.V2019
    assert frame19.header.phone == "00000000022222222222"
    reg19 = m.decode_registration(frame19.body, frame19.header.version)
    assert reg19.plate == "粤A12346"
    assert reg19.plate_colour == 2
    assert reg19.terminal_id.lstrip("0") == "Koike002"


def test_registration_2011_has_a_shorter_model_field() -> None:
    reg = m.Registration(31, 100, "ACME", "M1", "T000001", 2, "沪A12345")
    body = m.encode_registration(reg, "2011")
    assert len(body) == 25 + len("沪A12345".encode("gbk"))
    assert m.decode_registration(body, fr.Version.V2013) == reg


def test_authentication_2013_and_2019() -> None:
    frame = fr.decode_frame(wire(SMALLCHI_AUTH_2013))
    assert frame.header.phone == "012345678900"
    assert frame.header.serial == 12345
    assert m.decode_authentication(frame.body, frame.header.version).auth_code == "456121111"
    auth = m.Authentication("abc123", "860000000000001", "v1.2.3")
    body = m.encode_authentication(auth, fr.Version.V2019)
    assert len(body) == 1 + 6 + 15 + 20
    assert m.decode_authentication(body, fr.Version.V2019) == auth


def test_platform_replies_match_published_frames() -> None:
    header = fr.Header(
        msg_id=m.MsgId.PLATFORM_RESPONSE,
        phone="00000000013912344329",
        serial=0,
        version=fr.Version.V2019,
        protocol_version=1,
    )
    body = m.encode_general_response(m.GeneralResponse(111, 0x0200, m.Result.OK))
    assert fr.encode_frame(header, body) == wire(XTREAM_8001_2019)
    reg = fr.Header(
        msg_id=m.MsgId.REGISTER_RESPONSE,
        phone=header.phone,
        serial=0,
        version=header.version,
        protocol_version=1,
    )
    body = m.encode_register_response(m.RegisterResponse(111, m.RegisterResult.OK, "ok..ok..ok"))
    assert fr.encode_frame(reg, body) == wire(XTREAM_8100_2019)
    refused = m.encode_register_response(m.RegisterResponse(7, m.RegisterResult.NO_SUCH_VEHICLE))
    assert refused == b"\x00\x07\x02"  # no auth code after a refusal


def test_text_to_driver_in_both_editions() -> None:
    text = "HelloWorld 汉字 GBK 编码"
    h13 = fr.Header(msg_id=m.MsgId.TEXT, phone="013912344323", serial=0)
    assert fr.encode_frame(h13, m.encode_text(m.TextMessage(text, flags=1), h13.version)) == wire(
        XTREAM_8300_2013
    )
    h19 = fr.Header(
        msg_id=m.MsgId.TEXT,
        phone="00000000013912344329",
        serial=0,
        version=fr.Version.V2019,
        protocol_version=1,
    )
    body = m.encode_text(m.TextMessage(text, flags=1, text_type=1), h19.version)
    assert fr.encode_frame(h19, body) == wire(XTREAM_8300_2019)
    assert m.decode_text(body, h19.version).text == text


def test_route_set_and_delete() -> None:
    frame = fr.decode_frame(wire(XTREAM_8606_2013))
    route = m.decode_route(frame.body, frame.header.version)
    assert route.route_id == 666
    assert route.start == datetime(2024, 10, 26, 18, 39, 56, tzinfo=m.GMT8)
    assert [p.width_m for p in route.points] == [20, 20]
    assert route.points[0].long_drive_s == 9999
    assert route.points[0].max_speed_kmh == 234
    assert m.encode_route(route, frame.header.version) == frame.body
    deletion = fr.decode_frame(wire(XTREAM_8607_2019))
    assert m.decode_route_deletion(deletion.body) == (111, 222, 333)
    assert m.encode_route_deletion((111, 222, 333)) == deletion.body


def test_heartbeat_has_an_empty_body() -> None:
    frame = fr.decode_frame(wire(XTREAM_HEARTBEAT_2019))
    assert frame.header.msg_id == m.MsgId.HEARTBEAT
    assert frame.body == b""


def test_bad_check_code_is_refused() -> None:
    broken = bytearray(wire(XTREAM_HEARTBEAT_2019))
    broken[-2] ^= 0x01
    with pytest.raises(fr.FrameError) as err:
        fr.decode_frame(bytes(broken))
    assert err.value.reason == "bad_check"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("7e00027e", "short"),
        ("7e7d037e", "bad_escape"),
        # properties claim a 5-byte body that is not there
        ("7e000200050123456789000000" + "00" + "7e", "bad_check"),
    ],
)
def test_broken_frames_raise_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(fr.FrameError) as err:
        fr.decode_frame(wire(raw))
    assert err.value.reason == reason


def test_body_length_must_match_properties() -> None:
    content = bytes.fromhex("000200050123456789000000aa")
    with pytest.raises(fr.FrameError) as err:
        fr.decode_content(content + bytes((fr.check_code(content),)))
    assert err.value.reason == "bad_length"


def test_escaping_of_flag_and_escape_bytes() -> None:
    assert fr.escape(b"\x30\x7e\x08\x7d\x55") == b"\x30\x7d\x02\x08\x7d\x01\x55"
    header = fr.Header(msg_id=0x0200, phone="013912344323", serial=0x7E7D)
    encoded = fr.encode_frame(header, b"\x7e\x7d")
    assert b"\x7e" not in encoded[1:-1]
    assert fr.decode_frame(encoded) == fr.Frame(header, b"\x7e\x7d")


def test_splitter_cuts_a_stream_and_bounds_frames() -> None:
    beat = wire(XTREAM_HEARTBEAT_2019)
    loc = wire(XTREAM_LOCATION_2019)
    splitter = fr.FrameSplitter(max_frame_bytes=40)
    stream = b"garbage" + beat + loc + beat[:5]
    out = [*splitter.feed(stream[:11]), *splitter.feed(stream[11:])]
    assert out[0] == beat[1:-1]
    assert isinstance(out[1], fr.FrameError)
    assert out[1].reason == "oversize"
    assert splitter.buffered_bytes == 4
    assert list(splitter.feed(beat[5:])) == [beat[1:-1]]


def test_subpackages_are_reassembled_in_any_order() -> None:
    header = fr.Header(msg_id=0x0704, phone="013912344323", serial=40)
    body = bytes(range(256)) * 10
    frames = [fr.decode_frame(f) for f in fr.split_into_packages(header, body, 1000)]
    assert [f.header.package_index for f in frames] == [1, 2, 3]
    joiner = fr.Reassembler()
    assert joiner.add(frames[2], 0.0) is None
    assert joiner.add(frames[0], 0.1) is None
    assert joiner.missing(frames[0]) == [2]
    whole = joiner.add(frames[1], 0.2)
    assert whole is not None
    assert whole.body == body
    assert whole.header.serial == 40
    assert not whole.header.is_subpackage
    assert joiner.pending_messages == 0


def test_unfinished_subpackages_expire() -> None:
    header = fr.Header(msg_id=0x0704, phone="013912344323", serial=1)
    first = fr.decode_frame(fr.split_into_packages(header, b"x" * 2000, 1000)[0])
    joiner = fr.Reassembler(timeout_s=30)
    joiner.add(first, 0.0)
    assert joiner.expire(31.0) == 1
    assert joiner.pending_messages == 0


def test_overdue_messages_are_asked_for_once() -> None:
    header = fr.Header(msg_id=0x0704, phone="013912344323", serial=7)
    frames = [fr.decode_frame(f) for f in fr.split_into_packages(header, b"y" * 3000, 1000)]
    joiner = fr.Reassembler()
    joiner.add(frames[0], 0.0)
    assert joiner.overdue(5.0, 10.0) == []
    [(whole, missing)] = joiner.overdue(10.0, 10.0)
    assert (whole.msg_id, whole.serial, missing) == (0x0704, 7, [2, 3])
    assert joiner.overdue(20.0, 10.0) == []  # asked once
    joiner.add(frames[2], 21.0)
    other = fr.Header(msg_id=0x0704, phone="013912344323", serial=100)
    late = fr.decode_frame(fr.split_into_packages(other, b"z" * 2000, 1000)[1])
    joiner.add(late, 21.0)
    assert joiner.request_missing(late) == (100, [1])
    assert joiner.overdue(40.0, 10.0) == []  # request_missing counts as asked


@pytest.mark.parametrize(
    ("version", "wire"),
    [
        (fr.Version.V2013, "00070200020003"),
        (fr.Version.V2019, "0007000200020003"),
    ],
)
def test_resend_request_0x8003(version: fr.Version, wire: str) -> None:
    """Original serial, the count (BYTE in 2013, WORD in 2019), the package ids as WORDs."""
    request = m.ResendRequest(7, (2, 3))
    assert m.encode_resend_request(request, version).hex() == wire
    assert m.decode_resend_request(bytes.fromhex(wire), version) == request


def test_times_are_gmt8_and_become_utc() -> None:
    assert m.decode_time(bytes.fromhex("250101000000")) == datetime(2024, 12, 31, 16, 0, tzinfo=UTC)
    with pytest.raises(fr.FrameError):
        m.decode_time(bytes.fromhex("251301000000"))


# -- properties: encode then decode gives back what went in ------------------------------

phones13 = st.text("0123456789", min_size=12, max_size=12)
phones19 = st.text("0123456789", min_size=20, max_size=20)
headers = st.one_of(
    st.builds(
        fr.Header,
        msg_id=st.integers(0, 0xFFFF),
        phone=phones13,
        serial=st.integers(0, 0xFFFF),
        version=st.just(fr.Version.V2013),
        protocol_version=st.just(0),
    ),
    st.builds(
        fr.Header,
        msg_id=st.integers(0, 0xFFFF),
        phone=phones19,
        serial=st.integers(0, 0xFFFF),
        version=st.just(fr.Version.V2019),
        protocol_version=st.integers(0, 255),
    ),
)
# Hypothesis takes naive bounds and attaches the zone itself.
times = st.datetimes(
    min_value=datetime(2000, 1, 2),  # noqa: DTZ001
    max_value=datetime(2099, 12, 30),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda t: t.replace(microsecond=0))
locations = st.builds(
    m.Location,
    alarm_flags=st.integers(0, 2**32 - 1),
    status=st.integers(0, 2**32 - 1),
    lat_e6=st.integers(0, 90_000_000),
    lon_e6=st.integers(0, 180_000_000),
    altitude_m=st.integers(-32768, 32767),
    speed_dkmh=st.integers(0, 0xFFFF),
    direction_deg=st.integers(0, 359),
    observed_at=times,
    items=st.dictionaries(st.integers(0, 255), st.binary(max_size=20), max_size=6),
)


@given(headers, st.binary(max_size=1023))
def test_frames_round_trip(header: fr.Header, body: bytes) -> None:
    encoded = fr.encode_frame(header, body)
    assert encoded.count(b"\x7e") == 2
    assert fr.decode_frame(encoded) == fr.Frame(header, body)


@given(locations)
def test_locations_round_trip(loc: m.Location) -> None:
    assert m.decode_location(m.encode_location(loc)) == loc


@given(st.lists(locations, max_size=5), st.booleans())
def test_batches_round_trip(locs: list[m.Location], blind: bool) -> None:
    batch = m.LocationBatch(blind, tuple(locs))
    assert m.decode_location_batch(m.encode_location_batch(batch)) == batch


@given(headers, st.binary(min_size=1, max_size=5000), st.integers(1, 1023), st.randoms())
def test_subpackages_round_trip(header: fr.Header, body: bytes, part: int, rnd: object) -> None:
    frames = [fr.decode_frame(f) for f in fr.split_into_packages(header, body, part)]
    rnd.shuffle(frames)  # type: ignore[attr-defined]
    joiner = fr.Reassembler(max_bytes=10_000)
    results = [joiner.add(f, 0.0) for f in frames]
    whole = [r for r in results if r is not None]
    assert len(whole) == 1
    assert whole[0].body == body


@given(st.lists(st.binary(max_size=200), max_size=5), st.integers(1, 50))
def test_splitter_finds_every_frame_however_the_stream_is_cut(
    bodies: list[bytes], cut: int
) -> None:
    header = fr.Header(msg_id=0x0200, phone="013912344323", serial=1)
    stream = b"".join(fr.encode_frame(header, b) for b in bodies)
    splitter = fr.FrameSplitter()
    out = []
    for i in range(0, len(stream), cut):
        out += list(splitter.feed(stream[i : i + cut]))
    assert [fr.decode_content(fr.unescape(c)).body for c in out if isinstance(c, bytes)] == bodies


@given(
    st.text(
        st.characters(codec="gbk", exclude_characters="\x00", exclude_categories=("Cs", "Zs")),
        min_size=1,
        max_size=50,
    )
    .map(str.strip)
    .filter(bool)
)
def test_gbk_text_round_trips(text: str) -> None:
    assert (
        m.decode_text(m.encode_text(m.TextMessage(text), fr.Version.V2013), fr.Version.V2013).text
        == text
    )


def test_encoded_times_are_gmt8() -> None:
    when = datetime(2026, 5, 1, 23, 30, tzinfo=UTC)
    assert m.encode_time(when) == bytes.fromhex("260502073000")
    assert m.decode_time(m.encode_time(when)) == when


@given(headers, st.binary(max_size=1023))
def test_the_platform_fast_path_encodes_as_encode_frame(header: fr.Header, body: bytes) -> None:
    middle = fr.header_middle(header.phone, header.version, header.protocol_version)
    fast = fr.encode_platform_frame(header.msg_id, middle, header.version, header.serial, body)
    assert fast == fr.encode_frame(header, body)


def test_the_gateway_reply_body_is_a_general_response() -> None:
    reply = m.GeneralResponse(0xBEEF, 0x0200, m.Result.BAD_MESSAGE)
    assert gw._GENERAL_RESPONSE.pack(0xBEEF, 0x0200, 2) == m.encode_general_response(reply)
