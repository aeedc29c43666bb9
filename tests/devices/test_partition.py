"""Cluster ownership and the hand-off codec (pure)."""

from collections import Counter
from datetime import UTC, datetime

import pytest

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.partition import (
    Seat,
    decode_handoff,
    encode_handoff,
    handoff_topic,
    owner_of,
    partition_key,
)
from hub.devices.payloads import PAYLOAD_MODELS
from tests.payload_examples import GOOD


def test_a_group_and_its_members_have_one_owner() -> None:
    lamps = [f"LMP-{i:05d}" for i in range(200)]
    for members in (2, 3, 5):
        owners = {owner_of(partition_key(lamp, "CAB-0042"), members) for lamp in lamps}
        assert owners == {owner_of(partition_key("CAB-0042", None), members)}


def test_ownership_is_the_same_in_every_process_and_spread_evenly() -> None:
    # crc32, not Python's per-process salted hash: these values hold on any machine.
    assert [owner_of(k, 4) for k in ("MH-000001", "TRK-0001", "CAB-0001")] == [
        owner_of(k, 4) for k in ("MH-000001", "TRK-0001", "CAB-0001")
    ]
    assert owner_of("MH-000001", 1) == 0
    spread = Counter(owner_of(f"PRK-{i:06d}", 3) for i in range(30_000))
    assert set(spread) == {0, 1, 2}
    assert min(spread.values()) > 9_000


def test_a_cluster_has_members() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        owner_of("MH-1", 0)


def test_hand_off_topic_is_outside_the_device_tree() -> None:
    assert handoff_topic("city", "hubs", 1) == "hub/city/hubs/rules/1"


@pytest.mark.parametrize("kind", list(Kind))
def test_readings_survive_the_hand_off(kind: Kind) -> None:
    ts = datetime(2026, 11, 21, 3, 4, 5, 678_000, tzinfo=UTC)
    payload = PAYLOAD_MODELS[kind].model_validate(
        {**GOOD[kind], "ts": ts.isoformat(), "vendor_extra": {"fw": "1.2"}}
    )
    reading = Reading(
        kind=kind,
        device_id="DEV-1",
        channel=Channel.EVENT if kind is Kind.PARKING else Channel.TELEMETRY,
        ts=ts,
        received_at=datetime(2026, 11, 21, 3, 4, 6, tzinfo=UTC),
        payload=payload,
    )
    assert decode_handoff(encode_handoff([reading, reading])) == [reading, reading]


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"v": 99, "readings": []}'])
def test_a_foreign_message_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="hand-off"):
        decode_handoff(raw)


def test_a_seat_judges_what_it_owns() -> None:
    seats = [Seat(3, m) for m in range(3)]
    for device_id, parent in [("LMP-1", "CAB-7"), ("CAB-7", None), ("MH-9", None)]:
        judges = [s for s in seats if s.judges(device_id, parent)]
        assert len(judges) == 1
        assert judges[0].member == seats[0].owner(device_id, parent)
    assert Seat().judges("anything", None)
