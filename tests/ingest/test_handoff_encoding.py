"""The grouped hand-off message (version 2): what the cluster's members send each other.

Readings are grouped by kind and channel on the wire (one pydantic call per group), so
these check what grouping could break: the order handed off, validation on arrival, and
that a member of the previous release (version 1) can still hand off to this one.
"""

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.partition import decode_handoff, encode_handoff
from hub.devices.payloads import PAYLOAD_MODELS
from tests.payload_examples import GOOD

T0 = datetime(2026, 11, 21, 3, 4, 5, tzinfo=UTC)


def _reading(kind: Kind, device_id: str, second: int, channel: Channel) -> Reading:
    ts = T0 + timedelta(seconds=second)
    payload = PAYLOAD_MODELS[kind].model_validate({**GOOD[kind], "ts": ts.isoformat()})
    return Reading(kind, device_id, channel, ts, ts + timedelta(milliseconds=250), payload)


def test_interleaved_kinds_and_channels_come_back_in_the_order_handed_off() -> None:
    readings = [
        _reading(Kind.TRUCK, "TRK-1", 0, Channel.TELEMETRY),
        _reading(Kind.PARKING, "PRK-1", 0, Channel.EVENT),
        _reading(Kind.TRUCK, "TRK-1", 1, Channel.EVENT),
        _reading(Kind.LIGHTING, "LMP-1", 1, Channel.TELEMETRY),
        _reading(Kind.TRUCK, "TRK-1", 2, Channel.TELEMETRY),
        _reading(Kind.PARKING, "PRK-1", 2, Channel.EVENT),
    ]
    raw = encode_handoff(readings)
    assert len(orjson.loads(raw)["groups"]) == 4  # grouped on the wire
    assert decode_handoff(raw) == readings


def test_an_empty_hand_off_is_empty() -> None:
    assert decode_handoff(encode_handoff([])) == []


def test_payloads_are_validated_on_arrival() -> None:
    reading = _reading(Kind.LIGHTING, "LMP-1", 0, Channel.TELEMETRY)
    document = orjson.loads(encode_handoff([reading]))
    document["groups"][0][5][0]["dim_pct"] = "bright"
    with pytest.raises(ValueError, match="dim_pct"):
        decode_handoff(orjson.dumps(document))


def test_a_group_whose_lists_disagree_is_refused() -> None:
    reading = _reading(Kind.LIGHTING, "LMP-1", 0, Channel.TELEMETRY)
    document = orjson.loads(encode_handoff([reading, reading]))
    document["groups"][0][3].pop()  # one device id short
    with pytest.raises(ValueError, match="hand-off"):
        decode_handoff(orjson.dumps(document))


def test_a_version_1_hand_off_is_still_read() -> None:
    reading = _reading(Kind.TRUCK, "TRK-1", 0, Channel.TELEMETRY)
    v1 = orjson.dumps(
        {
            "v": 1,
            "readings": [
                [
                    reading.kind.value,
                    reading.device_id,
                    reading.channel.value,
                    reading.received_at.isoformat(),
                    reading.payload.model_dump(mode="json"),
                ]
            ],
        }
    )
    assert decode_handoff(v1) == [reading]


def test_a_count_that_does_not_match_the_groups_is_refused() -> None:
    # A forged count must not make the member allocate for it.
    reading = _reading(Kind.LIGHTING, "LMP-1", 0, Channel.TELEMETRY)
    document = orjson.loads(encode_handoff([reading]))
    document["n"] = 10**9
    with pytest.raises(ValueError, match="hand-off"):
        decode_handoff(orjson.dumps(document))


def test_a_repeated_place_is_refused() -> None:
    reading = _reading(Kind.LIGHTING, "LMP-1", 0, Channel.TELEMETRY)
    document = orjson.loads(encode_handoff([reading, reading]))
    document["groups"][0][2] = [0, 0]
    with pytest.raises(ValueError, match="hand-off"):
        decode_handoff(orjson.dumps(document))


def test_a_message_without_groups_is_refused() -> None:
    with pytest.raises(ValueError, match="hand-off"):
        decode_handoff(b'{"v": 2, "n": 0}')
