"""What the hub says about its own ingest: the network thread, the writer, the lag."""

from datetime import UTC, datetime, timedelta

from hub.devices.batch import Batch
from hub.devices.decode import DecodeLimits
from hub.ingest.metrics import IngestMetrics
from hub.ingest.mqtt import MqttReceiver
from hub.ingest.pipeline import IngestPipeline, KindIndex, RawMessage
from hub.services.runtime import IngestStatus

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class CountingSink:
    """A sink that commits nothing: these tests never flush."""

    def write_batch(self, batch: Batch) -> int:
        return len(batch.readings)


def pipeline(clock_at: datetime) -> IngestPipeline:
    return IngestPipeline(
        sink=CountingSink(),
        kinds=KindIndex(lambda since: ({}, None), set, 60.0),
        root="city",
        limits=DecodeLimits(),
        metrics=IngestMetrics(),
        clock=lambda: clock_at,
    )


def receiver() -> MqttReceiver:
    """A receiver whose network thread was never started (no broker needed)."""
    return MqttReceiver(
        url="mqtt://127.0.0.1:1",
        client_id="health-test",
        root="city",
        on_message=lambda message: None,
    )


def test_a_network_thread_that_is_not_running_is_a_problem_and_never_connected() -> None:
    status = IngestStatus(receiver(), pipeline(NOW), max_lag_s=30)
    assert status.broker_connected() is False
    assert status.ingest_problems() == ["the MQTT network thread is not running"]


def test_lag_beyond_the_threshold_and_a_retrying_writer_are_problems() -> None:
    lagging = pipeline(NOW)
    lagging.submit(RawMessage("city/parking/P-1/telemetry", b"{}", NOW - timedelta(seconds=45), 1))
    lagging.write_error = "OperationalError: connection refused"
    problems = IngestStatus(receiver(), lagging, max_lag_s=30).ingest_problems()
    assert problems[1:] == [
        "the writer is retrying a batch: OperationalError: connection refused",
        "ingest lags 45 s behind (more than 30 s)",
    ]
    # Within the threshold and with a writer that succeeds, only the thread is reported.
    lagging.write_error = None
    assert IngestStatus(receiver(), lagging, max_lag_s=60).ingest_problems() == [
        "the MQTT network thread is not running"
    ]
