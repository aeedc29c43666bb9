"""Property-based fuzzing of topic routing and payload decoding: accept or reject, never crash."""

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.devices.batch import Batch
from hub.devices.decode import (
    DecodeError,
    DecodeLimits,
    Reading,
    RejectReason,
    decode_message,
)
from hub.devices.kinds import Kind
from tests.payload_examples import GOOD

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
REGISTRY = {f"{k.value}-1": k for k in Kind} | {"设备-1": Kind.PARKING}
LIMITS = DecodeLimits(max_payload_bytes=64 * 1024, max_batch=50)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
topics = st.one_of(
    st.sampled_from(
        [f"city/{k.value}/{k.value}-1/{c}" for k in Kind for c in ("telemetry", "event", "status")]
    ),
    st.builds("/".join, st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=7)),
    st.builds(
        lambda kind, dev: f"city/{kind}/{dev}/telemetry", st.text(max_size=10), st.text(max_size=70)
    ),
)


def _encode(value: Any) -> bytes:
    """JSON the way a sloppy device might send it: NaN and huge numbers included."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return repr(value).encode()


def _decode(topic: str, raw: bytes) -> object:
    """The decoded message, or the DecodeError itself: the only two outcomes allowed."""
    try:
        return decode_message(topic, raw, NOW, root="city", registry=REGISTRY, limits=LIMITS)
    except DecodeError as err:
        return err


def _check(topic: str, raw: bytes) -> None:
    outcome = _decode(topic, raw)
    if isinstance(outcome, DecodeError):
        assert isinstance(outcome.reason, RejectReason)
        assert outcome.detail
        return
    batch = Batch()
    batch.add(outcome)  # type: ignore[arg-type]
    for reading in batch.readings:
        assert isinstance(reading, Reading)
        assert reading.ts.tzinfo is not None
        assert REGISTRY[reading.device_id] is reading.kind


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=topics, value=json_value)
def test_any_json_on_any_topic_is_accepted_or_rejected_with_a_reason(
    topic: str, value: Any
) -> None:
    _check(topic, _encode(value))


@settings(max_examples=300, deadline=None)
@given(topic=topics, raw=st.binary(max_size=512))
def test_random_bytes_never_crash(topic: str, raw: bytes) -> None:
    _check(topic, raw)


kinds = st.sampled_from(list(Kind))


@settings(max_examples=300, deadline=None)
@given(
    kind=kinds,
    changes=st.dictionaries(
        st.sampled_from(
            sorted({f for fields in GOOD.values() for f in fields} | {"ts", "device_id"})
        ),
        json_value,
        max_size=4,
    ),
)
def test_mutated_valid_payloads(kind: Kind, changes: dict[str, Any]) -> None:
    payload = {"ts": NOW_MS, **GOOD[kind], **changes}
    _check(f"city/{kind.value}/{kind.value}-1/telemetry", _encode(payload))


def test_deep_nesting_and_a_megabyte_are_rejected_not_crashed() -> None:
    deep = _decode("city/parking/parking-1/telemetry", b"[" * 10_000 + b"]" * 10_000)
    assert isinstance(deep, DecodeError)
    assert deep.reason is RejectReason.INVALID_JSON
    big = b'{"ts": 1, "pad": "' + b"x" * (1024 * 1024) + b'"}'
    oversize = _decode("city/parking/parking-1/telemetry", big)
    assert isinstance(oversize, DecodeError)
    assert oversize.reason is RejectReason.OVERSIZE
    nested = {"ts": NOW_MS, **GOOD[Kind.PARKING], "x": [[[[[[[[[[1]]]]]]]]]]}
    _check("city/parking/parking-1/telemetry", orjson.dumps(nested))
