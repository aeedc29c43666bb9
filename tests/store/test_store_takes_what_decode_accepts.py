"""What decoding accepts, the database stores: generated payloads aimed at the write.

A message that passes decoding and then fails the write is what once stopped the city's
ingest. Hypothesis generates readings, command acks and statuses with hostile strings,
numbers at every bound, extra fields of every JSON shape; each one the decoder accepts is
written through the real writer into a real PostgreSQL, and must be stored.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.devices.batch import Batch
from hub.devices.decode import DecodeError, DecodeLimits, decode_message
from hub.devices.kinds import Kind
from hub.devices.payloads import PAYLOAD_MODELS
from hub.store.telemetry import TelemetryWriter
from tests.payload_examples import GOOD

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
NOW_MS = int(NOW.timestamp() * 1000)
REGISTRY = {f"{k.value}-1": k for k in Kind}
LIMITS = DecodeLimits()

# Text with what databases choke on: NUL, control characters, astral and CJK characters.
hostile_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\x01", "\\", "'", '"', "\n", "设", "\U0001f600", "\u2028"]),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)
# Numbers at and past every bound a column or a JSON number could have.
edge_numbers = st.one_of(
    st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**31, 2**53 + 1, 2**63 - 1, 2**64 - 1]),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_leaf = st.one_of(st.none(), st.booleans(), edge_numbers, hostile_text)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=40,
)


@st.composite
def reading_payloads(draw: st.DrawFn) -> tuple[Kind, dict[str, Any]]:
    """A reading of some kind: contract fields kept or pushed to edges, plus extras."""
    kind = draw(st.sampled_from(list(Kind)))
    payload: dict[str, Any] = {"ts": NOW_MS - draw(st.integers(0, 86_400_000)), **GOOD[kind]}
    for name in PAYLOAD_MODELS[kind].model_fields:
        if name in ("ts", "device_id", "kind") or not draw(st.booleans()):
            continue
        payload[name] = draw(st.one_of(edge_numbers, hostile_text, st.booleans()))
    extras = draw(st.dictionaries(hostile_text, json_value, max_size=4))
    payload.update({k: v for k, v in extras.items() if k not in payload})
    return kind, payload


@pytest.fixture
def writer_conn(database_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for device_id, kind in REGISTRY.items():
            conn.execute(
                "INSERT INTO devices (device_id, kind, lat, lon) VALUES (%s, %s, 31.3, 120.6)",
                (device_id, kind.value),
            )
        yield conn


def decoded(topic: str, payload: object) -> Batch | None:
    """The batch a payload decodes to, or None when the decoder refuses it."""
    try:
        raw = orjson.dumps(payload)
    except TypeError:
        return None  # not JSON (orjson refuses lone surrogates): cannot be sent as such
    batch = Batch()
    try:
        batch.add(decode_message(topic, raw, NOW, root="city", registry=REGISTRY, limits=LIMITS))
    except DecodeError:
        return None
    return batch


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(reading=reading_payloads())
def test_every_reading_decoding_accepts_is_stored(
    writer_conn: psycopg.Connection[tuple[Any, ...]], reading: tuple[Kind, dict[str, Any]]
) -> None:
    kind, payload = reading
    batch = decoded(f"city/{kind.value}/{kind.value}-1/telemetry", payload)
    if batch is None:
        return
    TelemetryWriter(writer_conn).write_batch(batch)  # raises if the store refuses it
    stored = writer_conn.execute(
        f"SELECT count(*) FROM telemetry_{kind.value} WHERE device_id = %s AND ts = %s",
        (f"{kind.value}-1", batch.readings[0].ts),
    ).fetchone()
    assert stored is not None
    assert stored[0] == 1


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    command_id=hostile_text,
    detail=st.one_of(st.none(), hostile_text),
    extras=st.dictionaries(hostile_text, json_value, max_size=3),
    state=st.one_of(st.sampled_from(["online", "offline"]), hostile_text),
)
def test_every_ack_and_status_decoding_accepts_is_stored(
    writer_conn: psycopg.Connection[tuple[Any, ...]],
    command_id: str,
    detail: str | None,
    extras: dict[str, Any],
    state: str,
) -> None:
    ack = {**extras, "ts": NOW_MS, "command_id": command_id, "result": "ok", "detail": detail}
    status = {**extras, "state": state, "ts": NOW_MS}
    for topic, payload in (
        ("city/lighting/lighting-1/cmd/ack", ack),
        ("city/parking/parking-1/status", status),
    ):
        batch = decoded(topic, payload)
        if batch is not None:
            TelemetryWriter(writer_conn).write_batch(batch)
