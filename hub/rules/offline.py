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
"""

import dataclasses
from datetime import datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from hub.rules.alarm_types import AlarmType
from hub.rules.condition import (
    ConditionPolicy,
    ConditionTable,
    Observation,
    Verdict,
    datetime_from_epoch,
)
from hub.rules.signals import AlarmSignal, SourceKind

_INITIAL_CAPACITY = 1024


class OfflineMonitor:
    """Last-seen receive times and silence thresholds of all devices, indexed by slot."""

    __slots__ = (
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
        # tracked: an offline condition state exists; quiet: active with no clear streak,
        # so a further silent check would change nothing and is skipped.
        self._tracked: npt.NDArray[np.bool_] = np.zeros(_INITIAL_CAPACITY, dtype=np.bool_)
        self._quiet: npt.NDArray[np.bool_] = np.zeros(_INITIAL_CAPACITY, dtype=np.bool_)

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
        hits = np.flatnonzero(self._tracked[indices])
        for position in hits:
            index = int(indices[position])
            at_s = float(received_s[position])
            device_id = self._ids[index]
            state = table.get((SourceKind.DEVICE, device_id, AlarmType.OFFLINE))
            if state is not None:
                at_s = max(at_s, state.last_ts_s)
            obs = Observation(
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
        for index in np.flatnonzero(overdue & ~self._quiet[:n]):
            i = int(index)
            device_id = self._ids[i]
            threshold = float(self._threshold_s[i])
            silent = float(silent_s[i])
            obs = Observation(
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
        self._tracked[index] = state is not None
        self._quiet[index] = state is not None and state.active and not state.pending

    def _grow(self) -> None:
        capacity = len(self._last_seen_s) * 2
        self._last_seen_s = _resized(self._last_seen_s, capacity, -np.inf)
        self._threshold_s = _resized(self._threshold_s, capacity, np.inf)
        self._tracked = _resized(self._tracked, capacity, False)
        self._quiet = _resized(self._quiet, capacity, False)


_G = TypeVar("_G", bound=np.generic)


def _resized(array: npt.NDArray[_G], capacity: int, fill: float | bool) -> npt.NDArray[_G]:
    grown = np.full(capacity, fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown
