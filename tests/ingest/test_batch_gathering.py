"""Under a light, steady load the writer waits for a fuller batch, up to the latency cap."""

import threading
from datetime import UTC, datetime, timedelta

import orjson

from hub.devices.batch import Batch, BatchSink
from hub.devices.decode import DecodeLimits
from hub.devices.kinds import Kind
from hub.ingest.metrics import IngestMetrics
from hub.ingest.pipeline import IngestPipeline, KindIndex, RawMessage

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HOUR_S = 3600.0


class RecordingSink:
    """Keeps the size of every batch it is given (the store's own tests cover the writing)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def write_batch(self, batch: Batch) -> int:
        self.sizes.append(len(batch.readings))
        return len(batch.readings)


def make_pipeline(
    sink: BatchSink,
    *,
    min_rows: int,
    max_wait_s: float,
    clock_at: datetime = NOW,
    metrics: IngestMetrics | None = None,
    decode_ahead: bool = True,
) -> IngestPipeline:
    devices = {f"P-{i}": Kind.PARKING for i in range(100)}
    return IngestPipeline(
        sink=sink,
        kinds=KindIndex(lambda since: (devices, None), lambda: set(devices), 60.0),
        root="city",
        limits=DecodeLimits(),
        metrics=metrics or IngestMetrics(),
        batch_interval_s=0.01,
        batch_min_rows=min_rows,
        batch_max_wait_s=max_wait_s,
        decode_ahead=decode_ahead,
        clock=lambda: clock_at,
    )


def message(i: int, received_at: datetime = NOW) -> RawMessage:
    body = orjson.dumps({"ts": (NOW - timedelta(seconds=i)).isoformat(), "occupied": True})
    return RawMessage(f"city/parking/P-{i}/telemetry", body, received_at, i)


def run_writer(pipeline: IngestPipeline, stop: threading.Event) -> threading.Thread:
    writer = threading.Thread(target=pipeline.run, args=(stop,))
    writer.start()
    return writer


def wait_committed(pipeline: IngestPipeline, count: int) -> None:
    done = threading.Event()
    while pipeline.committed_messages < count:
        done.wait(0.01)


def test_messages_trickling_in_are_committed_as_one_batch_once_enough_wait() -> None:
    # The clock stands still, so the cap of an hour is never reached: only the count ends
    # the wait, and the messages submitted one by one must make one batch.
    sink = RecordingSink()
    pipeline = make_pipeline(sink, min_rows=40, max_wait_s=HOUR_S)
    stop = threading.Event()
    writer = run_writer(pipeline, stop)
    try:
        for i in range(40):
            pipeline.submit(message(i))
            threading.Event().wait(0.001)  # a steady trickle, not one burst
        wait_committed(pipeline, 40)
    finally:
        stop.set()
        pipeline.stop_waiting()
        writer.join(30)
    assert sink.sizes == [40]


def test_a_small_batch_whose_oldest_message_reached_the_cap_is_committed() -> None:
    # Received two hours before the clock's now: already past the cap of an hour.
    sink = RecordingSink()
    pipeline = make_pipeline(
        sink, min_rows=1_000, max_wait_s=HOUR_S, clock_at=NOW + timedelta(hours=2)
    )
    stop = threading.Event()
    for i in range(3):
        pipeline.submit(message(i))
    writer = run_writer(pipeline, stop)
    try:
        wait_committed(pipeline, 3)
    finally:
        stop.set()
        pipeline.stop_waiting()
        writer.join(30)
    assert sink.sizes == [3]


def test_a_stop_while_gathering_commits_what_waits() -> None:
    sink = RecordingSink()
    pipeline = make_pipeline(sink, min_rows=1_000, max_wait_s=HOUR_S)
    stop = threading.Event()
    for i in range(5):
        pipeline.submit(message(i))
    writer = run_writer(pipeline, stop)
    stop.set()
    pipeline.stop_waiting()
    writer.join(30)
    assert not writer.is_alive()
    assert sink.sizes == [5]
    assert pipeline.pending == 0


def test_without_a_minimum_every_interval_commits_what_came() -> None:
    # The default (batch_min_rows 1): nothing is held back beyond the interval.
    sink = RecordingSink()
    pipeline = make_pipeline(sink, min_rows=1, max_wait_s=HOUR_S)
    stop = threading.Event()
    pipeline.submit(message(0))
    writer = run_writer(pipeline, stop)
    try:
        wait_committed(pipeline, 1)
    finally:
        stop.set()
        pipeline.stop_waiting()
        writer.join(30)
    assert sink.sizes == [1]
