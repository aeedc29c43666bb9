"""Street-lamp rules: one single-lamp controller reading judged against its rating
(`rated_power_w` attribute), the dim level it reports and the sun at its location.

A lamp whose supply is gone (voltage near 0, `fault_code` SUPPLY_LOSS) is never judged as
a lamp fault: that is the cabinet group rules' business (hub/rules/lighting_cabinets.py),
and while one of those is active the members' own lamp_out, under_voltage, power_abnormal
and offline alarms are covered. `RULES` and `GROUP_RULES` are the lighting domain's rules.
"""

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.devices.decode import Reading
from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Observation, Verdict, epoch_s, observation
from hub.rules.interface import AnyGroupRule, AnyRule, DeviceInfo
from hub.rules.lighting_cabinets import (
    CabinetRule,
    CabinetTripRule,
    CableTheftRule,
    CircuitDarkRule,
)
from hub.rules.lighting_context import (
    INTENT,
    SUN,
    daylight,
    expected_power_w,
    has_supply,
    lamp_view,
    rated_power_w,
    sun_position,
)
from hub.rules.lighting_params import (
    DarkAtNightParams,
    FlickerParams,
    LampOutParams,
    LitByDayParams,
    OverCurrentParams,
    PowerParams,
    VoltageParams,
)
from hub.rules.lighting_trends import PowerFactorRule, VoltageTrendRule


@dataclass(frozen=True)
class _LampRule:
    """What the stateless lamp rules share: the kind they judge, and no state."""

    kinds: frozenset[Kind] = frozenset({Kind.LIGHTING})

    def initial_state(self) -> None:
        """Stateless."""
        return


@dataclass(frozen=True)
class LampOutRule(_LampRule):
    """Lamp out while it should be lit: on (commanded or by schedule), supply live, no power."""

    name: str = "lamp_out"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.LAMP_OUT})
    params_model: type[LampOutParams] = LampOutParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: LampOutParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """FAULT when on with live supply and (almost) no power."""
        del state
        lamp = lamp_view(reading)
        power_w = lamp.power_w
        expected = expected_power_w(lamp, device)
        floor_w = max(params.min_power_w, params.dark_share * (expected or 0.0))
        supplied = has_supply(lamp, params.supply_min_v)
        out = lamp.on and supplied and power_w < floor_w
        # Without supply the lamp cannot be judged: the cabinet's group alarm covers it.
        verdict = Verdict.FAULT if out else Verdict.OK if supplied else Verdict.HOLD
        if faults_only and verdict is not Verdict.FAULT:
            return ()  # a quiet lamp: only a FAULT changes anything
        return (
            observation(
                AlarmType.LAMP_OUT,
                verdict,
                reading.ts,
                reading.device_id,
                values={
                    "on": lamp.on,
                    "dim_pct": lamp.dim_pct,
                    "voltage_v": lamp.voltage_v,
                    "power_w": power_w,
                },
                message=f"lamp on but drawing {power_w:.0f} W" if out else "",
            ),
        )


@dataclass(frozen=True)
class LitByDayRule(_LampRule):
    """白天亮灯: the lamp draws power while the sun is up at its location."""

    name: str = "lit_by_day"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.LIT_BY_DAY})
    params_model: type[LitByDayParams] = LitByDayParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: LitByDayParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """FAULT when lit in daylight (with margin); OK when dark or at night."""
        del state
        where = sun_position(device, params.lat, params.lon)
        if where is None:
            return ()
        lamp = lamp_view(reading)
        lit = lamp.on and lamp.power_w >= params.min_power_w
        if not lit:
            verdict = Verdict.OK
        else:
            phase = SUN.phase(where[0], where[1], reading.ts)
            if daylight(phase, params.margin_min * 60):
                verdict = Verdict.FAULT
            elif not phase[0]:
                verdict = Verdict.OK  # night
            else:
                verdict = Verdict.HOLD  # around dawn and dusk: lit is allowed, not proof of health
        if faults_only and verdict is not Verdict.FAULT:
            return ()  # a quiet lamp: only a FAULT changes anything
        return (
            observation(
                AlarmType.LIT_BY_DAY,
                verdict,
                reading.ts,
                reading.device_id,
                values={"on": lamp.on, "dim_pct": lamp.dim_pct, "power_w": lamp.power_w},
                message="lamp lit in daylight" if verdict is Verdict.FAULT else "",
            ),
        )


@dataclass(frozen=True)
class DarkAtNightRule(_LampRule):
    """夜间不亮: the lamp reports `on` false at night with its supply live, and no commanded
    off or maintenance lockout explains it (a lamp that says on but draws nothing is
    lamp_out's business; one without supply the group rules')."""

    name: str = "dark_at_night"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.DARK_AT_NIGHT})
    params_model: type[DarkAtNightParams] = DarkAtNightParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: DarkAtNightParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """FAULT when off and supplied at night; OK when on, by day or meant to be dark."""
        del state
        where = sun_position(device, params.lat, params.lon)
        if where is None:
            return ()
        lamp = lamp_view(reading)
        if lamp.on or INTENT.explains(reading.device_id, reading.ts) is not None:
            verdict = Verdict.OK
        elif not has_supply(lamp, params.supply_min_v):
            verdict = Verdict.HOLD  # the cabinet's trip or circuit alarm judges it
        else:
            phase = SUN.phase(where[0], where[1], reading.ts)
            margin_s = params.margin_min * 60
            if not phase[0] and phase[1] >= margin_s and phase[2] >= margin_s:
                verdict = Verdict.FAULT
            elif phase[0]:
                verdict = Verdict.OK  # day: off is right
            else:
                verdict = Verdict.HOLD  # around dusk and dawn the switching may lag
        if faults_only and verdict is not Verdict.FAULT:
            return ()  # a quiet lamp: only a FAULT changes anything
        return (
            observation(
                AlarmType.DARK_AT_NIGHT,
                verdict,
                reading.ts,
                reading.device_id,
                values={"on": lamp.on, "voltage_v": lamp.voltage_v, "power_w": lamp.power_w},
                message="lamp off at night with supply present" if verdict is Verdict.FAULT else "",
            ),
        )


@dataclass(frozen=True)
class VoltageRule(_LampRule):
    """Over- and under-voltage at the lamp; no supply at all is not under-voltage."""

    name: str = "lamp_voltage"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.OVER_VOLTAGE, AlarmType.UNDER_VOLTAGE})
    params_model: type[VoltageParams] = VoltageParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: VoltageParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """One observation per direction."""
        del device, state
        lamp = lamp_view(reading)
        volts = lamp.voltage_v
        values = {"voltage_v": volts, "on": lamp.on}
        if not has_supply(lamp, params.supply_min_v):
            under = Verdict.HOLD  # no supply at all is the group rule's business
            over = Verdict.HOLD
        else:
            under = (
                Verdict.FAULT
                if volts < params.under_v
                else Verdict.OK
                if volts >= params.under_v + params.clear_margin_v
                else Verdict.HOLD
            )
            over = (
                Verdict.FAULT
                if volts > params.over_v
                else Verdict.OK
                if volts <= params.over_v - params.clear_margin_v
                else Verdict.HOLD
            )
        if faults_only and under is not Verdict.FAULT and over is not Verdict.FAULT:
            return ()  # a quiet lamp: only a FAULT changes anything
        return (
            observation(
                AlarmType.UNDER_VOLTAGE,
                under,
                reading.ts,
                reading.device_id,
                values=values,
                message=f"supply {volts:.0f} V below {params.under_v:.0f} V"
                if under is Verdict.FAULT
                else "",
            ),
            observation(
                AlarmType.OVER_VOLTAGE,
                over,
                reading.ts,
                reading.device_id,
                values=values,
                message=f"supply {volts:.0f} V above {params.over_v:.0f} V"
                if over is Verdict.FAULT
                else "",
            ),
        )


@dataclass(frozen=True)
class OverCurrentRule(_LampRule):
    """Over-current for the lamp's rating (a short or a failing driver)."""

    name: str = "over_current"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.OVER_CURRENT})
    params_model: type[OverCurrentParams] = OverCurrentParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: OverCurrentParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """FAULT above the limit; nothing without a rating."""
        del state
        rating = rated_power_w(device)
        lamp = lamp_view(reading)
        if rating is None or not has_supply(lamp, params.supply_min_v):
            return ()
        limit_a = params.factor * rating / (lamp.voltage_v * params.min_power_factor)
        amps = lamp.current_a
        if faults_only and amps <= limit_a:
            return ()  # a quiet lamp: only a FAULT changes anything
        return (
            observation(
                AlarmType.OVER_CURRENT,
                Verdict.FAULT if amps > limit_a else Verdict.OK,
                reading.ts,
                reading.device_id,
                values={
                    "current_a": amps,
                    "voltage_v": lamp.voltage_v,
                    "power_w": lamp.power_w,
                    "limit_a": limit_a,
                },
                message=f"current {amps:.2f} A above {limit_a:.2f} A" if amps > limit_a else "",
            ),
        )


@dataclass(frozen=True)
class PowerRule(_LampRule):
    """Power out of band for the rating at the current dim level (degradation, wrong lamp)."""

    name: str = "power_abnormal"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.POWER_ABNORMAL})
    params_model: type[PowerParams] = PowerParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: PowerParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """Judged only while lit with live supply; a dark lamp is lamp_out's business."""
        del state
        lamp = lamp_view(reading)
        expected = expected_power_w(lamp, device)
        if expected is None:
            return ()
        power_w = lamp.power_w
        supplied = has_supply(lamp, params.supply_min_v)
        lit = (
            lamp.on
            and supplied
            and lamp.dim_pct >= params.min_dim_pct
            and power_w >= params.dark_share * expected
        )
        if not supplied:
            verdict = Verdict.HOLD
        elif not lit:
            verdict = Verdict.OK if not lamp.on else Verdict.HOLD
        else:
            share = power_w / expected
            if share < params.low_share or share > params.high_share:
                verdict = Verdict.FAULT
            elif params.clear_low_share <= share <= params.clear_high_share:
                verdict = Verdict.OK
            else:
                verdict = Verdict.HOLD
        if faults_only and verdict is not Verdict.FAULT:
            return ()  # a quiet lamp: only a FAULT changes anything
        return (
            observation(
                AlarmType.POWER_ABNORMAL,
                verdict,
                reading.ts,
                reading.device_id,
                values={
                    "dim_pct": lamp.dim_pct,
                    "power_w": power_w,
                    "expected_w": round(expected, 1),
                },
                message=f"power {power_w:.0f} W, expected {expected:.0f} W"
                if verdict is Verdict.FAULT
                else "",
            ),
        )


@dataclass(slots=True)
class FlickerState:
    """The lamp's last on/off state and the times it changed, newest last.

    A list, not a deque: an empty deque takes ~600 bytes and every lamp has this state.
    """

    last_on: bool | None = None
    switches_s: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class FlickerRule:
    """Frequent switching (a failing lamp or controller cycling on and off)."""

    name: str = "flicker"
    kinds: frozenset[Kind] = frozenset({Kind.LIGHTING})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.FLICKER})
    params_model: type[FlickerParams] = FlickerParams

    def initial_state(self) -> FlickerState:
        """No history."""
        return FlickerState()

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: FlickerState,
        params: FlickerParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """Count state changes in the sliding window."""
        del device
        on = lamp_view(reading).on
        ts_s = epoch_s(reading.ts)
        if state.last_on is not None and on != state.last_on:
            state.switches_s.append(ts_s)
        state.last_on = on
        del state.switches_s[: bisect.bisect_left(state.switches_s, ts_s - params.window_s)]
        switches = len(state.switches_s)
        if switches >= params.min_switches:
            verdict = Verdict.FAULT
        elif switches <= params.clear_switches:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        if faults_only and verdict is not Verdict.FAULT:
            return ()  # a quiet lamp: only a FAULT changes anything
        return (
            observation(
                AlarmType.FLICKER,
                verdict,
                reading.ts,
                reading.device_id,
                values={"on": on, "switches": switches, "window_s": params.window_s},
                message=f"{switches} on/off changes in {params.window_s / 60:.0f} min"
                if verdict is Verdict.FAULT
                else "",
            ),
        )


# -- cabinet rule -----------------------------------------------------------------------


RULES: tuple[AnyRule, ...] = (
    LampOutRule(),
    LitByDayRule(),
    DarkAtNightRule(),
    VoltageRule(),
    OverCurrentRule(),
    PowerRule(),
    FlickerRule(),
    PowerFactorRule(),
    VoltageTrendRule(),
    CabinetRule(),
    CableTheftRule(),
)
GROUP_RULES: tuple[AnyGroupRule, ...] = (CabinetTripRule(), CircuitDarkRule())
