"""The `run` composition: one process with MQTT ingest, the writer, the rules and the API."""

import gc
import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType

import uvicorn
from prometheus_client.process_collector import ProcessCollector

from hub import native
from hub.api.access import AccessConfig
from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.api.secure import secure_app
from hub.devices.kinds import Kind
from hub.ingest.device_commands import MqttCommandSender
from hub.ingest.feed import document_feed
from hub.ingest.metrics import IngestMetrics
from hub.ingest.mqtt import MqttReceiver
from hub.ingest.outbound import MqttOutbound
from hub.ingest.pipeline import IdsFetch, IngestPipeline, KindIndex, KindIndexFetch
from hub.services.alarm_flow import AlarmServices
from hub.services.lighting import LightingServices
from hub.services.manholes import ManholeCommandService
from hub.services.os_threads import ThreadCpuCollector, name_os_threads
from hub.settings import Settings
from hub.store.access import AccessStore
from hub.store.database import Database, SchemaNotReadyError, bounded_wait
from hub.store.lease import LeaderLease
from hub.store.storage import StorageMode
from hub.store.telemetry import ReconnectingWriter

log = logging.getLogger(__name__)


class IngestStatus:
    """RuntimeStatus for the API, read from the live receiver and pipeline."""

    def __init__(
        self, receiver: MqttReceiver, pipeline: IngestPipeline, max_lag_s: float = 30.0
    ) -> None:
        self._receiver = receiver
        self._pipeline = pipeline
        self._max_lag_s = max_lag_s

    def broker_connected(self) -> bool:
        """Whether the MQTT client is connected."""
        return self._receiver.connected

    def ingest_lag_s(self) -> float:
        """Age of the oldest uncommitted message."""
        return self._pipeline.lag_s()

    def ingest_pending(self) -> int:
        """Messages not yet committed."""
        return self._pipeline.pending

    def ingest_problems(self) -> list[str]:
        """The network thread, the broker connection, the writer and the lag, as words."""
        problems: list[str] = []
        if not self._receiver.running():
            problems.append("the MQTT network thread is not running")
        elif not self._receiver.connected:
            problems.append("not connected to the broker")
        error = self._pipeline.write_error
        if error is not None:
            problems.append(f"the writer is retrying a batch: {error[:300]}")
        lag_s = self._pipeline.lag_s()
        if lag_s > self._max_lag_s:
            problems.append(f"ingest lags {lag_s:.0f} s behind (more than {self._max_lag_s:g} s)")
        return problems


# The writer refreshes the registry between batches: with PostgreSQL away it must not queue
# for a pooled connection (30 s) instead of retrying its batch, where /health can see it.
REGISTRY_WAIT_S = 1.0


def registry_fetchers(db: Database, wait_s: float) -> tuple[KindIndexFetch, IdsFetch]:
    """The registry reads of the ingest writer, each waiting at most `wait_s` for the pool."""

    def fetch_changes(since: datetime | None) -> tuple[dict[str, Kind], datetime | None]:
        with bounded_wait(wait_s):
            return db.fetch_kind_index(since)

    def fetch_ids() -> set[str]:
        with bounded_wait(wait_s):
            return db.fetch_all_ids()

    return fetch_changes, fetch_ids


def _always() -> bool:
    return True


# The cyclic collector's young-generation threshold while the hub runs (CPython's is 700).
YOUNG_COLLECTION_THRESHOLD = 200_000


def tune_collector() -> tuple[int, int, int]:
    """Collect the young generation every 200,000 allocations instead of every 700.

    Each message allocates a dozen tracked objects (its payload model, dicts, the reading)
    that live until its batch is judged. CPython counts tracked objects allocated less those
    freed, and a young collection walks every young object still alive. With the default
    threshold the collector ran every ~60 messages: measured on bench_ingest's mix, decoding
    took 10.6 µs per message with it and 6.3 µs with 50,000 (5.4 µs with no collector at
    all). Under a steady load the count stays under 50,000 (15,000 msg/s for 40 s: no
    collection at all, the count between 6,000 and 40,000 and not drifting: the hub makes
    next to no cyclic garbage). At full speed, or catching up a backlog, it does not: the
    messages waiting in the receive window, the writer's batch and the rules' queue are
    several hundred thousand live objects, and with 50,000 the collector walked them 26
    times per 200,000 messages, 3.6 µs per message of the hub's CPU (gc callbacks, one
    hub at full speed; issue 23, docs/performance.md); with 200,000, twice, 0.5 µs. Cycles
    are still collected, after 200,000 allocations at most (tens of megabytes); the older
    generations keep their ratios.
    """
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
    return gc.get_threshold()


def freeze_heap() -> int:
    """Collect, then move every surviving object out of the cyclic collector's sight.

    The registry, the rule engine's tables and the compiled schemas are a few hundred
    thousand objects that live as long as the process. CPython's full collection walked
    all of them every few seconds under load, finding nothing: 90 ms pauses every 3 s
    with 20,000 devices at 5,000 msg/s (bench_latency, gc callbacks), the largest part of
    the publish → alarm p99. Frozen, a full collection took 2 ms. Reference counting
    still frees frozen objects; only a reference cycle among them would outlive its use,
    which the collection before each freeze keeps to what was built since the last one.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class HubProcess:
    """Builds and runs every part of a hub process; stops them in order on a signal."""

    def __init__(self, settings: Settings, *, api_enabled: bool = True) -> None:
        self.settings = settings
        self.api_enabled = api_enabled
        self.stop = threading.Event()

    def _retention_loop(self, db: Database, mode: StorageMode, on_duty: Callable[[], bool]) -> None:
        while not self.stop.wait(5.0):
            if not on_duty():
                continue
            try:
                deleted = db.enforce_retention(mode)
            except Exception:
                log.exception("retention pass failed; will retry")
                continue
            if any(deleted.values()):
                log.info("retention removed %s", deleted)
            self.stop.wait(3600.0)

    def _heap_loop(self) -> None:
        """Freeze again once the devices have reported (their rule state exists), then hourly."""
        delay_s = 60.0
        while not self.stop.wait(delay_s):
            log.debug("heap: %d objects frozen", freeze_heap())
            delay_s = 3600.0

    def run(self) -> int:
        """Run until SIGINT or SIGTERM; flush what was accepted before exiting."""
        name_os_threads()  # before the first thread (the database pool's workers)
        settings = self.settings
        db = Database(settings.database_url, max_size=10)
        db.open()
        try:
            mode = db.check_schema_current()
        except SchemaNotReadyError as err:
            log.error("%s", err)  # noqa: TRY400 - the message says what to do; no traceback
            db.close()
            return 2
        log.info("storage mode: %s", mode)
        log.info("hot modules: %s", native.STATUS)
        lease: LeaderLease | None = None
        on_duty: Callable[[], bool] = _always
        if settings.cluster_members > 1:
            log.info(
                "cluster member %d of %d, sharing the stream as %r",
                settings.cluster_member,
                settings.cluster_members,
                settings.mqtt_shared_group,
            )
            lease = LeaderLease(settings.database_url)
            lease.start()
            on_duty = lease.held

        metrics = IngestMetrics()
        # The process's CPU and memory, and each thread's CPU: which stage is at its core.
        ProcessCollector(registry=metrics.registry)
        metrics.registry.register(ThreadCpuCollector())
        kinds = KindIndex(
            *registry_fetchers(db, REGISTRY_WAIT_S), refresh_s=settings.registry_refresh_s
        )
        kinds.refresh(force=True)
        log.info("registry: %d devices", len(kinds))
        sink = ReconnectingWriter(settings.database_url)
        pipeline = IngestPipeline(
            sink=sink,
            kinds=kinds,
            root=settings.mqtt_root,
            limits=settings.decode_limits,
            metrics=metrics,
            batch_max_rows=settings.batch_max_rows,
            batch_interval_s=settings.batch_interval_ms / 1000,
            batch_min_rows=settings.batch_min_rows,
            batch_max_wait_s=settings.batch_max_wait_ms / 1000,
            decode_ahead=settings.decodes_ahead,
        )
        lighting = LightingServices(
            settings,
            db,
            submit=pipeline.submit,
            registry=metrics.registry,
            on_duty=on_duty,
            polls=lambda record: settings.seat.judges(record.device_id, record.parent_id),
        )
        alarm_services = AlarmServices(
            settings,
            db,
            ingest_healthy=lambda: (
                receiver.connected and pipeline.lag_s() < settings.health_max_lag_s
            ),
            extra_publishers=[lighting.alerts],
            stages=metrics.stages,
        )
        receiver = MqttReceiver(
            url=settings.mqtt_url,
            client_id=settings.client_id,
            root=settings.mqtt_root,
            on_message=pipeline.submit,
            shared_group=settings.mqtt_shared_group,
            session_expiry_s=settings.mqtt_session_expiry_s,
            receive_maximum=settings.mqtt_receive_maximum,
            backlog=lambda: pipeline.pending,
            direct=alarm_services.direct_topics,
            on_connection_change=lambda up: metrics.broker_connected.set(1 if up else 0),
        )
        pipeline.set_acknowledger(receiver)
        alarm_services.start()
        lighting.start()
        command_sender = MqttCommandSender(
            url=settings.mqtt_url,
            client_id=f"{settings.client_id}-cmd",
            root=settings.mqtt_root,
        )
        manhole_commands = ManholeCommandService(
            db,
            command_sender.send,
            resend_after=timedelta(seconds=settings.manhole_command_resend_s),
            on_duty=on_duty,
        )
        command_sender.start()
        manhole_commands.start()
        stream_feed: MqttOutbound | None = None
        if settings.cluster_members > 1:
            # Every member's alarm changes and crew alerts, for this member's live streams.
            stream_feed = document_feed(
                settings.mqtt_url,
                f"{settings.client_id}-streams",
                {**alarm_services.stream_routes, **lighting.stream_routes},
            )
            stream_feed.start()
        pipeline.add_observer(alarm_services.flow)
        writer = threading.Thread(target=pipeline.run, args=(self.stop,), name="ingest-writer")
        retention = threading.Thread(
            target=self._retention_loop, args=(db, mode, on_duty), name="retention", daemon=True
        )
        tune_collector()
        log.info("start-up done; %d objects frozen out of the collector's sight", freeze_heap())
        threading.Thread(target=self._heap_loop, name="heap", daemon=True).start()
        writer.start()
        retention.start()
        receiver.start()
        try:
            # Also under uvicorn: it re-raises the signal once it has shut down, and that
            # must reach this handler, not the default one that kills before the flush.
            self._handle_signals()
            if self.api_enabled:
                app = create_app(
                    db,
                    metrics.registry,
                    IngestStatus(receiver, pipeline, settings.health_max_lag_s),
                    routers=[*alarm_services.routers, *domain_routers()],
                    # The enforcement's texts to truck drivers go out as truck commands.
                    state={
                        **alarm_services.api_state,
                        **lighting.api_state,
                        "truck_commands": command_sender.send,
                    },
                    max_body_bytes=settings.api_max_body_bytes,
                )
                secure_app(app, AccessStore(db), AccessConfig.from_settings(settings))
                server = uvicorn.Server(
                    uvicorn.Config(
                        app,
                        host=settings.api_host,
                        port=settings.api_port,
                        log_level=settings.log_level.lower(),
                        access_log=False,
                        # X-Forwarded-* are believed only from HUB_TRUSTED_PROXIES, by the
                        # app itself; uvicorn's own handling would trust 127.0.0.1.
                        proxy_headers=False,
                    )
                )
                log.info("API on http://%s:%d/docs", settings.api_host, settings.api_port)
                server.run()
            else:
                # With a timeout: Python runs signal handlers in the main thread only, and a
                # SIGTERM the kernel hands to another thread (valgrind does) would not wake
                # a wait without one (seen: a hub under callgrind that never stopped).
                while not self.stop.wait(0.5):
                    pass
        finally:
            log.info("stopping: flushing %d pending message(s)", pipeline.pending)
            self.stop.set()
            pipeline.stop_waiting()
            lighting.stop()
            manhole_commands.stop()
            command_sender.stop()
            writer.join(timeout=60)
            alarm_services.stop()
            if stream_feed is not None:
                stream_feed.stop()
            receiver.stop()
            if lease is not None:
                lease.stop()
            sink.close()
            db.close()
            log.info("stopped; %d message(s) committed", pipeline.committed_messages)
        return 0

    def _handle_signals(self) -> None:
        def _handle(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d received", signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, _handle)
        signal.signal(signal.SIGINT, _handle)
