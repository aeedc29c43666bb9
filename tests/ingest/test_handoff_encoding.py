"""The grouped hand-off message (version 3): what the cluster's members send each other.

Readings are grouped by kind and channel on the wire, each payload as its validated fields,
and rebuilt on arrival without validating them again when the fields are this release's
model's. These check what that could break: every reading of every kind comes back equal,
field for field and type for type (generated readings, extras of any JSON); the order
handed off; payloads of another release validated; and that members of the previous
releases (versions 1 and 2) can still hand off to this one.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

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


def test_payloads_of_another_release_are_validated_on_arrival() -> None:
    # A sender whose model has a field this release's has not (a rolling upgrade): its
    # group is validated by this release's model, and a bad value is refused.
    reading = _reading(Kind.LIGHTING, "LMP-1", 0, Channel.TELEMETRY)
    document = orjson.loads(encode_handoff([reading]))
    group = document["groups"][0]
    group[5].append("colour_k")
    group[6][0]["colour_k"] = 3000
    payload = decode_handoff(orjson.dumps(document))[0].payload
    assert payload.__pydantic_extra__ == {"colour_k": 3000}  # an extra here
    group[6][0]["dim_pct"] = "bright"
    with pytest.raises(ValueError, match="dim_pct"):
        decode_handoff(orjson.dumps(document))


def test_a_payload_missing_a_field_is_validated_on_arrival() -> None:
    reading = _reading(Kind.TRUCK, "TRK-1", 0, Channel.TELEMETRY)
    document = orjson.loads(encode_handoff([reading, reading]))
    del document["groups"][0][6][1]["lat"]
    with pytest.raises(ValueError, match="lat"):
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
        decode_handoff(b'{"v": 3, "n": 0, "arrivals": []}')


def _v2_payloads(reading: Reading) -> bytes:
    """A payload as version 2 wrote it: a list of one, by pydantic."""
    model: Any = type(reading.payload)
    adapter: TypeAdapter[list[Any]] = TypeAdapter(list[model])
    return adapter.dump_json([reading.payload])


def test_a_version_2_hand_off_is_still_read() -> None:
    readings = [
        _reading(Kind.TRUCK, "TRK-1", 0, Channel.TELEMETRY),
        _reading(Kind.PARKING, "PRK-1", 0, Channel.EVENT),
    ]
    v2 = orjson.dumps(
        {
            "v": 2,
            "n": 2,
            "groups": [
                [
                    r.kind.value,
                    r.channel.value,
                    [place],
                    [r.device_id],
                    [r.received_at],
                    orjson.Fragment(_v2_payloads(r)),
                ]
                for place, r in enumerate(readings)
            ],
        }
    )
    assert decode_handoff(v2) == readings


# Generated readings: every kind, values drawn within the contract, optional fields left
# out or null, extra fields of any JSON (text with NUL, quotes, line separators, emoji;
# integers to the 64-bit limits), a few receipt times shared as one socket read shares one.
_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\\", '"', "\n", "\u2028", "设", "\U0001f600"]),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)
_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        _text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_text, children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def _payloads(draw: st.DrawFn, kind: Kind) -> Any:
    values: dict[str, Any] = {}
    for name, good in GOOD[kind].items():
        if isinstance(good, bool):
            values[name] = draw(st.booleans())
        elif isinstance(good, int | float):
            share = draw(st.floats(0, 1))
            values[name] = draw(st.sampled_from([good * share, round(good * share)]))
        else:
            values[name] = draw(st.sampled_from(["empty", "half", "full"]))
    if kind is Kind.LIGHTING:
        values["fault_code"] = draw(st.one_of(st.none(), _text.filter(lambda t: "\x00" not in t)))
    if kind is Kind.TRUCK:
        values["alarm_flags"] = draw(st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)))
    if kind is Kind.MANHOLE:
        values["water_level_cm"] = draw(st.one_of(st.none(), st.floats(0, 500)))
    if draw(st.booleans()):
        values["device_id"] = draw(st.sampled_from([None, "DEV-1"]))
    fields = PAYLOAD_MODELS[kind].model_fields
    extras = draw(st.dictionaries(_text.filter(lambda k: k not in fields), _json, max_size=3))
    ms = draw(st.integers(1_700_000_000_000, 1_900_000_000_000))
    return PAYLOAD_MODELS[kind].model_validate({**values, **extras, "ts": ms})


@st.composite
def _readings(draw: st.DrawFn) -> list[Reading]:
    arrivals = draw(st.lists(st.datetimes(timezones=st.just(UTC)), min_size=1, max_size=3))
    readings = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(list(Kind)))
        payload = draw(_payloads(kind))
        readings.append(
            Reading(
                kind,
                draw(st.sampled_from(["LMP-1", "TRK-2", "a:b.c_d-e"])),
                draw(st.sampled_from(list(Channel))),
                payload.ts,
                draw(st.sampled_from(arrivals)),
                payload,
            )
        )
    return readings


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings=_readings())
def test_every_reading_comes_back_as_it_was_handed_off(readings: list[Reading]) -> None:
    back = decode_handoff(encode_handoff(readings))

    assert back == readings
    for sent, got in zip(readings, back, strict=True):
        # Equal is not enough: the same types (a datetime, an enum, a float that was
        # an integer on the wire), the extras as extras, a model the rules can read.
        assert type(got.payload) is type(sent.payload)
        assert {k: type(v) for k, v in got.payload.__dict__.items()} == {
            k: type(v) for k, v in sent.payload.__dict__.items()
        }
        assert got.payload.__pydantic_extra__ == sent.payload.__pydantic_extra__
        assert got.payload.model_dump() == sent.payload.model_dump()
        assert got.received_at.tzinfo is not None
    # Receipt times shared by readings come back shared (the rules take one's timestamp
    # once for a run of readings holding the same object).
    assert len({id(r.received_at) for r in back}) == len({r.received_at for r in readings})
