"""The rule engine: batches of readings and clock ticks in, alarm signals out.

Readings are evaluated in event time, per device in `ts` order. Each device has a reorder
buffer: a reading waits until the device's newest `ts` is `reorder_tolerance_s` ahead of
it, or until it has been held that long by the injected clock (`tick`), then readings are
released oldest first. A reading with the `ts` of one already accepted is a duplicate
and dropped; one older than the newest released reading is late and dropped (it still
proves the device is alive, and the store keeps it). So any arrival order within the
tolerance gives the same alarms, and nothing beyond it can flap an alarm. With a
tolerance of 0 a batch is still sorted per device, and nothing waits.

Released readings of all devices are judged in one event-time order, instant by instant
(ties by device id): first every reading of the instant by the per-device rules, then the
groups a member of which reported in it, at that instant. So the same readings give the
same alarms, at the same event times, whether they come one by one or as one backlog
after an outage: batch boundaries never decide when a group is judged. `event_clock`
gives the stream's event time for questions of duration outside the engine (filing).

Per-device rules (`Rule`) see one reading with the device's state and parameters and
return observations; group rules (`GroupRule`) see the latest projected state of every
member of a group (a lamp's circuit or cabinet) and may cover members' own alarms of
listed types while the group alarm is active: those member alarms are cleared (reason
given) or never announced, and announced again if still active when the group clears.
The offline rule is built in and runs for every kind: silence by the receive clock, and a
device's own timed status in event time, ordered like a reading (hub/rules/offline.py).

The engine is not thread-safe: one task owns it. Its state is per device, so hub
processes that share the stream must keep device affinity (all of a device's readings,
and all members of a group, reach the same engine).
"""

import logging
import math
from collections.abc import Iterable, KeysView, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

import numpy as np
from pydantic import BaseModel

from hub.devices.decode import Reading, StatusChange
from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.condition import (
    ConditionKey,
    ConditionTable,
    Verdict,
    datetime_from_epoch,
    remember_epoch,
)
from hub.rules.config import (
    OFFLINE_RULE,
    OfflineParams,
    ResolvedRule,
    RuleConfigError,
    RulesConfig,
    device_overrides,
    has_device_overrides,
    resolve_rule,
)
from hub.rules.group_cover import GroupCover
from hub.rules.interface import AnyGroupRule, AnyRule, DeviceInfo, GroupView
from hub.rules.offline import OfflineMonitor, StatusEvidence
from hub.rules.plan import Plan as _Plan
from hub.rules.plan import Screening as _Screening
from hub.rules.plan import build_plan
from hub.rules.reorder import Released as _AnyReleased
from hub.rules.reorder import ReorderBuffers
from hub.rules.signals import AlarmSignal, SourceKind

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class EngineStats:
    """Counters for metrics: what came in and what was dropped, by reason."""

    readings: int = 0
    evaluated: int = 0
    duplicates: int = 0
    late: int = 0
    unknown_device: int = 0
    statuses: int = 0
    stale_statuses: int = 0


class _DeviceSlot:
    """Per-device engine bookkeeping; slotted because there are 100,000 of them."""

    __slots__ = ("index", "info", "max_ts_s", "plan", "released_ts_s", "resolved", "seen_ts_s")

    def __init__(
        self, info: DeviceInfo, index: int, resolved: Mapping[str, ResolvedRule], plan: _Plan
    ) -> None:
        self.info = info
        self.index = index
        self.resolved = resolved
        self.plan = plan
        self.max_ts_s = -math.inf
        self.released_ts_s = -math.inf
        # The newest reading stored before a restart: older statuses are stale.
        self.seen_ts_s = -math.inf


# A reading (or a timed status) released from its device's buffer (hub/rules/reorder.py).
_Released = _AnyReleased[_DeviceSlot]


_EVENT_TIME = itemgetter(0)  # of a released entry
_DEVICE_ID = itemgetter(1)


def _sort_released(released: list[_Released]) -> None:
    """Order released entries by (event time, device id); arrival order within a device.

    By event time alone first (float keys: the sort compares them natively, and a batch
    comes nearly in order), then each run of one instant by device id (string keys). A
    tuple key (time, id) made every comparison a generic one of two tuples: ~3,400
    instructions per reading when a batch's devices report at one instant. Both sorts are
    stable, so the order is the tuple key's.
    """
    released.sort(key=_EVENT_TIME)
    count = len(released)
    start = 0
    while start < count:
        instant_s = released[start][0]
        end = start + 1
        while end < count and released[end][0] == instant_s:
            end += 1
        if end - start > 1:
            released[start:end] = sorted(released[start:end], key=_DEVICE_ID)
        start = end


class RuleEngine:
    """Evaluates rules over readings and clock ticks; holds all rule and alarm condition state."""

    def __init__(
        self,
        config: RulesConfig,
        devices: Iterable[DeviceInfo],
        *,
        now: datetime,
        rules: Sequence[AnyRule] = (),
        group_rules: Sequence[AnyGroupRule] = (),
        screen_quiet: bool = True,
    ) -> None:
        names = [OFFLINE_RULE, *(r.name for r in rules), *(g.name for g in group_rules)]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise RuleConfigError(f"rule names must be unique: {', '.join(sorted(duplicated))}")
        unknown = set(config.rules) - set(names)
        if unknown:
            logger.warning("rules file has sections for rules not loaded: %s", sorted(unknown))
        self._config = config
        self._tolerance_s = config.reorder_tolerance_s
        self._rules = tuple(rules)
        self._group_rules = tuple(group_rules)
        self._kind_rules: dict[Kind, tuple[AnyRule, ...]] = {
            kind: tuple(r for r in rules if kind in r.kinds) for kind in Kind
        }
        self._kind_group_rules: dict[Kind, tuple[AnyGroupRule, ...]] = {
            kind: tuple(g for g in group_rules if kind in g.member_kinds) for kind in Kind
        }
        self._kind_models: dict[Kind, dict[str, type[BaseModel]]] = {
            kind: {
                OFFLINE_RULE: OfflineParams,
                **{r.name: r.params_model for r in self._kind_rules[kind]},
            }
            for kind in Kind
        }
        self._kind_resolved: dict[Kind, dict[str, ResolvedRule]] = {
            kind: {
                name: resolve_rule(config, name, model, kind)
                for name, model in self._kind_models[kind].items()
            }
            for kind in Kind
        }
        self._group_resolved: dict[str, ResolvedRule] = {
            g.name: resolve_rule(config, g.name, g.params_model, None) for g in group_rules
        }
        self._slots: dict[str, _DeviceSlot] = {}
        self._groups: dict[str, set[str]] = {}
        self._rule_states: dict[str, dict[str, Any]] = {r.name: {} for r in rules}
        self._stateful = {r.name: r.initial_state() is not None for r in rules}
        self._screen_quiet = screen_quiet  # False: the same alarms, slower (hub/rules/plan.py)
        # The plan of each kind's devices without overrides (they share it).
        self._kind_plan: dict[Kind, _Plan] = {
            kind: self._plan(kind, self._kind_resolved[kind]) for kind in Kind
        }
        self._group_latest: dict[str, dict[str, dict[str, object]]] = {
            g.name: {} for g in group_rules
        }
        self._buffers: ReorderBuffers[_DeviceSlot] = ReorderBuffers(self._tolerance_s)
        # Groups a member of which reported in the instant being judged, with a receive time.
        self._dirty_groups: dict[tuple[int, str], float] = {}
        # The newest event time judged, and when its reading was received (the event clock).
        self._watermark_ts_s = -math.inf
        self._watermark_received_s = -math.inf
        self._group_ts: dict[tuple[int, str], datetime] = {}
        self._table = ConditionTable()
        self._cover = GroupCover(group_rules, self._table, self._groups, self._group_of)
        self._coverable = self._cover.coverable
        self._offline = OfflineMonitor()
        self._status = StatusEvidence(self._offline, self._table)
        self.stats = EngineStats()
        for info in devices:
            self.upsert_device(info, now)

    # registry

    def upsert_device(self, info: DeviceInfo, now: datetime) -> None:
        """Add or update a device; `now` starts its silence clock if it has never reported.

        Raises RuleConfigError naming the device and field when its overrides are invalid.
        """
        slot = self._slots.get(info.device_id)
        if slot is not None and slot.info == info:
            # A registry re-read of an unchanged device must not drop its group memory.
            return
        resolved = self._resolve_device(info)
        offline = resolved[OFFLINE_RULE]
        params: OfflineParams = offline.params
        threshold_s = params.threshold_s if offline.enabled else math.inf
        plan = (
            self._kind_plan[info.kind]
            if resolved is self._kind_resolved[info.kind]
            else self._plan(info.kind, resolved)
        )
        if slot is None:
            index = self._offline.add(info.device_id, threshold_s, offline.policy, now.timestamp())
            self._slots[info.device_id] = _DeviceSlot(info, index, resolved, plan)
        else:
            self._leave_group(slot.info)
            if slot.info.kind != info.kind:
                self._forget_rule_state(info.device_id)
            slot.info = info
            slot.resolved = resolved
            slot.plan = plan
            self._offline.configure(slot.index, threshold_s, offline.policy)
        if info.group_id is not None:
            self._groups.setdefault(info.group_id, set()).add(info.device_id)

    def device_ids(self) -> KeysView[str]:
        """Ids of the devices the engine judges (a live view)."""
        return self._slots.keys()

    def remove_device(self, device_id: str) -> None:
        """Forget a device (decommissioned); its open alarms are the store's to close."""
        slot = self._slots.pop(device_id, None)
        if slot is None:
            return
        self._leave_group(slot.info)
        self._forget_rule_state(device_id)
        self._buffers.drop(device_id)
        self._status.forget(device_id)
        self._offline.configure(slot.index, math.inf, slot.resolved[OFFLINE_RULE].policy)

    def seed_last_seen(self, device_id: str, received_at: datetime) -> None:
        """Tell the engine when a device last reported (from the store, after a restart)."""
        slot = self._slots.get(device_id)
        if slot is not None:
            self._offline.seed(slot.index, received_at.timestamp())
            slot.seen_ts_s = max(slot.seen_ts_s, received_at.timestamp())

    def restore_alarm(
        self,
        source_kind: SourceKind,
        source_id: str,
        alarm_type: AlarmType,
        severity: Severity,
        raised_at: datetime,
        count: int = 1,
    ) -> None:
        """Load an alarm still open in the store so it is updated and cleared, not raised again."""
        if source_kind is SourceKind.DEVICE:
            slot = self._slots.get(source_id)
            if slot is None:
                return
            rule_name = OFFLINE_RULE
            for rule in self._kind_rules[slot.info.kind]:
                if alarm_type in rule.alarm_types:
                    rule_name = rule.name
            resolved = slot.resolved[rule_name]
        else:
            group_rule = self._cover.rule_raising(alarm_type)
            if group_rule is None:
                return
            resolved = self._group_resolved[group_rule.name]
            self._cover.restore(source_id, group_rule)
        key: ConditionKey = (source_kind, source_id, alarm_type)
        self._table.restore(key, resolved.policy, severity, raised_at, count)
        if source_kind is SourceKind.DEVICE and alarm_type is AlarmType.OFFLINE:
            self._offline.sync(self._slots[source_id].index, self._table)

    def device_params(self, device_id: str, rule_name: str) -> ResolvedRule | None:
        """The effective policy and parameters of a rule for a device (for display and tests)."""
        slot = self._slots.get(device_id)
        return None if slot is None else slot.resolved.get(rule_name)

    def event_clock(self, now: datetime) -> datetime:
        """The stream's event time at receive-clock instant `now`, for "how long did it hold".

        The newest event time judged, moved on by the receive time since its reading
        arrived (so it runs with the wall clock when readings come live and the city is
        quiet), never past `now`. While a backlog is judged it trails `now` by the backlog.
        """
        if self._watermark_ts_s == -math.inf:
            return now
        now_s = now.timestamp()
        at_s = self._watermark_ts_s + max(0.0, now_s - self._watermark_received_s)
        return now if at_s >= now_s else datetime_from_epoch(at_s)

    @property
    def pending_readings(self) -> int:
        """Readings held in reorder buffers."""
        return len(self._buffers)

    @property
    def live_conditions(self) -> int:
        """Conditions active, pending or in a suppression window (the memory that grows)."""
        return len(self._table)

    # evaluation

    def process(
        self, batch: Sequence[Reading], statuses: Sequence[StatusChange] = ()
    ) -> list[AlarmSignal]:
        """Evaluate a batch of readings (and statuses); return the alarm signals, in order."""
        signals: list[AlarmSignal] = []
        touched: dict[str, _DeviceSlot] = {}
        alive_index: list[int] = []
        alive_received_s: list[float] = []
        stats = self.stats
        stats.readings += len(batch)
        slots = self._slots
        hold = self._buffers.hold
        # The messages of one socket read share their receipt time, one datetime object:
        # its timestamp (~1,900 instructions for an aware datetime) is taken once for them.
        last_received: datetime | None = None
        last_received_s = 0.0
        for arrived in batch:
            reading = arrived
            slot = slots.get(reading.device_id)
            if slot is None or slot.info.kind is not reading.kind:
                stats.unknown_device += 1
                continue
            ts_s = reading.ts.timestamp()
            received_at = reading.received_at
            if received_at is last_received:
                received_s = last_received_s
            else:
                received_s = last_received_s = received_at.timestamp()
                last_received = received_at
            if ts_s > received_s:
                # A device clock ahead of the hub's (accepted up to HUB_MAX_AHEAD_S): alarm
                # timing must not run in the future, so the rules see the receipt time.
                reading = reading._replace(ts=reading.received_at)
                ts_s = received_s
            if ts_s <= slot.released_ts_s:
                if ts_s == slot.released_ts_s:
                    stats.duplicates += 1
                    continue
                stats.late += 1
            elif hold(reading.device_id, slot, ts_s, received_s, reading):
                touched[reading.device_id] = slot
            else:
                stats.duplicates += 1
                continue
            alive_index.append(slot.index)
            alive_received_s.append(received_s)
        released: list[_Released] = []
        for status in statuses:
            slot = self._buffer_status(status, released)
            if slot is not None:
                touched[status.device_id] = slot
        raw = self._offline.evaluate_readings(
            np.asarray(alive_index, dtype=np.intp),
            np.asarray(alive_received_s, dtype=np.float64),
            self._table,
        )
        self._cover.emit_all(raw, signals)
        for device_id, slot in touched.items():
            self._buffers.release_behind(device_id, slot, released)
        self._evaluate_in_order(released, signals)
        return signals

    def tick(self, now: datetime) -> list[AlarmSignal]:
        """Clock-driven work at `now`: held readings, offline checks, persisting verdicts."""
        signals: list[AlarmSignal] = []
        now_s = now.timestamp()
        released: list[_Released] = []
        self._buffers.release_held(now_s, self._slots.__getitem__, released)
        self._evaluate_in_order(released, signals)
        status_due_s = self.event_clock(now).timestamp() - self._tolerance_s
        if self._status.next_due_s <= status_due_s:
            raised = self._status.advance(status_due_s, self._buffers.holds_before)
            self._cover.emit_all(raised, signals)
        self._cover.emit_all(self._offline.evaluate_tick(now, self._table), signals)
        self._cover.emit_all(self._table.advance(now_s, self._buffers.holds), signals)
        self._offline.sync_all(self._table)
        return signals

    # internals

    def _buffer_status(self, status: StatusChange, released: list[_Released]) -> _DeviceSlot | None:
        """Buffer a status with its own ts in event order with readings (its slot if held).

        One without (the bare text, the MQTT will: decoded with its receipt time object as
        ts) has no event time and is left out; so is one older than the device's newest
        reading judged (stale: an old retained `offline`). A status makes no reading late
        nor moves the event clock (a gateway stamps it with its own clock). With no reorder
        tolerance it is released at once, into the batch's event order like a reading: held
        for the next tick, it was judged after newer readings of other devices (issue 18).
        """
        slot = self._slots.get(status.device_id)
        if slot is None or slot.info.kind is not status.kind or status.ts is status.received_at:
            return None
        self.stats.statuses += 1
        received_s = status.received_at.timestamp()
        ts_s = min(status.ts.timestamp(), received_s)
        if ts_s < max(slot.released_ts_s, slot.seen_ts_s):
            self.stats.stale_statuses += 1
            return None
        if self._tolerance_s <= 0:
            released.append((ts_s, status.device_id, received_s, status, slot))
            return None
        self._buffers.hold(status.device_id, slot, ts_s, received_s, status)
        return slot

    def _judge_evidence(self, released: _Released, signals: list[AlarmSignal]) -> None:
        """A status, or a reading of a device its status has offline: first the raise due
        by its ts, then `offline` opens an episode at its ts, `online` or a reading ends it.
        Held like the device's rules' signals until the groups have seen the instant."""
        ts_s, _, received_s, item, slot = released
        evidence = self._status
        device_id = slot.info.device_id
        at = datetime_from_epoch(ts_s)
        found = [evidence.catch_up(device_id, ts_s)]
        offline = slot.resolved[OFFLINE_RULE]
        if isinstance(item, Reading):
            found.append(evidence.back(device_id, at, received_s, "reading"))
        elif item.online:
            found.append(evidence.back(device_id, at, received_s, "online status"))
        elif offline.enabled:
            found.append(evidence.offline(device_id, slot.index, at, received_s, offline.policy))
        for signal in found:
            if signal is None:
                continue
            if slot.info.group_id is not None and signal.alarm_type in self._coverable:
                self._cover.deferred.append(signal)
            else:
                self._cover.emit(signal, signals)

    def _evaluate_in_order(self, released: list[_Released], signals: list[AlarmSignal]) -> None:
        """Judge released readings of all devices in event-time order, one instant at a time.

        The readings of one instant are judged per device first; then each group a member
        of which reported is judged at that instant, and the members' signals held for it
        are emitted or covered. So a backlog judged in one batch gives the alarms (and
        their times) that the same readings give arriving one by one, and a circuit that
        goes dark in one instant raises one group alarm, not one per lamp first. Ties
        within an instant are broken by device id, never by arrival.
        """
        count = len(released)
        if count > 1:
            _sort_released(released)
        status_evidence = self._status
        instant_s = math.nan
        for position, entry in enumerate(released):
            ts_s, device_id, received_s, item, slot = entry
            if ts_s != instant_s:
                instant_s = ts_s
                # Raises due before this instant come before it (event order, not arrival).
                due_s = max(self._watermark_ts_s, ts_s) - self._tolerance_s
                if status_evidence.next_due_s <= due_s:
                    raised = status_evidence.advance(due_s, self._buffers.holds_before)
                    self._cover.emit_all(raised, signals)
            if isinstance(item, StatusChange):
                at = datetime_from_epoch(ts_s)
                self._judge_evidence(entry, signals)
            else:
                at = item.ts
                if status_evidence.is_open(device_id):
                    self._judge_evidence(entry, signals)
                remember_epoch(at, ts_s)  # taken on arrival: the rules' epoch_s(ts) hits
                self._evaluate(slot, item, received_s, signals)
                if ts_s > self._watermark_ts_s:  # readings only: a status is no clock
                    self._watermark_ts_s = ts_s
                    self._watermark_received_s = received_s
            if position + 1 < count and released[position + 1][0] == ts_s:
                continue  # the instant goes on
            if self._dirty_groups:
                self._evaluate_groups(at, signals)
            if self._cover.deferred:
                self._cover.flush(signals)

    def _evaluate(
        self, slot: _DeviceSlot, reading: Reading, received_s: float, signals: list[AlarmSignal]
    ) -> None:
        """Run every rule of the device's kind on one reading, in event-time order."""
        self.stats.evaluated += 1
        info = slot.info
        device_id = info.device_id
        table = self._table
        observe = table.observe
        # A rule none of whose alarm types has a live condition of the device (most rules of
        # most devices) changes nothing but by a FAULT: it may leave out its OK and HOLD
        # verdicts (hub/rules/plan.py), and those it gives are not looked up at all.
        live = table.live_types(device_id)
        fault = Verdict.FAULT
        for evaluate, screens, states, stateful, params, policy, initial, types in slot.plan:
            state = None
            if stateful:
                state = states.get(device_id)
                if state is None:
                    state = states[device_id] = initial()
            quiet = live is None or live.isdisjoint(types)
            if quiet and screens:
                # Positional: a compiled rule's wrapper unpacks positional arguments
                # directly and parses keywords the slow way (~250 instructions a call).
                observations = cast(_Screening, evaluate)(reading, info, state, params, True)
            else:
                observations = evaluate(reading, info, state, params)
            for obs in observations:
                if quiet:
                    if obs.verdict is not fault:
                        continue
                    quiet = False
                signal = observe(SourceKind.DEVICE, device_id, obs, policy, received_s)
                live = table.live_types(device_id)  # a FAULT opens, a clear may end one
                if signal is None:
                    continue
                if info.group_id is not None and signal.alarm_type in self._coverable:
                    # Held until the group rules have seen this instant, so a circuit that
                    # goes dark at once raises one group alarm, not one per lamp first.
                    self._cover.deferred.append(signal)
                else:
                    self._cover.emit(signal, signals)
        if info.group_id is None:
            return
        for position, group_rule in enumerate(self._group_rules):
            if info.kind not in group_rule.member_kinds:
                continue
            resolved = self._group_resolved[group_rule.name]
            if not resolved.enabled:
                continue
            members = self._group_latest[group_rule.name].setdefault(info.group_id, {})
            members[info.device_id] = group_rule.project(reading, resolved.values)
            key = (position, info.group_id)
            if key not in self._dirty_groups:
                self._dirty_groups[key] = received_s

    def _evaluate_groups(self, ts: datetime, signals: list[AlarmSignal]) -> None:
        """Run group rules, at instant `ts`, on the groups whose members reported then."""
        dirty, self._dirty_groups = self._dirty_groups, {}
        for key, received_s in dirty.items():
            position, group_id = key
            # Members' clocks differ: a group's event time never goes backwards, so a member
            # that reports a little behind the others still counts.
            previous_ts = self._group_ts.get(key)
            group_ts = ts if previous_ts is None or ts > previous_ts else previous_ts
            self._group_ts[key] = group_ts
            group_rule = self._group_rules[position]
            resolved = self._group_resolved[group_rule.name]
            member_ids = tuple(
                sorted(
                    m
                    for m in self._groups.get(group_id, ())
                    if self._slots[m].info.kind in group_rule.member_kinds
                )
            )
            view = GroupView(
                group_id=group_id,
                member_ids=member_ids,
                latest=self._group_latest[group_rule.name].get(group_id, {}),
                ts=group_ts,
            )
            for obs in group_rule.evaluate_group(view, resolved.values):
                signal = self._table.observe(
                    SourceKind.GROUP, group_id, obs, resolved.policy, received_s
                )
                if signal is not None:
                    self._cover.emit(signal, signals, group_rule)

    def _group_of(self, device_id: str) -> str | None:
        slot = self._slots.get(device_id)
        return None if slot is None else slot.info.group_id

    def _plan(self, kind: Kind, resolved: Mapping[str, ResolvedRule]) -> _Plan:
        """What `_evaluate` runs for a device of `kind` with these effective rules."""
        return build_plan(
            self._kind_rules[kind],
            resolved,
            self._rule_states,
            self._stateful,
            screen_quiet=self._screen_quiet,
        )

    def _resolve_device(self, info: DeviceInfo) -> Mapping[str, ResolvedRule]:
        base = self._kind_resolved[info.kind]
        if not has_device_overrides(info.attributes):
            return base
        resolved = dict(base)
        for name, model in self._kind_models[info.kind].items():
            overrides = device_overrides(info.attributes, name)
            if overrides:
                resolved[name] = resolve_rule(
                    self._config,
                    name,
                    model,
                    info.kind,
                    overrides,
                    where=f"device {info.device_id}",
                )
        return resolved

    def _leave_group(self, info: DeviceInfo) -> None:
        if info.group_id is None:
            return
        members = self._groups.get(info.group_id)
        if members is not None:
            members.discard(info.device_id)
            if not members:
                del self._groups[info.group_id]
        for latest in self._group_latest.values():
            group = latest.get(info.group_id)
            if group is not None:
                group.pop(info.device_id, None)

    def _forget_rule_state(self, device_id: str) -> None:
        for states in self._rule_states.values():
            states.pop(device_id, None)
