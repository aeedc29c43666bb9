"""Debounce, hysteresis, re-alarm suppression and update rate of alarm conditions, in event time.

A rule turns a reading into observations: FAULT (the raise predicate holds), OK (the
clear predicate holds) or HOLD (inside the hysteresis band, neither holds). The
condition table keeps one small state per (source, alarm type) that has something
going on and turns observations into alarm signals:

- RAISE once FAULT has held without interruption for `raise_after_s` of event time
  (the first FAULT starts the streak, any OK or HOLD ends it);
- CLEAR once OK has held without interruption for `clear_after_s` (FAULT or HOLD ends
  that streak), so raise and clear predicates may differ (hysteresis);
- no new RAISE before `suppress_s` after a CLEAR: a streak that completes inside the
  window stays pending and raises at the first observation after the window if the
  condition still holds, otherwise it is dropped (suppressed, never announced);
- repeat FAULTs while active count up and produce an UPDATE at most once per
  `update_interval_s` (a severity change updates at once);
- an observation older than the newest one seen for that condition is ignored (it
  cannot flap the alarm); ordering within a device's reorder tolerance is restored by
  the engine before observations get here.

With `assume_persists`, `advance(now_s)` treats the last verdict as still holding for as
long as nothing newer arrived (measured by the injected clock against the time the last
observation was received, so a device with a wrong clock cannot shortcut the debounce).
States that are neither active, pending nor inside a suppression window are dropped,
so healthy devices cost no memory.
"""

import math
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, NamedTuple

from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import (
    EMPTY_MAPPING,
    AlarmSignal,
    EvidenceSnapshot,
    SignalAction,
    SourceKind,
)

_NEVER = -math.inf


class Verdict(StrEnum):
    """What one observation says about a condition."""

    FAULT = "fault"
    OK = "ok"
    HOLD = "hold"


class Observation(NamedTuple):
    """One rule's verdict on one alarm condition at an event time, with the values behind it.

    A named tuple: every rule builds one or two per reading, most of them OK verdicts the
    condition table drops at once, and a tuple is built in half the time of a frozen
    dataclass (~1 µs per observation, several per reading). For the same reason a rule
    may leave `message` empty unless its verdict is FAULT: only a FAULT's message is read.
    """

    alarm_type: AlarmType
    verdict: Verdict
    ts: datetime
    device_id: str
    values: Mapping[str, object] = EMPTY_MAPPING
    message: str = ""
    severity: Severity | None = None
    details: Mapping[str, object] = EMPTY_MAPPING


_new_tuple = tuple.__new__

# The "reason" in an UPDATE signal's details when the severity changed (else "repeat"):
# the alarm store then asks the filing policy again.
SEVERITY_CHANGED = "severity"


def observation(
    alarm_type: AlarmType,
    verdict: Verdict,
    ts: datetime,
    device_id: str,
    values: Mapping[str, object] = EMPTY_MAPPING,
    message: str = "",
    severity: Severity | None = None,
    details: Mapping[str, object] = EMPTY_MAPPING,
) -> Observation:
    """An `Observation`, built without the named tuple's `__new__` (a Python function: a
    frame per observation, ~0.3 µs, where compiled callers build most of them)."""
    return _new_tuple(
        Observation, (alarm_type, verdict, ts, device_id, values, message, severity, details)
    )


@dataclass(frozen=True, slots=True)
class ConditionPolicy:
    """Timing and severity of one rule's conditions (seconds of event time)."""

    severity: Severity = Severity.MAJOR
    raise_after_s: float = 0.0
    clear_after_s: float = 0.0
    suppress_s: float = 0.0
    update_interval_s: float = 300.0
    assume_persists: bool = False
    evidence_max: int = 5


ConditionKey = tuple[SourceKind, str, AlarmType]


class ConditionState:
    """The live state of one (source, alarm type) condition; slotted to stay small."""

    __slots__ = (
        "active",
        "announced",
        "clear_evidence",
        "cleared_at_s",
        "count",
        "evidence",
        "last_emit_s",
        "last_received_s",
        "last_ts_s",
        "message",
        "policy",
        "raised_at",
        "severity",
        "streak_at",
        "streak_start_s",
    )

    def __init__(self, policy: ConditionPolicy) -> None:
        self.policy = policy
        self.active = False
        self.announced = True
        self.streak_start_s = math.nan
        self.streak_at: datetime | None = None
        self.last_ts_s = _NEVER
        self.last_received_s = _NEVER
        self.raised_at: datetime | None = None
        self.cleared_at_s = _NEVER
        self.last_emit_s = _NEVER
        self.count = 0
        self.severity = policy.severity
        self.message = ""
        self.evidence: tuple[EvidenceSnapshot, ...] = ()
        self.clear_evidence: tuple[EvidenceSnapshot, ...] = ()

    @property
    def pending(self) -> bool:
        """A raise streak (inactive) or a clear streak (active) is running."""
        return not math.isnan(self.streak_start_s)

    def is_idle(self, at_s: float) -> bool:
        """Nothing active, pending or suppressed at `at_s`: the state can be forgotten."""
        return (
            not self.active
            and math.isnan(self.streak_start_s)
            and at_s >= self.cleared_at_s + self.policy.suppress_s
        )


class _LastEpoch:
    """The instant `epoch_s` was last asked for, and its answer, as one pair.

    An attribute of a compiled class's instance held in a Final name: a module global
    is a dictionary lookup (and a store) for compiled code, this a field of a struct.
    """

    def __init__(self) -> None:
        self.pair: tuple[datetime, float] | None = None


_LAST_EPOCH: Final = _LastEpoch()


def epoch_s(at: datetime) -> float:
    """`at.timestamp()`, remembered for the instant asked last.

    The rules of one reading ask for the same `ts` object several times, and the
    timestamp of an aware datetime costs ~0.25 µs (a timedelta subtraction inside): about
    a tenth of a lamp reading's rules. Datetimes are immutable, so the same object has
    the same answer; the pair is replaced as a whole, so a reader on another thread
    sees one pair or the other.
    """
    last = _LAST_EPOCH.pair
    if last is not None and last[0] is at:
        return last[1]
    seconds = at.timestamp()
    _LAST_EPOCH.pair = (at, seconds)
    return seconds


def remember_epoch(at: datetime, seconds: float) -> None:
    """Tell `epoch_s` the timestamp of `at`, already known (`seconds == at.timestamp()`).

    The engine takes each reading's timestamp on arrival and judges the reading later in
    its batch, when the one-entry cache holds another reading's: told before the rules
    run, their `epoch_s(reading.ts)` is a hit (a timestamp was ~4 % of a reading's rules).
    """
    _LAST_EPOCH.pair = (at, seconds)


def real_number(value: object) -> float | None:
    """A registry attribute as a number: an int or a float (not a bool), else None.

    Checked against a tuple of types: `int | float`, compiled, builds a union object at
    every call (~1,200 instructions; a lamp's rating is read for every lamp reading).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def datetime_from_epoch(seconds: float) -> datetime:
    """Aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(seconds, UTC)


def _append(
    evidence: tuple[EvidenceSnapshot, ...], snap: EvidenceSnapshot, limit: int
) -> tuple[EvidenceSnapshot, ...]:
    """Keep the first snapshot (onset) and the most recent ones, at most `limit` in all."""
    if len(evidence) < limit:
        return (*evidence, snap)
    if limit <= 1:
        return (snap,)
    return (evidence[0], *evidence[len(evidence) - limit + 2 :], snap)


class ConditionTable:
    """All conditions with something going on, keyed by (source kind, source id, alarm type)."""

    __slots__ = ("_sources", "_states")

    def __init__(self) -> None:
        self._states: dict[ConditionKey, ConditionState] = {}
        # The alarm types of the live conditions of each source id (of any kind): most
        # sources have none, and then only a FAULT can change anything (see `live_types`).
        self._sources: dict[str, set[AlarmType]] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: ConditionKey) -> ConditionState | None:
        """The live state of a condition, None when idle."""
        return self._states.get(key)

    def live_types(self, source_id: str) -> AbstractSet[AlarmType] | None:
        """The alarm types of the source's live conditions, None when it has none: an
        observation of another type that is not a FAULT is a no-op (read-only view)."""
        return self._sources.get(source_id)

    def _add(self, key: ConditionKey, state: ConditionState) -> None:
        if key not in self._states:
            self._sources.setdefault(key[1], set()).add(key[2])
        self._states[key] = state

    def _remove(self, key: ConditionKey) -> None:
        del self._states[key]
        source_id = key[1]
        live = self._sources[source_id]
        # Another source kind may hold the same id and type (a cabinet and its group).
        if not any((kind, source_id, key[2]) in self._states for kind in SourceKind):
            live.discard(key[2])
        if not live:
            del self._sources[source_id]

    def items(self) -> Iterator[tuple[ConditionKey, ConditionState]]:
        """Live conditions (a snapshot, safe to modify the table while iterating)."""
        return iter(list(self._states.items()))

    def observe(
        self,
        source_kind: SourceKind,
        source_id: str,
        obs: Observation,
        policy: ConditionPolicy,
        received_s: float | None = None,
    ) -> AlarmSignal | None:
        """Apply one observation; return the signal it causes, if any."""
        key = (source_kind, source_id, obs.alarm_type)
        state = self._states.get(key)
        if state is None:
            if obs.verdict is not Verdict.FAULT:
                return None
            state = ConditionState(policy)
            self._add(key, state)
        ts_s = epoch_s(obs.ts)
        if ts_s < state.last_ts_s:
            return None
        state.policy = policy
        state.last_ts_s = ts_s
        state.last_received_s = ts_s if received_s is None else received_s
        signal = _step(key, state, obs.verdict, ts_s, obs.ts, obs)
        if state.is_idle(ts_s):
            self._remove(key)
        return signal

    def advance(
        self, now_s: float, holding: Callable[[str], bool] | None = None
    ) -> list[AlarmSignal]:
        """Let persisting verdicts complete their streaks at the injected clock `now_s`.

        An idle state is forgotten, unless `holding(source_id)`: its source still holds
        older evidence (a reorder buffer), which must find its suppression window."""
        signals: list[AlarmSignal] = []
        for key, state in list(self._states.items()):
            at_s = state.last_ts_s + max(0.0, now_s - state.last_received_s)
            if state.policy.assume_persists and state.pending:
                verdict = Verdict.OK if state.active else Verdict.FAULT
                signal = _step(key, state, verdict, at_s, datetime_from_epoch(at_s), None)
                if signal is not None:
                    signals.append(signal)
            if state.is_idle(at_s) and (holding is None or not holding(key[1])):
                self._remove(key)
        return signals

    def restore(
        self,
        key: ConditionKey,
        policy: ConditionPolicy,
        severity: Severity,
        raised_at: datetime,
        count: int = 1,
    ) -> None:
        """Mark a condition active without a signal (an alarm already open in the store)."""
        state = ConditionState(policy)
        state.active = True
        state.severity = severity
        state.raised_at = raised_at
        state.count = count
        state.last_ts_s = raised_at.timestamp()
        state.last_received_s = state.last_ts_s
        state.last_emit_s = state.last_ts_s
        self._add(key, state)

    def announce(self, key: ConditionKey, at: datetime, reason: str) -> AlarmSignal | None:
        """RAISE an active condition that was kept silent (its group alarm has cleared)."""
        state = self._states.get(key)
        if state is None or not state.active or state.announced:
            return None
        state.announced = True
        return _signal(key, state, SignalAction.RAISE, at, state.evidence, {"reason": reason})

    def retract(self, key: ConditionKey, at: datetime, reason: str) -> AlarmSignal | None:
        """CLEAR an announced active condition and keep it silent (a group alarm covers it)."""
        state = self._states.get(key)
        if state is None or not state.active or not state.announced:
            return None
        state.announced = False
        return _signal(key, state, SignalAction.CLEAR, at, state.evidence, {"reason": reason})


def _signal(
    key: ConditionKey,
    state: ConditionState,
    action: SignalAction,
    at: datetime,
    evidence: tuple[EvidenceSnapshot, ...],
    details: dict[str, object],
) -> AlarmSignal:
    source_kind, source_id, alarm_type = key
    return AlarmSignal(
        action=action,
        source_kind=source_kind,
        source_id=source_id,
        alarm_type=alarm_type,
        severity=state.severity,
        at=at,
        message=state.message or f"{alarm_type} on {source_kind} {source_id}",
        count=state.count,
        evidence=evidence,
        details=details,
    )


def _step(
    key: ConditionKey,
    state: ConditionState,
    verdict: Verdict,
    t_s: float,
    at: datetime,
    obs: Observation | None,
) -> AlarmSignal | None:
    """One transition of the condition state machine; `obs` is None for a persisted verdict."""
    policy = state.policy
    # The evidence snapshot is built only where it is kept (a FAULT, an OK of an active
    # alarm): most observations are an OK of an alarm that is not active, or a HOLD.
    if verdict is Verdict.FAULT:
        return _step_fault(key, state, t_s, at, obs, policy)
    if verdict is Verdict.OK:
        if not state.active:
            _reset_pending(state)
            return None
        if not state.pending:
            state.streak_start_s = t_s
            state.streak_at = at
            state.clear_evidence = ()
        if obs is not None:
            snap = _new_tuple(EvidenceSnapshot, (obs.ts, obs.device_id, obs.values))
            state.clear_evidence = (*state.clear_evidence[:1], snap)
        if t_s - state.streak_start_s < policy.clear_after_s:
            return None
        raised_at = state.raised_at or at
        details: dict[str, object] = {
            "raised_at": raised_at,
            "active_s": t_s - raised_at.timestamp(),
            "clear_since": state.streak_at,
        }
        if obs is not None:
            details.update(obs.details)
        signal = _signal(
            key,
            state,
            SignalAction.CLEAR,
            at,
            (*state.evidence[-1:], *state.clear_evidence),
            details,
        )
        announced = state.announced
        state.active = False
        state.announced = True
        state.cleared_at_s = t_s
        _reset_pending(state)
        return signal if announced else None
    # HOLD: inside the hysteresis band, neither streak continues.
    if state.active:
        state.streak_start_s = math.nan
        state.clear_evidence = ()
    else:
        _reset_pending(state)
    return None


def _reset_pending(state: ConditionState) -> None:
    state.streak_start_s = math.nan
    state.streak_at = None
    state.count = 0
    state.evidence = ()
    state.clear_evidence = ()


def _step_fault(
    key: ConditionKey,
    state: ConditionState,
    t_s: float,
    at: datetime,
    obs: Observation | None,
    policy: ConditionPolicy,
) -> AlarmSignal | None:
    if obs is not None:
        state.count += 1
        snap = _new_tuple(EvidenceSnapshot, (obs.ts, obs.device_id, obs.values))
        state.evidence = _append(state.evidence, snap, policy.evidence_max)
        if obs.message:
            state.message = obs.message
    if state.active:
        state.streak_start_s = math.nan
        state.clear_evidence = ()
        if obs is None:
            return None
        severity = obs.severity or policy.severity
        reason = None
        if severity != state.severity:
            state.severity = severity
            reason = SEVERITY_CHANGED
        elif t_s - state.last_emit_s >= policy.update_interval_s:
            reason = "repeat"
        if reason is None:
            return None
        state.last_emit_s = t_s
        details: dict[str, object] = {"raised_at": state.raised_at, "reason": reason}
        details.update(obs.details)
        signal = _signal(key, state, SignalAction.UPDATE, at, state.evidence, details)
        return signal if state.announced else None
    if not state.pending:
        state.streak_start_s = t_s
        state.streak_at = at
    if obs is not None:
        state.severity = obs.severity or policy.severity
    if t_s - state.streak_start_s < policy.raise_after_s:
        return None
    suppressed_until_s = state.cleared_at_s + policy.suppress_s
    if t_s < suppressed_until_s:
        return None
    details = {"condition_since": state.streak_at}
    if state.cleared_at_s > _NEVER and policy.suppress_s > 0:
        details["suppressed_until"] = datetime_from_epoch(suppressed_until_s)
    if obs is not None:
        details.update(obs.details)
    state.active = True
    state.announced = True
    state.raised_at = at
    state.last_emit_s = t_s
    state.streak_start_s = math.nan
    state.streak_at = None
    return _signal(key, state, SignalAction.RAISE, at, state.evidence, details)
