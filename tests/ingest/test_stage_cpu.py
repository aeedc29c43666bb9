"""The writer counts the CPU time of decoding and of storing each batch, and what it handled."""

import pytest
from prometheus_client import CollectorRegistry

from hub.ingest.metrics import STAGES, IngestMetrics, StageCpu
from hub.ingest.pipeline import RawMessage
from tests.ingest.test_batch_gathering import NOW, RecordingSink, make_pipeline, message


def figures(metrics: IngestMetrics, stage: str) -> tuple[float, float]:
    cpu = metrics.registry.get_sample_value("hub_stage_cpu_seconds_total", {"stage": stage})
    items = metrics.registry.get_sample_value("hub_stage_items_total", {"stage": stage})
    assert cpu is not None
    assert items is not None
    return cpu, items


def test_a_batch_counts_its_messages_and_cpu_time_for_decode_and_store() -> None:
    sink = RecordingSink()
    metrics = IngestMetrics()
    pipeline = make_pipeline(sink, min_rows=1, max_wait_s=0.0, metrics=metrics)
    for i in range(100):
        pipeline.submit(message(i))
    pipeline.submit(RawMessage("city/parking/P-1/telemetry", b"{not json", NOW, 999))
    assert pipeline.flush() == 101
    metrics = pipeline._metrics
    decode_cpu, decoded = figures(metrics, "decode")
    store_cpu, stored = figures(metrics, "store")
    assert (decoded, stored) == (101, 101)  # the dead letter was decoded and stored too
    assert decode_cpu > 0
    assert store_cpu >= 0
    assert sink.sizes == [100]


def test_every_stage_is_shown_from_the_start_and_an_unknown_one_is_refused() -> None:
    registry = CollectorRegistry()
    stages = StageCpu(registry)
    for stage in STAGES:  # at zero, so a dashboard's rate() has a first point
        assert registry.get_sample_value("hub_stage_items_total", {"stage": stage}) == 0
    stages.add("rules", -0.001, 5)  # a clock step back is not negative CPU
    assert registry.get_sample_value("hub_stage_cpu_seconds_total", {"stage": "rules"}) == 0
    with pytest.raises(KeyError):
        stages.add("rule", 0.1, 1)
