"""Absence of data as a condition: every device's silence judged at once with numpy arrays.

Offline is measured in receive time against the injected clock: a device is offline when
`now - received_at` of its newest reading exceeds `missed_reports × expected_interval_s`
(per-kind defaults, per-device overrides). Receive time, not the reading's `ts`, because a
device's own clock may be wrong, and a device that uploads a backlog of old readings is
back online. A device that has never reported counts from its registration (or from a
last-seen time the store seeds after a restart).

The silence check is vectorised over all registered devices; only devices that change
state go through the condition table, so the debounce (`raise_after_s`), hysteresis
(`clear_after_s`: readings must keep arriving that long) and suppression of the shared
machinery apply unchanged. The offline policy always persists its last verdict between
checks (`assume_persists`), because its observations come from the clock, not readings.

A device's own status is evidence in event time (`StatusEvidence`): an `offline` status
carrying its `ts` raises the offline alarm at that ts (after the policy's `raise_after_s`,
and not inside a `suppress_s` window, both in event time); the device's next reading or
`online` status with a newer ts clears it at that ts. The engine judges statuses in the
device's event-time order with its readings, so an `offline` older than a reading already
judged is stale and ignored, and the same readings and statuses give the same offline
alarm whether they arrive paced or as one backlog. While such an episode is open, the
receive-clock check leaves the device alone. A status without its own ts (the bare text,
e.g. the MQTT will) has no event time and stays out of the rules: silence by the receive
clock covers it.
"""

import dataclasses
import heapq
import math
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from hub.rules.alarm_types import AlarmType
from hub.rules.condition import (
    ConditionKey,
    ConditionPolicy,
    ConditionTable,
    Verdict,
    datetime_from_epoch,
    observation,
)
from hub.rules.signals import AlarmSignal, SourceKind

_INITIAL_CAPACITY = 1024


class OfflineMonitor:
    """Last-seen receive times and silence thresholds of all devices, indexed by slot."""

    __slots__ = (
        "_by_status",
        "_ids",
        "_last_seen_s",
        "_persisting_cache",
        "_policies",
        "_quiet",
        "_size",
        "_threshold_s",
        "_tracked",
    )

    def __init__(self) -> None:
        self._size = 0
        self._ids: list[str] = []
        self._policies: list[ConditionPolicy] = []
        self._persisting_cache: dict[ConditionPolicy, ConditionPolicy] = {}
        self._last_seen_s: npt.NDArray[np.float64] = np.full(_INITIAL_CAPACITY, -np.inf)
        self._threshold_s: npt.NDArray[np.float64] = np.full(_INITIAL_CAPACITY, np.inf)
        # tracked: an offline condition is active or pending (a reading has something to
        # clear; one only inside its suppression window is left alone: a status may have
        # left it, in event time); quiet: active with no clear streak,
        # so a further silent check would change nothing and is skipped.
        self._tracked: npt.NDArray[np.bool_] = np.zeros(_INITIAL_CAPACITY, dtype=np.bool_)
        self._quiet: npt.NDArray[np.bool_] = np.zeros(_INITIAL_CAPACITY, dtype=np.bool_)
        # by_status: the device's offline condition follows its own status (event time).
        self._by_status: npt.NDArray[np.bool_] = np.zeros(_INITIAL_CAPACITY, dtype=np.bool_)

    def __len__(self) -> int:
        return self._size

    def add(
        self, device_id: str, threshold_s: float, policy: ConditionPolicy, seen_s: float
    ) -> int:
        """Register a device; return its slot index."""
        if self._size == len(self._last_seen_s):
            self._grow()
        index = self._size
        self._size += 1
        self._ids.append(device_id)
        self._policies.append(self._persisting(policy))
        self._last_seen_s[index] = seen_s
        self._threshold_s[index] = threshold_s
        return index

    def configure(self, index: int, threshold_s: float, policy: ConditionPolicy) -> None:
        """Change a device's threshold and policy (registry update); inf disables the check."""
        self._threshold_s[index] = threshold_s
        self._policies[index] = self._persisting(policy)

    def _persisting(self, policy: ConditionPolicy) -> ConditionPolicy:
        """The policy with `assume_persists` set, shared between devices that share a policy."""
        persisting = self._persisting_cache.get(policy)
        if persisting is None:
            persisting = dataclasses.replace(policy, assume_persists=True)
            self._persisting_cache[policy] = persisting
        return persisting

    def seed(self, index: int, seen_s: float) -> None:
        """Set a device's last-seen time if newer (from the store, after a restart)."""
        self._last_seen_s[index] = max(float(self._last_seen_s[index]), seen_s)

    def threshold_s(self, index: int) -> float:
        """Seconds of silence after which the device at `index` is offline."""
        return float(self._threshold_s[index])

    def last_seen_s(self, index: int) -> float:
        """Newest receive time (epoch seconds) of the device at `index`."""
        return float(self._last_seen_s[index])

    def evaluate_readings(
        self,
        indices: npt.NDArray[np.intp],
        received_s: npt.NDArray[np.float64],
        table: ConditionTable,
    ) -> list[AlarmSignal]:
        """Record a batch's receive times; observe OK for devices with an offline condition."""
        if len(indices) == 0:
            return []
        np.maximum.at(self._last_seen_s, indices, received_s)
        signals: list[AlarmSignal] = []
        hits = np.flatnonzero(self._tracked[indices] & ~self._by_status[indices])
        for position in hits:
            index = int(indices[position])
            at_s = float(received_s[position])
            device_id = self._ids[index]
            state = table.get((SourceKind.DEVICE, device_id, AlarmType.OFFLINE))
            if state is not None:
                at_s = max(at_s, state.last_ts_s)
            obs = observation(
                alarm_type=AlarmType.OFFLINE,
                verdict=Verdict.OK,
                ts=datetime_from_epoch(at_s),
                device_id=device_id,
                values={"received_at": datetime_from_epoch(float(received_s[position]))},
                message=f"device {device_id} is reporting again",
            )
            signal = table.observe(
                SourceKind.DEVICE, device_id, obs, self._policies[index], received_s=at_s
            )
            if signal is not None:
                signals.append(signal)
            self.sync(index, table)
        return signals

    def evaluate_tick(self, now: datetime, table: ConditionTable) -> list[AlarmSignal]:
        """Judge every device's silence at `now` at once; observe FAULT where it matters."""
        now_s = now.timestamp()
        n = self._size
        silent_s = now_s - self._last_seen_s[:n]
        overdue = silent_s > self._threshold_s[:n]
        signals: list[AlarmSignal] = []
        for index in np.flatnonzero(overdue & ~self._quiet[:n] & ~self._by_status[:n]):
            i = int(index)
            device_id = self._ids[i]
            threshold = float(self._threshold_s[i])
            silent = float(silent_s[i])
            obs = observation(
                alarm_type=AlarmType.OFFLINE,
                verdict=Verdict.FAULT,
                ts=now,
                device_id=device_id,
                values={
                    "last_seen_at": datetime_from_epoch(float(self._last_seen_s[i])),
                    "silent_s": silent,
                    "threshold_s": threshold,
                },
                message=f"no data from {device_id} for {silent:.0f} s (limit {threshold:.0f} s)",
            )
            signal = table.observe(
                SourceKind.DEVICE, device_id, obs, self._policies[i], received_s=now_s
            )
            if signal is not None:
                signals.append(signal)
            self.sync(i, table)
        return signals

    def sync_all(self, table: ConditionTable) -> None:
        """Refresh the flags of tracked devices after the table advanced on its own."""
        for index in np.flatnonzero(self._tracked[: self._size]):
            self.sync(int(index), table)

    def sync(self, index: int, table: ConditionTable) -> None:
        """Mirror one device's offline condition state into the flag arrays."""
        state = table.get((SourceKind.DEVICE, self._ids[index], AlarmType.OFFLINE))
        self._tracked[index] = state is not None and (state.active or state.pending)
        self._quiet[index] = state is not None and state.active and not state.pending

    def set_by_status(self, index: int, by_status: bool) -> None:
        """Leave (True) or give back (False) a device's offline condition to its status."""
        self._by_status[index] = by_status

    def _grow(self) -> None:
        capacity = len(self._last_seen_s) * 2
        self._last_seen_s = _resized(self._last_seen_s, capacity, -np.inf)
        self._threshold_s = _resized(self._threshold_s, capacity, np.inf)
        self._tracked = _resized(self._tracked, capacity, False)
        self._quiet = _resized(self._quiet, capacity, False)
        self._by_status = _resized(self._by_status, capacity, False)


class StatusEvidence:
    """Offline episodes opened by a device's own `offline` status, judged in event time.

    A raise that waits (debounce, suppression) is due at an event time: it is raised before
    any evidence of the device at or after that time is judged (`catch_up`), or once the
    stream's event time has passed it (`advance`) unless the device still holds older
    evidence in its reorder buffer. So when it is raised never depends on the arrival.
    """

    __slots__ = ("_due", "_monitor", "_open", "_table")

    def __init__(self, monitor: OfflineMonitor, table: ConditionTable) -> None:
        self._monitor = monitor
        self._table = table
        # device id -> (ts of the offline status, monitor slot, offline policy)
        self._open: dict[str, tuple[float, int, ConditionPolicy]] = {}
        # (event time a pending raise is due, device id, ts of the status that opened it)
        self._due: list[tuple[float, str, float]] = []

    @property
    def next_due_s(self) -> float:
        """Event time of the earliest pending raise (inf when none)."""
        return self._due[0][0] if self._due else math.inf

    def is_open(self, device_id: str) -> bool:
        """Whether the device's own status has it offline (raised or pending)."""
        return device_id in self._open

    def offline(
        self, device_id: str, index: int, at: datetime, received_s: float, policy: ConditionPolicy
    ) -> AlarmSignal | None:
        """The device said it is offline at `at` (its newest evidence, in event order)."""
        key: ConditionKey = (SourceKind.DEVICE, device_id, AlarmType.OFFLINE)
        state = self._table.get(key)
        if device_id not in self._open and state is not None and state.active:
            return None  # already offline by the receive clock: that episode goes on
        at_s = at.timestamp()
        self._open[device_id] = (at_s, index, policy)
        self._monitor.set_by_status(index, True)
        obs = observation(
            alarm_type=AlarmType.OFFLINE,
            verdict=Verdict.FAULT,
            ts=at,
            device_id=device_id,
            values={"status": "offline", "received_at": datetime_from_epoch(received_s)},
            message=f"device {device_id} reported itself offline",
        )
        signal = self._table.observe(SourceKind.DEVICE, device_id, obs, policy, received_s)
        self._schedule(key, device_id, at_s, policy)
        self._close_if_idle(device_id, index)
        return signal

    def back(
        self, device_id: str, at: datetime, received_s: float, what: str
    ) -> AlarmSignal | None:
        """Evidence the device is up at `at` (a reading or an `online` status): clear.

        Only evidence newer than the `offline` status counts: one of the same ts or older
        (judged after it because it arrived later) says nothing about the episode."""
        episode = self._open.get(device_id)
        if episode is None:
            return None
        since_s, index, policy = episode
        if at.timestamp() <= since_s:
            return None
        obs = observation(
            alarm_type=AlarmType.OFFLINE,
            verdict=Verdict.OK,
            ts=at,
            device_id=device_id,
            values={"evidence": what, "received_at": datetime_from_epoch(received_s)},
            message=f"device {device_id} is reporting again",
        )
        signal = self._table.observe(SourceKind.DEVICE, device_id, obs, policy, received_s)
        self._close_if_idle(device_id, index)
        return signal

    def catch_up(self, device_id: str, until_s: float) -> AlarmSignal | None:
        """Raise the device's pending episode if due by `until_s`, the event time of the
        device's evidence about to be judged (the raise comes first, in event order)."""
        episode = self._open.get(device_id)
        if episode is None:
            return None
        since_s, index, policy = episode
        key: ConditionKey = (SourceKind.DEVICE, device_id, AlarmType.OFFLINE)
        state = self._table.get(key)
        if state is None or state.active or not state.pending:
            return None
        due_s = max(since_s + policy.raise_after_s, state.cleared_at_s + policy.suppress_s)
        if due_s > until_s:
            return None
        return self._raise(device_id, due_s, since_s, index, policy)

    def advance(
        self, until_s: float, holds_before: Callable[[str, float], bool]
    ) -> list[AlarmSignal]:
        """Raise the episodes whose debounce or suppression window ended by event time
        `until_s`, except those of devices still holding evidence from before it is due
        (`holds_before(device_id, due_s)`: their reorder buffer judges it first)."""
        signals: list[AlarmSignal] = []
        waiting: list[tuple[float, str, float]] = []
        while self._due and self._due[0][0] <= until_s:
            entry = heapq.heappop(self._due)
            due_s, device_id, since_s = entry
            episode = self._open.get(device_id)
            if episode is None or episode[0] != since_s:
                continue  # the device came back (or spoke again) before it was due
            if holds_before(device_id, due_s):
                waiting.append(entry)
                continue
            state = self._table.get((SourceKind.DEVICE, device_id, AlarmType.OFFLINE))
            if state is None or state.active or not state.pending:
                continue  # raised already (caught up by the device's own evidence)
            signal = self._raise(device_id, due_s, since_s, episode[1], episode[2])
            if signal is not None:
                signals.append(signal)
        for entry in waiting:
            heapq.heappush(self._due, entry)
        return signals

    def _raise(
        self, device_id: str, due_s: float, since_s: float, index: int, policy: ConditionPolicy
    ) -> AlarmSignal | None:
        obs = observation(
            alarm_type=AlarmType.OFFLINE,
            verdict=Verdict.FAULT,
            ts=datetime_from_epoch(due_s),
            device_id=device_id,
            values={"status": "offline", "since": datetime_from_epoch(since_s)},
            message=f"device {device_id} reported itself offline",
        )
        signal = self._table.observe(SourceKind.DEVICE, device_id, obs, policy)
        key: ConditionKey = (SourceKind.DEVICE, device_id, AlarmType.OFFLINE)
        self._schedule(key, device_id, since_s, policy)
        self._monitor.sync(index, self._table)
        return signal

    def _close_if_idle(self, device_id: str, index: int) -> None:
        """End the episode once the condition is neither active nor pending (back, or the
        status was older than what the condition has seen): the receive clock takes over."""
        state = self._table.get((SourceKind.DEVICE, device_id, AlarmType.OFFLINE))
        if state is None or not (state.active or state.pending):
            del self._open[device_id]
            self._monitor.set_by_status(index, False)
        self._monitor.sync(index, self._table)

    def forget(self, device_id: str) -> None:
        """Drop a device's open episode (decommissioned)."""
        self._open.pop(device_id, None)

    def _schedule(
        self, key: ConditionKey, device_id: str, since_s: float, policy: ConditionPolicy
    ) -> None:
        """Queue the event time a still-pending raise completes (debounce, suppression)."""
        state = self._table.get(key)
        if state is None or state.active or not state.pending:
            return
        due_s = max(since_s + policy.raise_after_s, state.cleared_at_s + policy.suppress_s)
        if due_s > state.last_ts_s:
            heapq.heappush(self._due, (due_s, device_id, since_s))


_G = TypeVar("_G", bound=np.generic)


def _resized(array: npt.NDArray[_G], capacity: int, fill: float | bool) -> npt.NDArray[_G]:
    grown = np.full(capacity, fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown
