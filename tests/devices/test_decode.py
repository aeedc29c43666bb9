"""Topic routing and payload decoding: good and bad examples of every kind."""

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from hub.devices.decode import (
    CommandAck,
    DecodeError,
    DecodeLimits,
    Reading,
    RejectReason,
    StatusChange,
    decode_message,
    parse_topic,
)
from hub.devices.kinds import Channel, Kind, Load
from tests.payload_examples import GOOD, example

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
REGISTRY = {f"{kind.value}-1": kind for kind in Kind}
LIMITS = DecodeLimits(max_payload_bytes=4096, max_batch=100)


def decode(topic: str, payload: object | bytes) -> object:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return decode_message(topic, raw, NOW, root="city", registry=REGISTRY, limits=LIMITS)


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_decodes_its_contract_fields(kind: Kind) -> None:
    result = decode(f"city/{kind.value}/{kind.value}-1/telemetry", example(kind, NOW_MS))
    assert isinstance(result, list)
    (reading,) = result
    assert isinstance(reading, Reading)
    assert reading.kind is kind
    assert reading.device_id == f"{kind.value}-1"
    assert reading.ts == NOW
    for name, value in GOOD[kind].items():
        assert reading.value(name) == value


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (NOW_MS, NOW),
        ("2026-11-21T12:00:00Z", NOW),
        ("2026-11-21T20:00:00+08:00", NOW),
        ("2026-11-21T12:00:00.250+00:00", NOW + timedelta(milliseconds=250)),
    ],
)
def test_timestamps_in_every_accepted_form(ts: int | str, expected: datetime) -> None:
    result = decode("city/parking/parking-1/telemetry", example(Kind.PARKING, ts))
    assert isinstance(result, list)
    assert result[0].ts == expected
    assert result[0].ts.tzinfo is UTC


def test_batch_from_a_gateway_gives_one_reading_per_object() -> None:
    batch = [example(Kind.TRUCK, NOW_MS - i * 1000) for i in range(5)]
    result = decode("city/truck/truck-1/telemetry", batch)
    assert isinstance(result, list)
    assert [r.ts for r in result] == [NOW - timedelta(seconds=i) for i in range(5)]
    assert result[0].value("load") is Load.FULL


def test_event_channel_marks_readings_as_events() -> None:
    result = decode("city/parking/parking-1/event", example(Kind.PARKING, NOW_MS))
    assert isinstance(result, list)
    assert result[0].channel is Channel.EVENT


def test_extra_fields_are_kept_not_dropped() -> None:
    result = decode("city/manhole/manhole-1/telemetry", example(Kind.MANHOLE, NOW_MS, gas_ppm=3.5))
    assert isinstance(result, list)
    assert result[0].payload.model_extra == {"gas_ppm": 3.5}


def test_payload_may_repeat_the_topic_id() -> None:
    result = decode(
        "city/lighting/lighting-1/telemetry",
        example(Kind.LIGHTING, NOW_MS, device_id="lighting-1"),
    )
    assert isinstance(result, list)


@pytest.mark.parametrize(
    ("raw", "online"), [(b"online", True), (b"offline", False), (b'{"state": "online"}', True)]
)
def test_status_messages(raw: bytes, online: bool) -> None:
    result = decode("city/cabinet/cabinet-1/status", raw)
    assert isinstance(result, StatusChange)
    assert result.online is online


def test_command_ack() -> None:
    result = decode(
        "city/lighting/lighting-1/cmd/ack", {"ts": NOW_MS, "command_id": "c-1", "result": "ok"}
    )
    assert isinstance(result, CommandAck)
    assert (result.command_id, result.result) == ("c-1", "ok")


BAD_CASES: list[tuple[str, str, object | bytes, RejectReason, str]] = [
    ("too few levels", "city/lighting/lighting-1", {}, RejectReason.BAD_TOPIC, "expected city/"),
    ("wrong root", "town/lighting/lighting-1/telemetry", {}, RejectReason.BAD_TOPIC, "city/"),
    ("unknown channel", "city/lighting/lighting-1/foo", {}, RejectReason.BAD_TOPIC, "channel"),
    ("unknown kind", "city/bench/bench-1/telemetry", {}, RejectReason.UNKNOWN_KIND, "bench"),
    (
        "bad id chars",
        "city/lighting/灯-1/telemetry",
        {},
        RejectReason.BAD_TOPIC,
        "device id",
    ),
    (
        "unregistered",
        "city/lighting/lighting-9/telemetry",
        example(Kind.LIGHTING, NOW_MS),
        RejectReason.UNREGISTERED,
        "not registered",
    ),
    (
        "kind mismatch",
        "city/truck/lighting-1/telemetry",
        example(Kind.TRUCK, NOW_MS),
        RejectReason.KIND_MISMATCH,
        "registered as lighting",
    ),
    (
        "invalid json",
        "city/lighting/lighting-1/telemetry",
        b"{on: 1",
        RejectReason.INVALID_JSON,
        "",
    ),
    (
        "nan literal",
        "city/manhole/manhole-1/telemetry",
        b'{"ts": 1, "tilt_deg": NaN}',
        RejectReason.INVALID_JSON,
        "",
    ),
    ("not an object", "city/lighting/lighting-1/telemetry", b"42", RejectReason.SCHEMA, "object"),
    ("empty batch", "city/lighting/lighting-1/telemetry", [], RejectReason.SCHEMA, "empty"),
    (
        "missing field",
        "city/lighting/lighting-1/telemetry",
        {"ts": NOW_MS, "on": True},
        RejectReason.SCHEMA,
        "dim_pct",
    ),
    (
        "wrong type",
        "city/parking/parking-1/telemetry",
        example(Kind.PARKING, NOW_MS, occupied="maybe"),
        RejectReason.SCHEMA,
        "occupied",
    ),
    (
        "out of range",
        "city/truck/truck-1/telemetry",
        example(Kind.TRUCK, NOW_MS, lat=123.0),
        RejectReason.SCHEMA,
        "lat",
    ),
    (
        "bad load",
        "city/truck/truck-1/telemetry",
        example(Kind.TRUCK, NOW_MS, load="overflowing"),
        RejectReason.SCHEMA,
        "load",
    ),
    (
        "ts without offset",
        "city/parking/parking-1/telemetry",
        example(Kind.PARKING, "2026-11-21T12:00:00"),
        RejectReason.SCHEMA,
        "offset",
    ),
    (
        "ts as bool",
        "city/parking/parking-1/telemetry",
        example(Kind.PARKING, True),
        RejectReason.SCHEMA,
        "ts",
    ),
    (
        "id mismatch",
        "city/parking/parking-1/telemetry",
        example(Kind.PARKING, NOW_MS, device_id="parking-2"),
        RejectReason.ID_MISMATCH,
        "parking-2",
    ),
    (
        "too old",
        "city/parking/parking-1/telemetry",
        example(Kind.PARKING, NOW_MS - 8 * 86_400_000),
        RejectReason.TS_TOO_OLD,
        "before receipt",
    ),
    (
        "in the future",
        "city/parking/parking-1/telemetry",
        example(Kind.PARKING, NOW_MS + 3_600_000),
        RejectReason.TS_IN_FUTURE,
        "after receipt",
    ),
    (
        "oversize",
        "city/parking/parking-1/telemetry",
        b"[" + b" " * 5000 + b"]",
        RejectReason.OVERSIZE,
        "exceeds",
    ),
    (
        "batch too long",
        "city/parking/parking-1/telemetry",
        [{"ts": 1}] * 101,
        RejectReason.OVERSIZE,
        "batch",
    ),
    (
        "one bad item spoils the batch",
        "city/parking/parking-1/telemetry",
        [example(Kind.PARKING, NOW_MS), {"ts": NOW_MS}],
        RejectReason.SCHEMA,
        "item 1",
    ),
    (
        "bad status",
        "city/parking/parking-1/status",
        b'{"state": "asleep"}',
        RejectReason.SCHEMA,
        "state",
    ),
    ("cmd is hub to device", "city/parking/parking-1/cmd", {}, RejectReason.BAD_TOPIC, "cmd"),
    (
        "bad ack",
        "city/parking/parking-1/cmd/ack",
        {"ts": NOW_MS},
        RejectReason.SCHEMA,
        "command_id",
    ),
]


@pytest.mark.parametrize(
    ("topic", "payload", "reason", "hint"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_input_is_rejected_with_reason(
    topic: str, payload: object | bytes, reason: RejectReason, hint: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(topic, payload)
    assert caught.value.reason is reason
    assert hint in caught.value.detail


def test_parse_topic_splits_the_channel_with_a_slash() -> None:
    topic = parse_topic("city/lighting/L-1/cmd/ack", "city")
    assert (topic.kind, topic.device_id, topic.channel) == (Kind.LIGHTING, "L-1", Channel.CMD_ACK)
