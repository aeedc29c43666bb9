"""JT/T 808 positions as truck readings, hub commands as terminal messages, answers as acks."""

from datetime import UTC, datetime

import pytest

from hub.devices.trucks import TruckPayload
from hub.ingest.jt808 import mapping as mp
from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.frame import Version

AT = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


def location(status: int = 0, items: dict[int, bytes] | None = None) -> m.Location:
    """A position in Shanghai at 36.5 km/h heading 90."""
    return m.Location(
        alarm_flags=0x4,
        status=status,
        lat_e6=31_230_000,
        lon_e6=121_470_000,
        altitude_m=12,
        speed_dkmh=365,
        direction_deg=90,
        observed_at=AT,
        items=items or {},
    )


def default_mapping() -> mp.BodyMapping:
    """The documented default mapping."""
    return mp.BodyMapping(
        mp.parse_bit_source(mp.DEFAULT_LIFT_SOURCE), mp.parse_bit_source(mp.DEFAULT_COVER_SOURCE)
    )


def test_status_bits_map_to_the_contract_and_the_payload_validates() -> None:
    status = 1 << 0 | 1 << 1 | 0b11 << 8  # ACC on, fixed, full
    items = {0x01: (1234).to_bytes(4, "big"), 0x31: b"\x09", 0xEB: b"\x01", 0xF0: b"\xab"}
    reading = mp.truck_reading(location(status, items), default_mapping(), mp.BodyState())
    assert reading["acc_on"] is True
    assert reading["load"] == "full"
    assert reading["speed_kmh"] == 36.5
    assert reading["body_lifted"] is True
    assert reading["cover_closed"] is False
    assert reading["mileage_km"] == 123.4
    assert reading["satellites"] == 9
    assert reading["jt808_items"] == {"0xeb": "01", "0xf0": "ab"}  # vendor items kept
    assert reading["ts"] == int(AT.timestamp() * 1000)
    payload = TruckPayload.model_validate(reading)
    assert payload.lat == 31.23


@pytest.mark.parametrize(
    ("bits", "load"), [(0b00, "empty"), (0b01, "half"), (0b11, "full"), (0b10, "half")]
)
def test_load_bits(bits: int, load: str) -> None:
    assert mp.load_of(bits << 8).value == load


def test_south_and_west_are_negative() -> None:
    loc = location(status=1 << 2 | 1 << 3)
    assert (loc.lat, loc.lon) == (-31.23, -121.47)


def test_reports_without_the_vendor_item_keep_the_last_body_state() -> None:
    last = mp.BodyState()
    mapping = default_mapping()
    mp.truck_reading(location(items={0xEB: b"\x01"}), mapping, last)
    reading = mp.truck_reading(location(), mapping, last)
    assert reading["body_lifted"] is True
    assert reading["cover_closed"] is False


def test_status_bit_sources_and_inversion() -> None:
    mapping = mp.BodyMapping(mp.parse_bit_source("status:22"), mp.parse_bit_source("!status:23"))
    reading = mp.truck_reading(location(status=1 << 22), mapping, mp.BodyState())
    assert (reading["body_lifted"], reading["cover_closed"]) == (True, True)


@pytest.mark.parametrize("bad", ["status:32", "item:300", "bit:1", "item:0xEB:40"])
def test_bad_sources_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"expected|bits|ids"):
        mp.parse_bit_source(bad)


def test_text_command_becomes_0x8300() -> None:
    out = mp.parse_command({"command_id": "c1", "action": "text", "text": "请减速"}, Version.V2013)
    assert out.msg_id == m.MsgId.TEXT
    assert m.decode_text(out.body, Version.V2013).text == "请减速"


def test_route_command_becomes_0x8606_with_the_corridor() -> None:
    document = {
        "command_id": "r1",
        "action": "set_route",
        "route_id": 7,
        "corridor_m": 50,
        "route": [[121.47, 31.23], [121.48, 31.24]],
    }
    out = mp.parse_command(document, Version.V2019)
    route = m.decode_route(out.body, Version.V2019)
    assert out.msg_id == m.MsgId.SET_ROUTE
    assert route.route_id == 7
    assert [(p.lat_e6, p.lon_e6, p.width_m) for p in route.points] == [
        (31_230_000, 121_470_000, 50),
        (31_240_000, 121_480_000, 50),
    ]


def test_delete_route_becomes_0x8607() -> None:
    out = mp.parse_command(
        {"command_id": "d1", "action": "delete_route", "route_id": 7}, Version.V2013
    )
    assert out.msg_id == m.MsgId.DELETE_ROUTE
    assert m.decode_route_deletion(out.body) == (7,)


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"action": "text", "text": "x"},
        {"command_id": "c", "action": "reboot"},
        {"command_id": "c", "action": "text", "text": ""},
        {"command_id": "c", "action": "set_route", "route_id": 1, "route": [[1, 2]]},
        {"command_id": "c", "action": "set_route", "route_id": 1, "route": [[1, 2], [3, 400]]},
        {"command_id": "c", "action": "set_route", "route_id": -1, "route": [[1, 2], [3, 4]]},
        {
            "command_id": "c",
            "action": "set_route",
            "route_id": 1,
            "route": [[1, 2], [3, 4]],
            "corridor_m": 1000,
        },
    ],
)
def test_bad_commands_are_refused(document: object) -> None:
    with pytest.raises(mp.CommandError):
        mp.parse_command(document, Version.V2013)


@pytest.mark.parametrize(
    ("result", "expected"),
    [(0, "ok"), (1, "error"), (2, "rejected"), (3, "unsupported"), (9, "error")],
)
def test_terminal_answers_become_acks(result: int, expected: str) -> None:
    ack = mp.command_ack("c1", result, AT)
    assert ack["result"] == expected
    assert ack["command_id"] == "c1"
    assert ("detail" in ack) == (result != 0)


@pytest.mark.parametrize(
    ("value", "phone"),
    [("013912344323", "13912344323"), (13912344323, "13912344323"), ("abc", None), (True, None)],
)
def test_phones_compare_without_leading_zeros(value: object, phone: str | None) -> None:
    assert mp.normalize_phone(value) == phone
