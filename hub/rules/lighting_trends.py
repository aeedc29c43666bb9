"""Slow lamp trends: a lit lamp's power factor, and its supply voltage, averaged over hours.

A single reading out of band is the instantaneous rules' business (lamp_voltage); these
follow an exponential moving average per lamp (time constant `tau_s`, irregular intervals
weighted by the time between readings) and judge it once it has seen at least
`min_coverage_s` of readings: a driver whose power factor sinks, a supply that drifts.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass

from hub.devices.decode import Reading
from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Observation, Verdict, epoch_s, observation
from hub.rules.interface import DeviceInfo
from hub.rules.lighting_context import has_supply, lamp_view
from hub.rules.lighting_params import PowerFactorParams, VoltageTrendParams


@dataclass(slots=True)
class TrendState:
    """A moving average, when it was last fed, and how much time it has seen."""

    average: float = math.nan
    last_ts_s: float | None = None
    coverage_s: float = 0.0

    def feed(self, value: float, ts_s: float, tau_s: float, max_gap_s: float) -> None:
        """Add a reading; a gap longer than `max_gap_s` starts the average afresh."""
        if self.last_ts_s is None or math.isnan(self.average) or ts_s - self.last_ts_s > max_gap_s:
            self.average, self.coverage_s = value, 0.0
        elif ts_s > self.last_ts_s:
            dt_s = ts_s - self.last_ts_s
            weight = 1.0 - math.exp(-dt_s / tau_s)
            self.average += weight * (value - self.average)
            self.coverage_s += dt_s
        self.last_ts_s = ts_s


@dataclass(frozen=True)
class PowerFactorRule:
    """A lit lamp's power factor low over an hour or more (an ageing LED driver)."""

    name: str = "power_factor"
    kinds: frozenset[Kind] = frozenset({Kind.LIGHTING})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.POWER_FACTOR_LOW})
    params_model: type[PowerFactorParams] = PowerFactorParams

    def initial_state(self) -> TrendState:
        """Nothing seen."""
        return TrendState()

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: TrendState,
        params: PowerFactorParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """Feed lit readings; judge the average once it covers `min_coverage_s`."""
        del device
        lamp = lamp_view(reading)
        lit = (
            lamp.on
            and lamp.dim_pct >= params.min_dim_pct
            and lamp.power_w >= params.min_power_w
            and has_supply(lamp, params.supply_min_v)
        )
        if not lit:
            return ()  # a dark lamp says nothing about its driver's power factor
        state.feed(lamp.power_factor, epoch_s(reading.ts), params.tau_s, params.max_gap_s)
        average = state.average
        if state.coverage_s < params.min_coverage_s:
            verdict = Verdict.HOLD
        elif average < params.low_pf:
            verdict = Verdict.FAULT
        elif average >= params.clear_pf:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        if faults_only and verdict is not Verdict.FAULT:
            return ()  # a quiet lamp: only a FAULT changes anything
        return (
            observation(
                AlarmType.POWER_FACTOR_LOW,
                verdict,
                reading.ts,
                reading.device_id,
                values={
                    "power_factor": lamp.power_factor,
                    "average_pf": round(average, 3),
                    "hours": round(state.coverage_s / 3600, 2),
                },
                message=f"power factor {average:.2f} on average, below {params.low_pf:.2f}"
                if verdict is Verdict.FAULT
                else "",
            ),
        )


@dataclass(frozen=True)
class VoltageTrendRule:
    """A lamp's supply drifting out of ±5 % over hours (a feeder or transformer tap problem)."""

    name: str = "voltage_trend"
    kinds: frozenset[Kind] = frozenset({Kind.LIGHTING})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.VOLTAGE_TREND})
    params_model: type[VoltageTrendParams] = VoltageTrendParams

    def initial_state(self) -> TrendState:
        """Nothing seen."""
        return TrendState()

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: TrendState,
        params: VoltageTrendParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """Feed supplied readings; judge the average once it covers `min_coverage_s`."""
        del device
        lamp = lamp_view(reading)
        if not has_supply(lamp, params.supply_min_v):
            return ()  # no supply at all is the cabinet rules' business
        state.feed(lamp.voltage_v, epoch_s(reading.ts), params.tau_s, params.max_gap_s)
        average = state.average
        if state.coverage_s < params.min_coverage_s:
            verdict = Verdict.HOLD
        elif not params.low_v <= average <= params.high_v:
            verdict = Verdict.FAULT
        elif (
            params.low_v + params.clear_margin_v <= average <= params.high_v - params.clear_margin_v
        ):
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        if faults_only and verdict is not Verdict.FAULT:
            return ()  # a quiet lamp: only a FAULT changes anything
        return (
            observation(
                AlarmType.VOLTAGE_TREND,
                verdict,
                reading.ts,
                reading.device_id,
                values={
                    "voltage_v": lamp.voltage_v,
                    "average_v": round(average, 1),
                    "hours": round(state.coverage_s / 3600, 2),
                },
                message=f"supply {average:.0f} V on average, outside"
                f" {params.low_v:.0f}-{params.high_v:.0f} V"
                if verdict is Verdict.FAULT
                else "",
            ),
        )
