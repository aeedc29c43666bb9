"""The batch writer against a real PostgreSQL: COPY, idempotence, dead letters, statuses."""

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.devices.batch import Batch, DeadLetter
from hub.devices.decode import DecodeLimits, RejectReason, decode_message
from hub.devices.kinds import Kind
from hub.store.telemetry import TABLES, TelemetryWriter, fetch_latest, fetch_readings
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


def test_a_batch_with_a_redelivery_is_merged_and_the_next_clean_one_copied_straight(
    database_url: str,
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        writer = TelemetryWriter(conn)
        first = readings_batch()
        assert writer.write_batch(first) == len(Kind)
        assert writer.straight
        # One new reading of each kind beside the redelivered ones: only the new are counted.
        mixed = Batch(readings=first.readings + readings_batch(offset_s=1).readings)
        assert writer.write_batch(mixed) == len(Kind)
        assert not writer.straight  # merged, and it held duplicates: the next one merges too
        assert writer.write_batch(readings_batch(offset_s=2)) == len(Kind)
        assert writer.straight  # that one held none
        assert writer.write_batch(readings_batch(offset_s=3)) == len(Kind)
        for kind in Kind:
            row = conn.execute(f"SELECT count(*) FROM telemetry_{kind.value}").fetchone()
            assert row == (4,)


@pytest.fixture
def writer_conn(database_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


# A spot's reports: (second, occupied) pairs; a pair may come again (a redelivery) or come
# with the other `occupied` at the same second (a device repeating a timestamp).
spot_reports = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 9), st.booleans()), min_size=1, max_size=12
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(spot_reports, min_size=1, max_size=5))
def test_generated_batches_store_each_reading_once_and_the_newest_report_per_spot(
    writer_conn: psycopg.Connection[tuple[Any, ...]],
    batches: list[list[tuple[int, int, bool]]],
) -> None:
    """Whatever mixes of new, redelivered and repeated readings the batches hold, each
    (device, ts) is stored once, in the version first written, the counts say how many
    were new, and each spot's latest row is its stored report with the newest ts."""
    conn = writer_conn
    conn.execute("TRUNCATE telemetry_parking, telemetry_lighting, parking_spot_latest")
    writer = TelemetryWriter(conn)
    base = NOW - timedelta(minutes=5)
    first: dict[tuple[str, int], bool] = {}
    for reports in batches:
        batch = Batch()
        for spot, second, occupied in reports:
            ts_ms = int((base + timedelta(seconds=second)).timestamp() * 1000)
            for kind, device in ((Kind.PARKING, f"parking-{spot}"), (Kind.LIGHTING, "lighting-1")):
                payload = example(kind, ts_ms)
                if kind is Kind.PARKING:
                    payload["occupied"] = occupied
                batch.add(
                    decode_message(
                        f"city/{kind.value}/{device}/telemetry",
                        orjson.dumps(payload),
                        NOW,
                        root="city",
                        registry={device: kind},
                        limits=DecodeLimits(),
                    )
                )
        new = {(f"parking-{spot}", second) for spot, second, _ in reports} - set(first)
        new_lamp = {second for _, second, _ in reports} - {s for d, s in first if d == "lamp"}
        for spot, second, occupied in reports:
            first.setdefault((f"parking-{spot}", second), occupied)
            first.setdefault(("lamp", second), True)
        assert writer.write_batch(batch) == len(new) + len(new_lamp)
    stored = {
        (device, int((ts - base).total_seconds())): occupied
        for device, ts, occupied in conn.execute(
            "SELECT device_id, ts, occupied FROM telemetry_parking"
        ).fetchall()
    }
    assert stored == {key: value for key, value in first.items() if key[0] != "lamp"}
    lamps = conn.execute("SELECT count(*) FROM telemetry_lighting").fetchone()
    assert lamps == (len({key for key in first if key[0] == "lamp"}),)
    newest: dict[str, tuple[int, bool]] = {}
    for (device, second), occupied in stored.items():
        if device not in newest or newest[device][0] < second:
            newest[device] = (second, occupied)
    latest = {
        device: (int((ts - base).total_seconds()), occupied)
        for device, ts, occupied in conn.execute(
            "SELECT device_id, ts, occupied FROM parking_spot_latest"
        ).fetchall()
    }
    assert latest == newest


@pytest.mark.parametrize("kind", [Kind.LIGHTING, Kind.PARKING])
def test_a_batch_deadlocked_with_another_writer_is_merged(database_url: str, kind: Kind) -> None:
    """Another member's transaction holds one of the batch's rows and then waits for one the
    batch wrote first: PostgreSQL breaks the deadlock by failing the batch's COPY (parking's:
    the insert from its stage; it waited first), and the writer merges the batch instead of
    failing it."""
    first, second = readings_batch(offset_s=1), readings_batch(offset_s=2)
    kind_first = [r for r in first.readings if r.kind is kind]
    kind_second = [r for r in second.readings if r.kind is kind]
    outcome: dict[str, object] = {}
    with (
        psycopg.connect(database_url, autocommit=True) as conn,
        psycopg.connect(database_url) as other,
    ):
        other_writer = TelemetryWriter(other)
        other.execute("SET deadlock_timeout = '10s'")  # the batch's backend detects it
        other_writer._copy_kind(TABLES[kind], kind_second)  # holds the second row

        def write() -> None:
            try:
                outcome["inserted"] = TelemetryWriter(conn).write_batch(
                    Batch(readings=kind_first + kind_second)
                )
            except Exception as err:  # noqa: BLE001 - reported below
                outcome["error"] = err

        batch_pid = conn.info.backend_pid
        conn.execute("SET deadlock_timeout = '2s'")  # the other writer has 2 s to wait too
        writer = threading.Thread(target=write)
        writer.start()
        # On once the batch has written its first row and waits for the second. (A fixed
        # sleep could lose the race on a loaded machine: the batch's one deadlock check, a
        # deadlock_timeout after it began to wait, found no cycle yet, and the other
        # writer's check found it 10 s later.)
        with psycopg.connect(database_url, autocommit=True) as watch:
            deadline = time.monotonic() + 30
            waiting = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
            while watch.execute(waiting, (batch_pid,)).fetchone() != ("Lock",):
                assert time.monotonic() < deadline, "the batch never waited for the held row"
                time.sleep(0.01)
        # A writer writes a kind once per transaction; here twice: parking's stage
        # (emptied at commit) must hold this call's reports only.
        other.execute(f"DELETE FROM stage_{kind.value}")
        other_writer._copy_kind(TABLES[kind], kind_first)  # waits for the first
        other.commit()
        writer.join(timeout=30)
        assert "error" not in outcome, outcome
        rows = conn.execute(f"SELECT count(*) FROM telemetry_{kind.value}").fetchone()
    assert rows == (2,)
    assert outcome["inserted"] == 0  # merged: both rows were the other writer's by then
