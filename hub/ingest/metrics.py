"""Prometheus metrics of the ingest path, kept in a registry the API exposes."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The stages of the hot path whose CPU time is counted (docs/scaling.md, "what to watch"):
# on the decoder's and the writer's threads, decoding a batch and committing it; on the
# rules' thread, judging readings, storing and publishing the alarm changes, handing
# readings to their owners in a cluster, and the clock's work; on the network thread,
# reading back what was handed in.
STAGES = ("decode", "store", "rules", "alarms", "hand_off", "clock", "hand_in")


class StageCpu:
    """CPU time of each stage of the hot path and the messages or readings it handled.

    The rate of one over the other is a stage's CPU per reading, what a profile under the
    hub's own load would show (issue 23: at a steady load each reading cost more than in a
    flood, in every stage). Times are the working thread's own CPU (`time.thread_time`),
    taken once per batch, not per reading.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        seconds = Counter(
            "hub_stage_cpu_seconds",
            "CPU time of a stage of the hot path (its thread's own, per batch)",
            ["stage"],
            registry=registry,
        )
        items = Counter(
            "hub_stage_items",
            "What a stage handled: messages (decode, store), readings (rules, hand_off,"
            " hand_in), alarm signals (alarms), ticks (clock)",
            ["stage"],
            registry=registry,
        )
        # Children bound once: a labels() lookup per batch and stage is a lock and a dict.
        self._children = {stage: (seconds.labels(stage), items.labels(stage)) for stage in STAGES}

    def add(self, stage: str, seconds: float, items: int) -> None:
        """Count a stage's CPU time and what it handled (KeyError for an unknown stage)."""
        cpu, handled = self._children[stage]
        cpu.inc(max(0.0, seconds))
        handled.inc(items)


class IngestMetrics:
    """Counters and histograms of received, stored and rejected messages."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.received = Counter(
            "hub_messages_received",
            "MQTT messages received (brought up to date with each committed batch)",
            registry=self.registry,
        )
        self.stored = Counter(
            "hub_readings_stored",
            "Readings committed (new or redelivered)",
            ["kind"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "hub_readings_duplicate",
            "Readings already stored (redeliveries)",
            registry=self.registry,
        )
        self.rejected = Counter(
            "hub_messages_rejected",
            "Messages kept as dead letters",
            ["reason"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "hub_batch_size",
            "Messages per committed batch",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000),
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "hub_batch_write_seconds",
            "Time from taking a batch to its commit: decoding, its turn, the commit",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.write_failures = Counter(
            "hub_batch_write_failures", "Batches that failed to commit", registry=self.registry
        )
        self.pending = Gauge(
            "hub_messages_pending",
            "Messages received but not yet committed",
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "hub_ingest_lag_seconds",
            "Age of the oldest received message not yet committed",
            registry=self.registry,
        )
        self.broker_connected = Gauge(
            "hub_broker_connected", "1 when connected to the broker", registry=self.registry
        )
        self.stages = StageCpu(self.registry)
