"""The writer loop decodes the next batch while the last one commits (HUB_DECODE_AHEAD), and
keeps their order either way.

Each test runs the pipeline's own loop (`IngestPipeline.run`) on its threads, with a sink
that holds or refuses a commit when told: the writing itself is the store's tests' (and
the system tests', on PostgreSQL); here what counts is what is committed, acknowledged and
handed to the rules, and in which order.
"""

import threading
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.devices.batch import Batch, BatchRejectedError, DeadLetter
from hub.devices.decode import Decoded
from hub.ingest.metrics import IngestMetrics
from hub.ingest.pipeline import IngestPipeline, RawMessage
from hub.settings import Settings
from tests.hub_process import wait_for
from tests.ingest.test_batch_gathering import make_pipeline, message, run_writer
from tests.ingest.test_batch_isolation import Acks, Seen

WAIT_S = 10.0


class GatedSink:
    """Commits batches, each only once the test opens the gate; or refuses them while told."""

    def __init__(self, *, gated: bool = False) -> None:
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.entered = threading.Event()
        self.refuse_attempts = 0  # the first this many attempts are refused
        self.batches: list[list[str]] = []  # each committed batch's readings, by device id
        self.attempts = 0

    def write_batch(self, batch: Batch) -> int:
        self.attempts += 1
        self.entered.set()
        if not self.gate.wait(WAIT_S):
            raise AssertionError("the test never opened the gate")
        if self.attempts <= self.refuse_attempts:
            raise BatchRejectedError("refused for the test")
        if batch.readings:
            self.batches.append([r.device_id for r in batch.readings])
        return len(batch.readings)


def decoded(metrics: IngestMetrics) -> float:
    value = metrics.registry.get_sample_value("hub_stage_items_total", {"stage": "decode"})
    return value or 0.0


def wired(
    sink: GatedSink, *, decode_ahead: bool = True
) -> tuple[IngestPipeline, IngestMetrics, Acks, Seen]:
    metrics = IngestMetrics()
    pipeline = make_pipeline(
        sink, min_rows=1, max_wait_s=0.0, metrics=metrics, decode_ahead=decode_ahead
    )
    acks, seen = Acks(), Seen()
    pipeline.set_acknowledger(acks)
    pipeline.add_observer(seen)
    return pipeline, metrics, acks, seen


def hold_first_batch(pipeline: IngestPipeline, sink: GatedSink, first: int, total: int) -> None:
    """Submit `first` messages, wait until their batch is held at the gate, then the rest."""
    for i in range(first):
        pipeline.submit(message(i))
    assert sink.entered.wait(WAIT_S)  # the first batch is committing, held at the gate
    for i in range(first, total):
        pipeline.submit(message(i))


def stop_writer(pipeline: IngestPipeline, stop: threading.Event, writer: threading.Thread) -> None:
    stop.set()
    pipeline.stop_waiting()
    writer.join(WAIT_S)
    assert not writer.is_alive()
    assert not any(t.name == "ingest-decoder" for t in threading.enumerate())


@pytest.mark.parametrize("decode_ahead", [True, False])
def test_the_next_batch_is_decoded_while_the_last_one_commits_when_decoding_ahead(
    decode_ahead: bool,
) -> None:
    sink = GatedSink(gated=True)
    pipeline, metrics, acks, seen = wired(sink, decode_ahead=decode_ahead)
    stop = threading.Event()
    writer = run_writer(pipeline, stop)
    try:
        hold_first_batch(pipeline, sink, 5, 12)
        if decode_ahead:
            wait_for(
                lambda: decoded(metrics) == 12, WAIT_S, "the second batch decoded during the commit"
            )
        else:
            time.sleep(0.2)  # twenty intervals: time enough to have decoded them, were it to
            assert decoded(metrics) == 5
            assert not any(t.name == "ingest-decoder" for t in threading.enumerate())
        assert acks.tokens == []  # nothing is acknowledged before its commit
        assert pipeline.pending == 12
        sink.gate.set()
        wait_for(lambda: pipeline.committed_messages == 12, WAIT_S, "both batches committed")
    finally:
        sink.gate.set()
        stop_writer(pipeline, stop, writer)
    assert [len(b) for b in sink.batches] == [5, 7]
    assert acks.tokens == list(range(12))
    assert [r.device_id for r in seen.readings] == [f"P-{i}" for i in range(12)]
    assert pipeline.pending == 0


@pytest.mark.parametrize(
    ("members", "setting", "expected"),
    [(1, None, True), (2, None, False), (1, False, False), (3, True, True)],
)
def test_a_hub_alone_decodes_ahead_and_a_cluster_member_does_not_unless_told(
    members: int, setting: bool | None, expected: bool
) -> None:
    hub_settings = Settings(cluster_members=members, mqtt_shared_group="hubs", decode_ahead=setting)
    assert hub_settings.decodes_ahead is expected


def test_a_batch_whose_commit_fails_unexpectedly_is_tried_again_before_the_next() -> None:
    # Refused, and its dead letters refused too (6 attempts for 3 messages: the batch, its
    # parts, the dead letters): the isolation gives up with an error the writer does not
    # expect. The same batch is tried again a second later, and the one decoded behind it
    # waits its turn.
    sink = GatedSink(gated=True)
    sink.refuse_attempts = 6
    pipeline, metrics, acks, seen = wired(sink)
    stop = threading.Event()
    writer = run_writer(pipeline, stop)
    try:
        hold_first_batch(pipeline, sink, 3, 6)
        wait_for(lambda: decoded(metrics) == 6, WAIT_S, "the second batch decoded ahead")
        sink.gate.set()
        wait_for(lambda: pipeline.committed_messages == 6, WAIT_S, "both batches committed")
    finally:
        sink.gate.set()
        stop_writer(pipeline, stop, writer)
    assert sink.attempts == 8  # 6 refused, then each batch once
    assert sink.batches == [["P-0", "P-1", "P-2"], ["P-3", "P-4", "P-5"]]
    assert acks.tokens == list(range(6))
    assert [r.device_id for r in seen.readings] == [f"P-{i}" for i in range(6)]


def test_a_batch_whose_decoding_fails_unexpectedly_is_taken_again() -> None:
    # The decoder's own failure (each message's is a dead letter; this is the batch's):
    # the messages go back to the buffer's untaken part, and the next take has them.
    sink = GatedSink()
    pipeline, _, acks, seen = wired(sink)
    decode_all = pipeline._decode_all
    calls = []

    def failing_once(messages: Sequence[RawMessage]) -> list[Decoded | DeadLetter | None]:
        calls.append(len(messages))
        if len(calls) == 1:
            raise RuntimeError("a decoder bug, for the test")
        return decode_all(messages)

    pipeline._decode_all = failing_once  # type: ignore[method-assign]
    stop = threading.Event()
    for i in range(5):
        pipeline.submit(message(i))
    writer = run_writer(pipeline, stop)
    try:
        wait_for(lambda: pipeline.committed_messages == 5, WAIT_S, "the batch committed")
    finally:
        stop_writer(pipeline, stop, writer)
    assert calls == [5, 5]
    assert sink.batches == [[f"P-{i}" for i in range(5)]]
    assert acks.tokens == list(range(5))
    assert [r.device_id for r in seen.readings] == [f"P-{i}" for i in range(5)]


def test_a_stop_with_a_batch_decoded_ahead_commits_it_and_the_rest() -> None:
    sink = GatedSink(gated=True)
    pipeline, metrics, acks, _ = wired(sink)
    stop = threading.Event()
    writer = run_writer(pipeline, stop)
    hold_first_batch(pipeline, sink, 4, 9)
    wait_for(lambda: decoded(metrics) == 9, WAIT_S, "the second batch decoded ahead")
    for i in range(9, 20):
        pipeline.submit(message(i))  # not yet taken when the stop comes
    stop.set()
    pipeline.stop_waiting()
    sink.gate.set()
    writer.join(WAIT_S)
    assert not writer.is_alive()
    assert acks.tokens == list(range(20))
    assert pipeline.pending == 0
    assert [d for batch in sink.batches for d in batch] == [f"P-{i % 100}" for i in range(20)]


@settings(max_examples=20, deadline=None)
@given(
    bursts=st.lists(st.integers(1, 300), min_size=1, max_size=8),
    commit_ms=st.integers(0, 5),
    decode_ahead=st.booleans(),
)
def test_messages_are_committed_once_each_and_in_order_whatever_the_pace(
    bursts: list[int], commit_ms: int, decode_ahead: bool
) -> None:
    class SlowSink(GatedSink):
        def write_batch(self, batch: Batch) -> int:
            time.sleep(commit_ms / 1000)
            return super().write_batch(batch)

    sink = SlowSink()
    pipeline, _, acks, seen = wired(sink, decode_ahead=decode_ahead)
    stop = threading.Event()
    writer = run_writer(pipeline, stop)
    total = 0
    try:
        for size in bursts:
            for _ in range(size):
                pipeline.submit(message(total % 100))
                total += 1
            time.sleep(0.002)
        wait_for(lambda: pipeline.committed_messages == total, WAIT_S, "every message committed")
    finally:
        stop_writer(pipeline, stop, writer)
    assert acks.tokens == [i % 100 for i in range(total)]
    assert [r.device_id for r in seen.readings] == [f"P-{i % 100}" for i in range(total)]
    assert sum(len(b) for b in sink.batches) == total
