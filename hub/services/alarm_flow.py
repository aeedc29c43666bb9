"""Composition of rules, alarms and cases: committed readings become alarms, alarms become cases.

`AlarmFlow` is the ingest pipeline's `BatchObserver`. The writer thread only queues each
committed batch; one thread of the flow owns the rule engine (it is not thread-safe),
feeds it the batches, ticks its clock about once a second, applies the signals to the
alarm table, publishes the changes (MQTT and SSE), and runs the case policy: filing
alarms at once or after a duration, and attaching a cleared alarm that stayed clear to
its case as verification evidence. At start-up it rebuilds the engine from the registry,
the devices' last readings and the alarms still open, so a restart neither re-raises nor
forgets an alarm.

Overflow policy: the queue holds up to `queue_readings` readings (a batch larger than that
alone); when the rules fall that far behind, the writer waits (ingest slows down, the
broker keeps the messages) rather than letting readings through unjudged or holding an
unbounded number of them in memory.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import httpx
from prometheus_client import CollectorRegistry

from hub.api import alarms as alarms_api
from hub.api import cases as cases_api
from hub.api import open311 as open311_api
from hub.devices.decode import Reading, StatusChange
from hub.devices.partition import (
    Seat,
    decode_handoff,
    encode_handoff,
    handoff_topic,
)
from hub.devices.registry import DeviceRecord, resume_point
from hub.ingest.alarm_publisher import MqttAlarmPublisher
from hub.ingest.feed import DocumentSink
from hub.ingest.metrics import StageCpu
from hub.ingest.outbound import MqttOutbound
from hub.rules import trucks as truck_rules
from hub.rules.alarm_changes import AlarmChange, AlarmChangeKind, AlarmPublisher
from hub.rules.alarm_fanout import AlarmFanout
from hub.rules.catalogue import domain_group_rules, domain_rules
from hub.rules.condition import SEVERITY_CHANGED
from hub.rules.config import RuleConfigError, RulesConfig, load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import AnyGroupRule, AnyRule, DeviceInfo, SharedAttributes
from hub.rules.lighting_context import INTENT as LIGHTING_INTENT
from hub.rules.signals import AlarmSignal
from hub.services.case_forwarder import CaseForwarder, build_forwarder, outbox_targets
from hub.services.case_setup import load_case_setup, with_imported_calendar
from hub.services.reading_queue import ReadingQueue
from hub.settings import Settings
from hub.store.alarms import AlarmStore
from hub.store.cases import CaseStore
from hub.store.database import Database
from hub.store.lighting import LightingIntentRefresher
from hub.store.outbox import Outbox
from hub.store.trucks import TruckContextRefresher, TruckStore

if TYPE_CHECKING:
    from fastapi import APIRouter  # only hub.api imports FastAPI at run time

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_FULL_RELOAD_S = 60.0


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)


def _always() -> bool:
    return True


# Readings per hand-off message: keeps each well under the broker's message size limits.
HANDOFF_CHUNK = 2_000
HandOff = Callable[[int, Sequence[Reading]], None]


@dataclass(frozen=True)
class ClusterSeat(Seat):
    """A hub's seat in its cluster, and how it hands readings on to their owners."""

    hand_off: HandOff = field(kw_only=True)


class PublisherGroup:
    """Publishes to several publishers; one failing does not stop the others."""

    def __init__(self, publishers: Iterable[AlarmPublisher]) -> None:
        self._publishers = tuple(publishers)

    def publish_changes(self, changes: Sequence[AlarmChange]) -> None:
        """Hand the changes to each publisher."""
        for publisher in self._publishers:
            try:
                publisher.publish_changes(changes)
            except Exception:
                log.exception("alarm publisher %r failed", publisher)


class AlarmFlow:
    """Readings → rule engine → alarm table → publishers and case filing, on one thread."""

    def __init__(
        self,
        *,
        db: Database,
        alarms: AlarmStore,
        cases: CaseStore,
        config: RulesConfig,
        publisher: AlarmPublisher,
        clock: Clock = utc_now,
        rules: Sequence[AnyRule] = (),
        group_rules: Sequence[AnyGroupRule] = (),
        tick_s: float = 1.0,
        queue_readings: int = 40_000,
        stay_clear: timedelta = timedelta(minutes=15),
        registry_refresh_s: float = 5.0,
        ingest_healthy: Callable[[], bool] = _always,
        context_refreshers: Sequence[Callable[[], object]] = (),
        cluster: ClusterSeat | None = None,
        stages: StageCpu | None = None,
    ) -> None:
        self._db = db
        self._alarms = alarms
        self._cases = cases
        self._config = config
        self._publisher = publisher
        self._clock = clock
        self._rules = tuple(rules)
        self._group_rules = tuple(group_rules)
        self._tick_s = tick_s
        self._stay_clear = stay_clear
        self._registry_refresh_s = registry_refresh_s
        self._ingest_healthy = ingest_healthy
        # Domain contexts the rules read (truck permits and sites), reloaded with the registry.
        self._context_refreshers = tuple(context_refreshers)
        self._cluster = cluster
        # CPU time by stage for /metrics; a registry of its own where no one reads it.
        self._stages = stages if stages is not None else StageCpu(CollectorRegistry())
        # The owner of every registered device (a cluster only); the engine holds our own.
        self._owners: dict[str, int] = {}
        self.handed_off = 0
        self.handed_in = 0
        # (readings, handed to us by another member): those are never handed on again.
        self._queue = ReadingQueue(queue_readings)
        self._unapplied: list[AlarmSignal] = []
        self._engine: RuleEngine | None = None
        self._registry_since: datetime | None = None
        self._registry_at = 0.0
        self._full_reload_at = 0.0
        self._closed = False

    @property
    def engine(self) -> RuleEngine:
        """The rule engine (after `start_up`)."""
        if self._engine is None:
            raise RuntimeError("AlarmFlow.start_up() has not run")
        return self._engine

    # start-up

    def start_up(self) -> None:
        """Build the engine from the registry, seed last-seen times, restore open alarms."""
        now = self._clock()
        self._engine = RuleEngine(
            self._config, (), now=now, rules=self._rules, group_rules=self._group_rules
        )
        self._load_registry(None, now)
        for refresh_context in self._context_refreshers:
            refresh_context()
        self._registry_at = self._full_reload_at = time.monotonic()
        for device_id, received_at in self._alarms.last_seen().items():
            if self._owns(device_id):
                self._engine.seed_last_seen(device_id, received_at)
        restored = 0
        for alarm in self._alarms.open_alarms():
            if not self._owns(alarm.source_id):
                continue
            self._engine.restore_alarm(
                alarm.source_kind,
                alarm.source_id,
                alarm.alarm_type,
                alarm.severity,
                alarm.raised_at,
                alarm.count,
            )
            restored += 1
        log.info(
            "rules: %d devices, %d open alarms restored", len(self._engine.device_ids()), restored
        )
        self._run_case_policy(now)

    def _load_registry(self, since: datetime | None, now: datetime) -> None:
        """Upsert devices changed since a time into the engine, a page of records at a time."""
        newest: datetime | None = None
        shared = SharedAttributes()
        for records, page_newest in self._db.device_pages(since):
            self._upsert_devices(records, now, shared)
            if page_newest is not None and (newest is None or page_newest > newest):
                newest = page_newest
        if newest is not None:
            self._registry_since = resume_point(newest, now)

    def _owner(self, device_id: str) -> int:
        """The cluster member judging a device (from its registry parent when known)."""
        cluster = self._cluster
        if cluster is None:
            return 0
        owner = self._owners.get(device_id)
        return cluster.owner(device_id, None) if owner is None else owner

    def _owns(self, device_id: str) -> bool:
        """Whether this hub judges the device (always, outside a cluster)."""
        return self._cluster is None or self._owner(device_id) == self._cluster.member

    def _upsert_devices(
        self, records: Iterable[DeviceRecord], now: datetime, shared: SharedAttributes
    ) -> None:
        engine = self.engine
        cluster = self._cluster
        for record in records:
            if cluster is not None:
                owner = cluster.owner(record.device_id, record.parent_id)
                self._owners[record.device_id] = owner
                if owner != cluster.member:
                    # Not ours (any more: a new parent moves a device to another member).
                    engine.remove_device(record.device_id)
                    continue
            try:
                engine.upsert_device(DeviceInfo.from_record(record, shared), now)
            except RuleConfigError as err:
                log.warning("device %s left out of the rules: %s", record.device_id, err)

    def _refresh_registry(self, now: datetime, *, force: bool = False) -> None:
        mono = time.monotonic()
        wait_s = 1.0 if force else self._registry_refresh_s
        if mono - self._registry_at < wait_s:
            return
        self._load_registry(self._registry_since, now)
        for refresh_context in self._context_refreshers:
            refresh_context()
        self._registry_at = mono
        if mono - self._full_reload_at >= _FULL_RELOAD_S:
            ids = self._db.fetch_all_ids()
            for gone in self.engine.device_ids() - ids:
                self.engine.remove_device(gone)
            for gone in self._owners.keys() - ids:
                del self._owners[gone]
            self._full_reload_at = mono

    # the work

    def on_batch(self, readings: Sequence[Reading], now: datetime) -> None:
        """Queue a committed batch for the flow thread (called on the ingest writer thread)."""
        self._enqueue(readings, handed=False)

    def on_batch_statuses(
        self, readings: Sequence[Reading], statuses: Sequence[StatusChange], now: datetime
    ) -> None:
        """Queue a committed batch with its device statuses (offline evidence in event time)."""
        self._enqueue(readings, handed=False, statuses=statuses)

    def on_handoff(self, raw: bytes) -> None:
        """Queue readings another cluster member handed to us (called on the MQTT thread)."""
        started = time.thread_time()
        readings = decode_handoff(raw)
        self._stages.add("hand_in", time.thread_time() - started, len(readings))
        self.handed_in += len(readings)
        self._enqueue(readings, handed=True)

    def _enqueue(
        self, readings: Sequence[Reading], *, handed: bool, statuses: Sequence[StatusChange] = ()
    ) -> None:
        if not readings and not statuses:
            return
        while not self._queue.put(readings, handed, timeout_s=1.0, statuses=statuses):
            if self._closed:
                log.warning("alarm flow stopped; %d readings not judged", len(readings))
                return
            log.warning("rules are %d readings behind; ingest waits", self._queue.readings)

    def process(
        self,
        readings: Sequence[Reading],
        *,
        handed: bool = False,
        statuses: Sequence[StatusChange] = (),
    ) -> list[AlarmChange]:
        """Judge a batch, apply and publish the alarm changes, file what the policy says.

        In a cluster, readings of devices another member owns are handed to it first
        (unless they were handed to us: those are judged here or not at all); statuses
        of those devices are not handed on (silence by the receive clock covers them).
        """
        now = self._clock()
        stages = self._stages
        started = time.thread_time()
        if self._cluster is not None and not handed:
            received = len(readings)
            readings = self._hand_off_others(self._cluster, readings, now)
            statuses = [s for s in statuses if self._owns(s.device_id)]
            routed = time.thread_time()
            stages.add("hand_off", routed - started, received - len(readings))
            started = routed
        signals = self.engine.process(readings, statuses)
        judged = time.thread_time()
        stages.add("rules", judged - started, len(readings))
        changes = self._apply(signals, now)
        if any(_may_fall_due(change) for change in changes):
            self._run_case_policy(now)
        stages.add("alarms", time.thread_time() - judged, len(signals))
        return changes

    def _hand_off_others(
        self, cluster: ClusterSeat, readings: Sequence[Reading], now: datetime
    ) -> list[Reading]:
        owners = self._owners
        found = [owners.get(r.device_id) for r in readings]
        if None in found:
            # A device registered since the last refresh: learn its parent before routing.
            self._refresh_registry(now, force=True)
            found = [owners.get(r.device_id) for r in readings]
        member = cluster.member
        mine: list[Reading] = []
        theirs: dict[int, list[Reading]] = {}
        for reading, known in zip(readings, found, strict=True):
            # Not in the registry: by its own id.
            owner = cluster.owner(reading.device_id, None) if known is None else known
            if owner == member:
                mine.append(reading)
            else:
                theirs.setdefault(owner, []).append(reading)
        for member, handed in theirs.items():
            for start in range(0, len(handed), HANDOFF_CHUNK):
                cluster.hand_off(member, handed[start : start + HANDOFF_CHUNK])
            self.handed_off += len(handed)
        return mine

    def tick(self, now: datetime) -> list[AlarmChange]:
        """Clock work: registry changes, held readings, offline checks, due filings, clearances."""
        started = time.thread_time()
        try:
            return self._tick(now)
        finally:
            self._stages.add("clock", time.thread_time() - started, 1)

    def _tick(self, now: datetime) -> list[AlarmChange]:
        self._refresh_registry(now)
        signals: list[AlarmSignal] = []
        if self._ingest_healthy():
            signals = self.engine.tick(now)
        # else: while ingest is stalled, silence proves nothing; offline checks wait.
        changes = self._apply(signals, now)
        self._run_case_policy(now)
        return changes

    def _apply(self, signals: Sequence[AlarmSignal], now: datetime) -> list[AlarmChange]:
        self._unapplied.extend(signals)
        if not self._unapplied:
            return []
        try:
            changes = self._alarms.apply(self._unapplied, now)
        except Exception:
            # The store's errors (database away) keep the signals queued, in order, for
            # the next batch or tick: the engine has moved on and will not send them again.
            log.exception("%d alarm signal(s) not stored; will retry", len(self._unapplied))
            return []
        self._unapplied = []
        if changes:
            counts: dict[str, int] = {}
            for change in changes:
                counts[change.kind] = counts.get(change.kind, 0) + 1
            log.info("alarms: %s", ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
            self._publisher.publish_changes(changes)
        return changes

    def _run_case_policy(self, now: datetime) -> None:
        # Two clocks, one per question: filing delays and "stayed clear" are event time
        # (the engine's event clock, which trails `now` while a backlog is judged); the
        # cases themselves are stamped with `now`, when the centre gets them.
        event_now = self.engine.event_clock(now)
        for filed in self._cases.file_due_alarms(now, event_now):
            if filed.case is not None:
                log.info(
                    "alarm %d filed into case %s (%s)",
                    filed.alarm_id,
                    filed.case.case_number,
                    filed.reason,
                )
        for check in self._cases.check_clearances(now, self._stay_clear, event_now):
            if check.attached:
                log.info(
                    "alarm %d stayed clear: attached to case %d", check.alarm_id, check.case_id
                )

    def run(self, stop: threading.Event) -> None:
        """The flow thread: batches as they come, a tick every `tick_s`; drain on stop."""
        next_tick = time.monotonic()
        while not (stop.is_set() and self._queue.empty()):
            timeout = max(0.0, next_tick - time.monotonic())
            batch = self._queue.get(timeout_s=min(timeout, 0.5))
            if batch is not None:
                readings, handed, statuses = batch
                self._supervised(
                    "batch", partial(self.process, readings, handed=handed, statuses=statuses)
                )
            if time.monotonic() >= next_tick:
                self._supervised("tick", lambda: self.tick(self._clock()))
                next_tick = time.monotonic() + self._tick_s
        self._closed = True
        if self._unapplied:
            self._apply((), self._clock())
        if self._cluster is not None:
            log.info(
                "rules: %d reading(s) handed to other members, %d handed to this one",
                self.handed_off,
                self.handed_in,
            )

    def _supervised(self, what: str, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:
            log.exception("alarm flow %s failed; continuing", what)


def _may_fall_due(change: AlarmChange) -> bool:
    """Whether a change may have made an alarm's filing decision due now.

    A raise is due at once, and a severity change makes the store ask the policy again; a
    repeat of an open alarm changes nothing the policy looks at, and what falls due with
    time is the tick's (every `tick_s`). Filing after every batch with a repeat in it cost
    two transactions per batch under a steady load, where lamps lit by day repeat their
    alarms (~4 % of the flow thread's samples, issue 23).
    """
    if change.kind is AlarmChangeKind.RAISED:
        return True
    return (
        change.kind is AlarmChangeKind.UPDATED
        and change.alarm.details.get("reason") == SEVERITY_CHANGED
    )


class AlarmServices:
    """Everything of rules, alarms and cases one hub process runs, built from the settings."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        ingest_healthy: Callable[[], bool] = _always,
        clock: Clock = utc_now,
        extra_publishers: Sequence[AlarmPublisher] = (),
        stages: StageCpu | None = None,
    ) -> None:
        self.settings = settings
        self.setup = with_imported_calendar(load_case_setup(settings), db, clock())
        # An alarm the filing policy never files is decided as it is raised (a storm of
        # them, every truck's no_permit, cost the policy a look at each: issue 23).
        self.alarms = AlarmStore(db, files=self.setup.policy.files)
        self.cases = CaseStore(db, self.setup, outbox_targets(settings))
        self.fanout = AlarmFanout()
        self.mqtt = MqttAlarmPublisher(
            url=settings.mqtt_url,
            client_id=f"{settings.client_id}-alarms",
            root=settings.mqtt_root,
        )
        # In a cluster the live stream is fed with every member's changes from the broker
        # (`stream_routes`); this member's own would then show twice.
        local = [] if settings.cluster_members > 1 else [self.fanout]
        self.publisher = PublisherGroup([self.mqtt, *local, *extra_publishers])
        self.handoff: MqttOutbound | None = None
        cluster: ClusterSeat | None = None
        if settings.cluster_members > 1:
            self.handoff = MqttOutbound(
                url=settings.mqtt_url, client_id=f"{settings.client_id}-handoff", name="hand-off"
            )
            cluster = ClusterSeat(
                settings.cluster_members, settings.cluster_member, hand_off=self._hand_off
            )
        self.flow = AlarmFlow(
            db=db,
            alarms=self.alarms,
            cases=self.cases,
            config=load_rules_config(settings.rules_file),
            rules=domain_rules(),
            group_rules=domain_group_rules(),
            publisher=self.publisher,
            clock=clock,
            tick_s=settings.alarm_tick_s,
            queue_readings=settings.alarm_queue_readings,
            stay_clear=timedelta(seconds=settings.case_clear_confirm_s),
            registry_refresh_s=settings.registry_refresh_s,
            ingest_healthy=ingest_healthy,
            context_refreshers=[
                TruckContextRefresher(TruckStore(db), truck_rules.CONTEXT).refresh,
                LightingIntentRefresher(db, LIGHTING_INTENT).refresh,
            ],
            cluster=cluster,
            stages=stages,
        )
        self._http = httpx.Client(timeout=settings.case_webhook_timeout_s)
        self.forwarder: CaseForwarder | None = build_forwarder(settings, Outbox(db), self._http)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _hand_off(self, member: int, readings: Sequence[Reading]) -> None:
        if self.handoff is None:  # pragma: no cover - only wired in a cluster
            return
        topic = handoff_topic(self.settings.mqtt_root, self._shared_group, member)
        if not self.handoff.publish(topic, encode_handoff(readings)):
            log.warning("%d reading(s) for member %d not handed off", len(readings), member)

    @property
    def _shared_group(self) -> str:
        return self.settings.mqtt_shared_group or "hub"

    @property
    def direct_topics(self) -> dict[str, Callable[[bytes], None]]:
        """Topics only this hub subscribes to: in a cluster, readings handed to it."""
        if self.handoff is None:
            return {}
        topic = handoff_topic(
            self.settings.mqtt_root, self._shared_group, self.settings.cluster_member
        )
        return {topic: self.flow.on_handoff}

    @property
    def stream_routes(self) -> dict[str, DocumentSink]:
        """Where every member's alarm changes arrive for the live stream (used in a cluster)."""
        return {f"{self.settings.mqtt_root}/alarms/#": self.fanout.publish_documents}

    @property
    def routers(self) -> list["APIRouter"]:
        """The API routers of alarms, cases and Open311."""
        return [alarms_api.router, cases_api.router, open311_api.router]

    @property
    def api_state(self) -> dict[str, object]:
        """What the routers find on `app.state`."""
        return {
            "alarm_store": self.alarms,
            "case_store": self.cases,
            "alarm_fanout": self.fanout,
            "alarm_publisher": self.publisher,
            "open311_api_keys": self.settings.open311_api_key_set,
        }

    def start(self) -> None:
        """Restore the rules' state, then start the flow, the publisher and the forwarder."""
        self.flow.start_up()
        self.mqtt.start()
        if self.handoff is not None:
            self.handoff.start()
        self._threads.append(
            threading.Thread(target=self.flow.run, args=(self._stop,), name="alarm-flow")
        )
        if self.forwarder is not None:
            self._threads.append(
                threading.Thread(
                    target=self.forwarder.run, args=(self._stop,), name="case-forwarder"
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Judge what was queued, stop the threads, disconnect (after the ingest writer stops)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.mqtt.stop()
        if self.handoff is not None:
            self.handoff.stop()
        self._http.close()
