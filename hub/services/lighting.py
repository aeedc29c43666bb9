"""Composition of street lighting services: Modbus polling, commands, schedules, crew alerts.

`LightingServices` is built by the `run` composition. Its control thread, about once a
`tick_s`, sends due commands on `<root>/<kind>/<device>/cmd`, settles them from the
acknowledgements ingest stored in `command_acks` (acked, failed, expired, or sent again),
and fires due schedules as command requests. `CrewAlertPublisher` is an AlarmPublisher:
new, escalated and cleared lighting faults go to the MQTT alert topic, the crew SSE stream
and an optional webhook (bounded queue; full means the alert is dropped and counted,
since the alarm table stays the record).
"""

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import orjson
from prometheus_client import CollectorRegistry

from hub.devices.decode import device_topic
from hub.devices.kinds import Channel, Kind
from hub.devices.lighting import (
    CommandEffect,
    CommandState,
    EffectRules,
    ReportedState,
    Schedule,
    StepKind,
    UnknownTargetError,
    command_document,
    decide_command_step,
    expand_target,
    expected_effect,
    firing_command,
    judge_effect,
    latest_occurrence,
    schedule_catch_up,
    schedule_due,
    target_position,
)
from hub.devices.registry import DeviceRecord
from hub.ingest.feed import DocumentSink
from hub.ingest.modbus import ModbusPoller, targets_from_records
from hub.ingest.outbound import MqttOutbound
from hub.ingest.pipeline import RawMessage
from hub.rules.alarm_changes import AlarmChange, AlarmChangeKind, AlarmRecord
from hub.rules.alarm_fanout import AlarmFanout
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.crew_alerts import (
    MAY_BE_LIGHTING_FAULT,
    AlertLocation,
    CaseAssignment,
    CrewAlertFanout,
    CrewAlertKind,
    crew_alert_document,
    crew_alert_kind,
    crew_alert_topic,
    is_lighting_fault,
)
from hub.rules.signals import AlarmSignal, EvidenceSnapshot, SignalAction, SourceKind
from hub.settings import Settings
from hub.store import lighting as store
from hub.store import lighting_commands as command_store
from hub.store import lighting_schedules as schedule_store
from hub.store.alarms import apply_signals
from hub.store.database import Database

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _always() -> bool:
    return True


def _every(record: DeviceRecord) -> bool:
    return True


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)


class WebhookSender:
    """POSTs JSON documents to a URL from a thread of its own; drops when its queue is full."""

    def __init__(self, url: str, timeout_s: float, max_queued: int = 1000) -> None:
        self._url = url
        self._queue: queue.Queue[dict[str, object] | None] = queue.Queue(maxsize=max_queued)
        self._client = httpx.Client(timeout=timeout_s)
        self._thread = threading.Thread(target=self._run, name="lighting-webhook", daemon=True)
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        """Start the sending thread."""
        self._thread.start()

    def offer(self, document: dict[str, object]) -> None:
        """Queue a document; never blocks."""
        try:
            self._queue.put_nowait(document)
        except queue.Full:
            self.dropped += 1
            log.warning("lighting alert webhook queue full; %d dropped", self.dropped)

    def _run(self) -> None:
        while (document := self._queue.get()) is not None:
            try:
                response = self._client.post(
                    self._url,
                    content=orjson.dumps(document),
                    headers={"content-type": "application/json"},
                )
                response.raise_for_status()
            except httpx.HTTPError as err:
                self.failed += 1
                log.warning("lighting alert webhook %s failed: %s", self._url, err)

    def stop(self) -> None:
        """Send what is queued (if the queue has room for the sentinel) and stop."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1.0)
        self._thread.join(timeout=5.0)
        self._client.close()


class CrewAlertPublisher:
    """An AlarmPublisher turning lighting alarm changes into crew alerts."""

    def __init__(
        self,
        *,
        root: str,
        locate: Callable[[str], AlertLocation | None],
        publish: Callable[[str, bytes], bool],
        fanout: AlarmFanout | None,
        webhook: WebhookSender | None = None,
    ) -> None:
        self._root = root
        self._locate = locate
        self._publish = publish
        self._fanout = fanout
        self._webhook = webhook
        self._severity: dict[int, Severity] = {}
        self._heard: dict[int, datetime] = {}  # last_seen_at the crew last heard of
        self._locations: dict[str, AlertLocation | None] = {}
        self.sent = 0

    def _location(self, source_id: str) -> AlertLocation | None:
        if source_id not in self._locations:
            if len(self._locations) > 100_000:
                self._locations.clear()
            self._locations[source_id] = self._locate(source_id)
        return self._locations[source_id]

    def publish_changes(self, changes: Sequence[AlarmChange]) -> None:
        """Alert on new, escalated and cleared lighting faults; ignore everything else."""
        documents: list[dict[str, object]] = []
        for change in changes:
            alarm = change.alarm
            if alarm.alarm_type not in MAY_BE_LIGHTING_FAULT:
                continue  # a truck's or a cover's alarm: no look-up of where it is
            location = self._location(alarm.source_id)
            if not is_lighting_fault(alarm.alarm_type, location.kind if location else None):
                continue
            kind = crew_alert_kind(change, self._severity.get(alarm.id), self._heard.get(alarm.id))
            if change.kind is AlarmChangeKind.CLEARED:
                self._severity.pop(alarm.id, None)
                self._heard.pop(alarm.id, None)
            else:
                self._severity[alarm.id] = alarm.severity
            if kind is None:
                continue
            if kind is not CrewAlertKind.CLEARED:
                self._heard[alarm.id] = alarm.last_seen_at
            document = crew_alert_document(kind, alarm, location)
            self._publish(crew_alert_topic(self._root, alarm), orjson.dumps(document))
            if self._webhook is not None:
                self._webhook.offer(document)
            documents.append(document)
        self._push(documents)

    def publish_assignments(
        self, assignments: Sequence[tuple[AlarmRecord, CaseAssignment]]
    ) -> None:
        """An `assigned` alert for each lighting fault whose case was dispatched."""
        documents: list[dict[str, object]] = []
        for alarm, assignment in assignments:
            location = self._location(alarm.source_id)
            document = crew_alert_document(CrewAlertKind.ASSIGNED, alarm, location, assignment)
            self._publish(crew_alert_topic(self._root, alarm), orjson.dumps(document))
            if self._webhook is not None:
                self._webhook.offer(document)
            documents.append(document)
        self._push(documents)

    def _push(self, documents: list[dict[str, object]]) -> None:
        if documents and self._fanout is not None:
            self._fanout.publish_documents(documents)
        self.sent += len(documents)


class LightingControl:
    """Sends due commands, settles answered and expired ones, fires due schedules."""

    def __init__(
        self,
        db: Database,
        *,
        root: str,
        publish: Callable[[str, bytes], bool],
        zone: ZoneInfo,
        ack_timeout: timedelta,
        ttl: timedelta,
        max_attempts: int,
        effect_rules: EffectRules | None = None,
        on_alarm_changes: Callable[[Sequence[AlarmChange]], None] | None = None,
        supersede: bool = True,
        clock: Clock = utc_now,
        on_assignments: Callable[[Sequence[tuple[AlarmRecord, CaseAssignment]]], None]
        | None = None,
    ) -> None:
        """`on_alarm_changes` hears of the `command_not_effective` alarms this raises and clears;
        `on_assignments` of lighting faults whose case was dispatched (from the first pass on)."""
        self._on_assignments = on_assignments
        self._assigned_after: datetime | None = None
        self._effect_rules = effect_rules or EffectRules()
        self._supersede = supersede
        self._on_alarm_changes = on_alarm_changes
        self._db = db
        self._root = root
        self._publish = publish
        self._zone = zone
        self._ack_timeout = ack_timeout
        self._ttl = ttl
        self._max_attempts = max_attempts
        self._clock = clock

    def settle_commands(self, now: datetime) -> dict[str, int]:
        """One pass over due commands; counts per step taken."""
        counts: dict[str, int] = {}
        with self._db.connection() as conn:
            for command in command_store.fetch_due_commands(conn, now):
                step = decide_command_step(command, now, self._ack_timeout)
                if step.kind is StepKind.WAIT:
                    continue
                if step.kind is StepKind.SEND:
                    topic = device_topic(self._root, command.kind, command.device_id, Channel.CMD)
                    body = command_document(
                        command.command_id,
                        command.action,
                        command.dim_pct,
                        now,
                        command.expires_at,
                    )
                    if not self._publish(topic, orjson.dumps(body)):
                        continue
                    command_store.mark_sent(conn, command.command_id, now, step.next_attempt_at)
                else:
                    command_store.finish_command(
                        conn, command.command_id, CommandState(step.kind.value), now, step.detail
                    )
                counts[step.kind.value] = counts.get(step.kind.value, 0) + 1
        if counts:
            log.info(
                "lighting commands: %s", ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            )
        return counts

    def judge_effects(self, now: datetime) -> dict[str, int]:
        """Compare acked commands with the telemetry that followed; alarm when it disobeys.

        A `not_effective` command raises (or repeats) `command_not_effective` on its device
        with the readings as evidence; a later effective command on the device clears it.
        """
        counts: dict[str, int] = {}
        signals: list[AlarmSignal] = []
        with self._db.connection() as conn:
            for command in command_store.fetch_unjudged_commands(conn):
                expected = expected_effect(command.kind, command.action, command.dim_pct)
                reports = command_store.fetch_reports_after(
                    conn, command.kind, command.device_id, command.sent_at
                )
                effect = judge_effect(expected, reports, command.acked_at, now, self._effect_rules)
                if effect is None:
                    continue
                evidence: dict[str, object] = {
                    "expected": expected.document(),
                    "reports": [r.document(command.kind) for r in reports[-5:]],
                    "window_s": self._effect_rules.window.total_seconds(),
                }
                command_store.set_command_effect(conn, command.command_id, effect, now, evidence)
                counts[effect.value] = counts.get(effect.value, 0) + 1
                signal = _effect_signal(command, effect, evidence, reports, now)
                if signal is not None:
                    signals.append(signal)
            changes = apply_signals(conn, signals, now) if signals else []
        if changes and self._on_alarm_changes is not None:
            self._on_alarm_changes(changes)
        if counts:
            log.info(
                "lighting command effects: %s",
                ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
            )
        return counts

    def fire_schedules(self, now: datetime) -> list[command_store.CommandRequest]:
        """Turn each schedule whose instant has come into a command request, once.

        A schedule that never fired acts at once when the state it sets should hold now
        (`schedule_catch_up`: a dusk-on created after dusk turns the lamps on).
        """
        requests: list[command_store.CommandRequest] = []
        with self._db.connection() as conn:
            schedules = schedule_store.list_schedules(conn, enabled_only=True)
            if not schedules:
                return requests
            devices = store.fetch_controlled_devices(conn)
            placed: list[tuple[Schedule, frozenset[str], float, float]] = []
            for schedule in schedules:
                try:
                    targets = expand_target(schedule.target, schedule.action, devices)
                except UnknownTargetError:
                    continue
                lat, lon = target_position(targets)
                placed.append((schedule, frozenset(d.device_id for d in targets), lat, lon))
            for schedule, ids, lat, lon in placed:
                due = schedule_due(schedule, now, self._zone, lat, lon)
                how = "fired"
                if due is None and schedule.last_fired_at is None:
                    others = [
                        latest
                        for other, other_ids, o_lat, o_lon in placed
                        if other.schedule_id != schedule.schedule_id and other_ids & ids
                        if (latest := latest_occurrence(other, now, self._zone, o_lat, o_lon))
                        is not None
                    ]
                    due = schedule_catch_up(schedule, now, self._zone, lat, lon, others)
                    how = "caught up (its state holds now)"
                if due is None:
                    continue
                action, params = firing_command(schedule, due, self._zone, lat, lon)
                request = command_store.create_command_request(
                    conn,
                    target=schedule.target,
                    action=action,
                    params=params,
                    now=now,
                    ttl=self._ttl,
                    max_attempts=self._max_attempts,
                    origin=f"schedule{schedule.schedule_id}",
                    supersede=self._supersede,
                )
                schedule_store.mark_schedule_fired(conn, schedule.schedule_id, due)
                log.info(
                    "schedule %d (%s) %s for %s: %d command(s)",
                    schedule.schedule_id,
                    schedule.name,
                    how,
                    due.isoformat(),
                    len(request.commands),
                )
                requests.append(request)
        return requests

    def announce_assignments(self, now: datetime) -> int:
        """Hand the cases dispatched since the last pass (since the first pass, on the first)
        to `on_assignments`; how many."""
        if self._on_assignments is None:
            return 0
        if self._assigned_after is None:
            self._assigned_after = now
            return 0
        with self._db.connection() as conn:
            found = store.fetch_case_assignments(conn, self._assigned_after, now)
        if found:
            self._on_assignments(found)
            self._assigned_after = max(a.dispatched_at for _, a in found)
        return len(found)

    def run(
        self, stop: threading.Event, tick_s: float, on_duty: Callable[[], bool] = _always
    ) -> None:
        """The control thread: schedules, then commands, every tick (while on duty)."""
        while not stop.wait(tick_s):
            if not on_duty():
                continue
            now = self._clock()
            for what, work in (
                ("schedules", self.fire_schedules),
                ("commands", self.settle_commands),
                ("command effects", self.judge_effects),
                ("case assignments", self.announce_assignments),
            ):
                try:
                    work(now)
                except Exception:  # the thread supervises itself; the next tick retries
                    log.exception("lighting %s pass failed; will retry", what)


def _effect_signal(
    command: command_store.UnjudgedCommand,
    effect: CommandEffect,
    evidence: dict[str, object],
    reports: Sequence[ReportedState],
    now: datetime,
) -> AlarmSignal | None:
    """RAISE for a command that did not take effect, CLEAR for one that did, else None."""
    if effect is CommandEffect.UNVERIFIED:
        return None
    snapshots = tuple(
        EvidenceSnapshot(r.ts, command.device_id, r.document(command.kind)) for r in reports[-3:]
    )
    details: dict[str, object] = {
        "command_id": command.command_id,
        "request_id": command.request_id,
        "action": command.action.value,
        "acked_at": command.acked_at.isoformat(),
        **evidence,
    }
    what = command.action.value + (f" {command.dim_pct:g} %" if command.dim_pct is not None else "")
    if effect is CommandEffect.EFFECTIVE:
        return AlarmSignal(
            SignalAction.CLEAR,
            SourceKind.DEVICE,
            command.device_id,
            AlarmType.COMMAND_NOT_EFFECTIVE,
            Severity.MINOR,
            now,
            f"{what} took effect",
            1,
            snapshots,
            details,
        )
    severity = Severity.MAJOR if command.kind is Kind.CABINET else Severity.MINOR
    return AlarmSignal(
        SignalAction.RAISE,
        SourceKind.DEVICE,
        command.device_id,
        AlarmType.COMMAND_NOT_EFFECTIVE,
        severity,
        now,
        f"command {what} acknowledged but not carried out: telemetry shows"
        f" {evidence['reports'] or 'no reading'}",
        1,
        snapshots,
        details,
    )


class LightingServices:
    """Every lighting part one hub process runs, built from the settings."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        submit: Callable[[RawMessage], None],
        registry: CollectorRegistry,
        on_duty: Callable[[], bool] = _always,
        polls: Callable[[DeviceRecord], bool] = _every,
    ) -> None:
        """`on_duty`: whether this hub runs schedules and commands (the cluster's leader);
        `polls`: whether this hub polls a cabinet (the one that judges it)."""
        self.settings = settings
        self._db = db
        self._on_duty = on_duty
        self.outbound = MqttOutbound(
            url=settings.mqtt_url, client_id=f"{settings.client_id}-lighting", name="lighting"
        )
        self.alert_fanout = CrewAlertFanout()
        self.webhook = (
            WebhookSender(settings.lighting_webhook_url, settings.lighting_webhook_timeout_s)
            if settings.lighting_webhook_url
            else None
        )
        self.alerts = CrewAlertPublisher(
            root=settings.mqtt_root,
            locate=self._locate,
            publish=self.outbound.publish,
            # In a cluster the alert stream is fed from the broker (`stream_routes`).
            fanout=self.alert_fanout if settings.cluster_members == 1 else None,
            webhook=self.webhook,
        )
        self.control = LightingControl(
            db,
            root=settings.mqtt_root,
            publish=self.outbound.publish,
            zone=ZoneInfo(settings.lighting_timezone),
            ack_timeout=timedelta(seconds=settings.command_ack_timeout_s),
            ttl=timedelta(seconds=settings.command_ttl_s),
            max_attempts=settings.command_max_attempts,
            effect_rules=EffectRules(window=timedelta(seconds=settings.command_effect_window_s)),
            on_alarm_changes=self.alerts.publish_changes,
            supersede=settings.command_supersede,
            on_assignments=self.alerts.publish_assignments,
        )
        self.poller: ModbusPoller | None = None
        if settings.modbus_enabled:
            cabinets = db.list_devices(Kind.CABINET, 100_000, 0)
            targets = targets_from_records(c for c in cabinets if polls(c))
            if targets:
                self.poller = ModbusPoller(
                    targets,
                    submit=submit,
                    root=settings.mqtt_root,
                    interval_s=settings.modbus_poll_interval_s,
                    timeout_s=settings.modbus_timeout_s,
                    retries=settings.modbus_retries,
                    backoff_max_s=settings.modbus_backoff_max_s,
                    registry=registry,
                )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _locate(self, device_id: str) -> AlertLocation | None:
        with self._db.connection() as conn:
            return store.fetch_location(conn, device_id)

    @property
    def stream_routes(self) -> dict[str, DocumentSink]:
        """Where every member's crew alerts arrive for the live stream (used in a cluster)."""
        return {f"{self.settings.mqtt_root}/alerts/lighting/#": self.alert_fanout.publish_documents}

    @property
    def api_state(self) -> dict[str, object]:
        """What the lighting router finds on `app.state`."""
        return {
            "lighting_alert_fanout": self.alert_fanout,
            "modbus_poller": self.poller,
            "lighting_zone": ZoneInfo(self.settings.lighting_timezone),
            "lighting_command_defaults": (
                timedelta(seconds=self.settings.command_ttl_s),
                self.settings.command_max_attempts,
            ),
        }

    def start(self) -> None:
        """Connect the publisher, start polling cabinets and the control thread."""
        self.outbound.start()
        if self.webhook is not None:
            self.webhook.start()
        if self.poller is not None:
            self.poller.start(self._stop)
        self._thread = threading.Thread(
            target=self.control.run,
            args=(self._stop, self.settings.lighting_control_tick_s, self._on_duty),
            name="lighting-control",
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and control; disconnect."""
        self._stop.set()
        if self.poller is not None:
            self.poller.join()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.webhook is not None:
            self.webhook.stop()
        self.outbound.stop()
