"""Parking spot rules: a debounced spot state, overstay by the spot's maximum stay, stuck sensors.

Geomagnetic sensors report arrivals and departures as events plus a heartbeat; drift and a
neighbouring vehicle flip a reading for a few seconds. A reported state becomes the spot's
state once no contrary report came within `confirm_s` of it (the same test as
`debounce_spot_states`, which the store uses to compute occupancy from stored readings,
so alarms and occupancy agree). A car that stays longer than the spot's `max_stay_min`
(registry attribute; on-street zones have one, lots usually not) is an overstay from the
moment it arrived + max stay until it leaves. A sensor that keeps reporting without a
single change of state for `stuck_after_s` (24 h: a free spot in a busy street sees about
20 arrivals a day) is stuck. Offline is the engine's built-in rule.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.devices.decode import Reading
from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Observation, Verdict, observation, real_number
from hub.rules.interface import AnyRule, DeviceInfo
from hub.rules.parking_params import DEFAULT_CONFIRM_S, SpotParams


@dataclass(frozen=True, slots=True)
class SpotChange:
    """A confirmed change of a spot's state: occupied (arrival) or free (departure) since `ts`."""

    ts: datetime
    occupied: bool


def debounce_spot_states(
    reports: Sequence[tuple[datetime, bool]], now: datetime, confirm_s: float = DEFAULT_CONFIRM_S
) -> list[SpotChange]:
    """Confirmed state changes of one spot from its reports (ts order), as known at `now`.

    A run of equal reports is real when the next contrary report comes at least `confirm_s`
    after the run began, or, for the last run, when `now` is that far past its start.
    Runs too short are dropped and their neighbours merge.
    """
    changes: list[SpotChange] = []
    run_start: datetime | None = None
    run_state = False
    for ts, occupied in reports:
        if run_start is not None and occupied == run_state:
            continue
        if run_start is not None and (ts - run_start).total_seconds() >= confirm_s:
            _append_change(changes, SpotChange(run_start, run_state))
        run_start, run_state = ts, occupied
    if run_start is not None and (now - run_start).total_seconds() >= confirm_s:
        _append_change(changes, SpotChange(run_start, run_state))
    return changes


def _append_change(changes: list[SpotChange], change: SpotChange) -> None:
    if not changes or changes[-1].occupied != change.occupied:
        changes.append(change)


def state_at(changes: Sequence[SpotChange], at: datetime) -> bool | None:
    """The spot's state at a time from its confirmed changes; None before the first."""
    state: bool | None = None
    for change in changes:
        if change.ts > at:
            break
        state = change.occupied
    return state


def max_stay_min(device: DeviceInfo) -> float | None:
    """The spot's maximum stay in minutes (its zone's rule), None when unlimited."""
    limit = real_number(device.attributes.get("max_stay_min"))
    return limit if limit is not None and limit > 0 else None


class SpotState:
    """One spot's debounce and dwell bookkeeping, in event time."""

    __slots__ = ("candidate", "candidate_ts", "confirmed", "confirmed_ts", "last_flip_ts")

    def __init__(self) -> None:
        self.confirmed: bool | None = None
        self.confirmed_ts: datetime | None = None
        self.candidate: bool | None = None
        self.candidate_ts: datetime | None = None
        self.last_flip_ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class SpotRule:
    """Debounced spot state → overstay and stuck-sensor verdicts on every report."""

    name: str = "parking_spot"
    kinds: frozenset[Kind] = frozenset({Kind.PARKING})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.OVERSTAY, AlarmType.STUCK_SENSOR})
    params_model: type[SpotParams] = SpotParams

    def initial_state(self) -> SpotState:
        """A spot not heard from yet."""
        return SpotState()

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: SpotState,
        params: SpotParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """Advance the debounce with one report, then judge overstay and stuck."""
        raw = reading.value("occupied")
        if raw is None:
            return ()
        occupied = bool(raw)
        ts = reading.ts
        if state.last_flip_ts is None or occupied != state.candidate:
            state.last_flip_ts = ts
        if state.candidate is not None and state.candidate_ts is not None:
            held_s = (ts - state.candidate_ts).total_seconds()
            if occupied != state.candidate and held_s >= params.confirm_s:
                _confirm(state, state.candidate, state.candidate_ts)
        if occupied != state.candidate:
            state.candidate, state.candidate_ts = occupied, ts
        elif state.candidate_ts is not None and (
            (ts - state.candidate_ts).total_seconds() >= params.confirm_s
        ):
            _confirm(state, occupied, state.candidate_ts)
        quiet_s = (ts - state.last_flip_ts).total_seconds()
        stuck = quiet_s >= params.stuck_after_s
        overstay = self._overstay(reading, device, state, faults_only=faults_only)
        if overstay is None and not stuck:
            return ()  # a quiet spot within its stay: only a FAULT changes anything
        observations = [] if overstay is None else [overstay]
        observations.append(
            observation(
                AlarmType.STUCK_SENSOR,
                Verdict.FAULT if stuck else Verdict.OK,
                ts,
                reading.device_id,
                values={"occupied": occupied, "unchanged_s": round(quiet_s)},
                message=f"sensor reported {'occupied' if occupied else 'free'} without a change"
                f" for {quiet_s / 3600:.1f} h"
                if stuck
                else "",
            )
        )
        return observations

    @staticmethod
    def _overstay(
        reading: Reading, device: DeviceInfo, state: SpotState, *, faults_only: bool = False
    ) -> Observation | None:
        """The overstay verdict; None when only a FAULT is wanted and this is none."""
        limit_min = max_stay_min(device)
        arrived = state.confirmed_ts if state.confirmed else None
        stay_min = None
        if limit_min is not None and arrived is not None:
            stay_min = (reading.ts - arrived).total_seconds() / 60
        over = stay_min is not None and limit_min is not None and stay_min > limit_min
        if faults_only and not over:
            return None
        verdict = Verdict.OK
        values: dict[str, object] = {"occupied": state.confirmed}
        message = "no overstay"
        if stay_min is not None and arrived is not None:
            values.update({"arrived_at": arrived.isoformat(), "stay_min": round(stay_min, 1)})
            if over:
                verdict = Verdict.FAULT
                message = (
                    f"parked {stay_min:.0f} min since {arrived.isoformat()} (limit {limit_min:g})"
                )
        return observation(
            AlarmType.OVERSTAY,
            verdict,
            reading.ts,
            reading.device_id,
            values=values,
            message=message,
            details={"max_stay_min": limit_min} if limit_min is not None else {},
        )


def _confirm(state: SpotState, occupied: bool, since: datetime) -> None:
    if state.confirmed != occupied:
        state.confirmed, state.confirmed_ts = occupied, since


RULES: tuple[AnyRule, ...] = (SpotRule(),)


@dataclass(frozen=True, slots=True)
class SpotFlows:
    """Arrivals, departures and completed stays of some spots in a time window."""

    arrivals: int
    departures: int
    dwell_s: tuple[float, ...]

    @property
    def average_dwell_s(self) -> float | None:
        """Mean duration of the stays that ended in the window."""
        return sum(self.dwell_s) / len(self.dwell_s) if self.dwell_s else None


def count_flows(
    changes_by_spot: Iterable[Sequence[SpotChange]], start: datetime, end: datetime
) -> SpotFlows:
    """Arrivals and departures in [start, end); a stay counts when its departure is inside.

    A spot's first change is its initial known state, not a transition.
    """
    arrivals = departures = 0
    dwell: list[float] = []
    for changes in changes_by_spot:
        arrived: datetime | None = None
        for position, change in enumerate(changes):
            if position == 0:
                arrived = change.ts if change.occupied else None
                continue
            if change.occupied:
                arrived = change.ts
                if start <= change.ts < end:
                    arrivals += 1
            else:
                if start <= change.ts < end:
                    departures += 1
                    if arrived is not None:
                        dwell.append((change.ts - arrived).total_seconds())
                arrived = None
    return SpotFlows(arrivals, departures, tuple(dwell))
