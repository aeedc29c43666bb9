"""The batch writer against a real PostgreSQL: COPY, idempotence, dead letters, statuses."""

from datetime import UTC, datetime, timedelta

import orjson
import psycopg

from hub.devices.batch import Batch, DeadLetter
from hub.devices.decode import DecodeLimits, RejectReason, decode_message
from hub.devices.kinds import Kind
from hub.store.telemetry import TelemetryWriter, fetch_latest, fetch_readings
from tests.payload_examples import example

NOW = datetime.now(UTC).replace(microsecond=0)
REGISTRY = {f"{k.value}-1": k for k in Kind}


def readings_batch(offset_s: int = 0) -> Batch:
    batch = Batch()
    for kind in Kind:
        ts_ms = int((NOW - timedelta(seconds=60 - offset_s)).timestamp() * 1000)
        decoded = decode_message(
            f"city/{kind.value}/{kind.value}-1/telemetry",
            orjson.dumps(example(kind, ts_ms, vendor_field="x")),
            NOW,
            root="city",
            registry=REGISTRY,
            limits=DecodeLimits(),
        )
        batch.add(decoded)
    return batch


def test_batch_of_every_kind_round_trips(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        writer = TelemetryWriter(conn)
        assert writer.write_batch(readings_batch()) == len(Kind)
        truck = fetch_latest(conn, Kind.TRUCK, "truck-1")
        assert truck is not None
        assert truck["load"] == "full"
        assert truck["extra"] == {"vendor_field": "x"}
        lamp = fetch_readings(conn, Kind.LIGHTING, "lighting-1", NOW - timedelta(hours=1), NOW, 10)
        assert len(lamp) == 1
        assert lamp[0]["on"] is True
        assert abs(lamp[0]["voltage_v"] - 221.5) < 0.01


def test_redelivered_batch_is_stored_once(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        writer = TelemetryWriter(conn)
        batch = readings_batch()
        assert writer.write_batch(batch) == len(Kind)
        assert writer.write_batch(batch) == 0
        # The same reading twice inside one batch is also stored once.
        doubled = Batch(readings=batch.readings + batch.readings)
        assert writer.write_batch(doubled) == 0
        row = conn.execute("SELECT count(*) FROM telemetry_manhole").fetchone()
        assert row is not None
        assert row[0] == 1


def test_dead_letters_keep_raw_bytes_and_reason(database_url: str) -> None:
    raw = b"\x00\xff not json \x00"
    with psycopg.connect(database_url, autocommit=True) as conn:
        TelemetryWriter(conn).write_batch(
            Batch(
                dead_letters=[
                    DeadLetter.of(
                        "city/x/y/telemetry", raw, RejectReason.UNKNOWN_KIND, "kind x", NOW
                    )
                ]
            )
        )
        row = conn.execute("SELECT topic, payload, reason, detail FROM dead_letters").fetchone()
    assert row is not None
    assert (row[0], bytes(row[1]), row[2], row[3]) == (
        "city/x/y/telemetry",
        raw,
        "unknown_kind",
        "kind x",
    )
