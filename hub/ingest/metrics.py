"""Prometheus metrics of the ingest path, kept in a registry the API exposes."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
            "Time to decode and commit one batch",
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
