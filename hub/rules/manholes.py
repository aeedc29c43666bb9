"""Manhole cover rules: tilt against the installed baseline, cover open, water level, gas, battery.

Tilt is judged as |tilt − baseline|, the baseline being the registry attribute
`baseline_tilt_deg` (written at install and by the recalibrate command). The threshold
is per cover type (owner) with a default of 10°; a heavy vehicle rocking the cover gives
one alarm-level reading and a normal one seconds later, so the rule's `raise_after_s`
(rules.yaml) needs the tilt confirmed by a later reading before it raises. A cover that
is open or tilted on a main road is critical, which the case policy files as urgent.
Offline is the engine's built-in rule.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hub.devices.decode import Reading
from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.condition import Observation, Verdict, observation, real_number
from hub.rules.interface import AnyRule, DeviceInfo
from hub.rules.manhole_params import (
    BatteryParams,
    GasParams,
    LevelParams,
    NoParams,
    TiltParams,
    WaterAlertParams,
    WaterDangerParams,
)

MAIN_ROAD = "main"


def baseline_tilt_deg(device: DeviceInfo) -> float:
    """The cover's installed (or last recalibrated) tilt; 0 when never calibrated."""
    baseline = real_number(device.attributes.get("baseline_tilt_deg"))
    return 0.0 if baseline is None else baseline


def cover_type(device: DeviceInfo) -> str:
    """The cover's owner type (`storm_water`, `gas`, …) from the registry, `unknown` if absent."""
    value = device.attributes.get("cover_type")
    return value if isinstance(value, str) and value else "unknown"


def on_main_road(device: DeviceInfo) -> bool:
    """Whether the cover lies on a main road (a displaced cover there is urgent)."""
    return device.attributes.get("road_class") == MAIN_ROAD


@dataclass(frozen=True, slots=True)
class TiltRule:
    """|tilt − baseline| above the cover type's threshold is a fault, below it minus a margin OK."""

    name: str = "manhole_tilt"
    kinds: frozenset[Kind] = frozenset({Kind.MANHOLE})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.TILT})
    params_model: type[TiltParams] = TiltParams

    def initial_state(self) -> None:
        """Stateless: the confirmation window is the condition's debounce."""

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: TiltParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """One verdict on the tilt condition per reading."""
        del state
        tilt = reading.value("tilt_deg")
        if tilt is None:
            return ()
        baseline = baseline_tilt_deg(device)
        delta = abs(float(tilt) - baseline)
        threshold = params.threshold_for(cover_type(device))
        if delta > threshold:
            verdict = Verdict.FAULT
        elif delta <= threshold - params.clear_margin_deg:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        if faults_only and verdict is not Verdict.FAULT:
            return ()  # a quiet cover: only a FAULT changes anything
        return (
            observation(
                AlarmType.TILT,
                verdict,
                reading.ts,
                reading.device_id,
                values={"tilt_deg": float(tilt), "baseline_tilt_deg": baseline},
                message=f"cover tilted {delta:.1f}° from its baseline (limit {threshold:g}°)"
                if verdict is Verdict.FAULT
                else "",
                severity=Severity.CRITICAL if on_main_road(device) else None,
                details={"delta_deg": round(delta, 2), "threshold_deg": threshold},
            ),
        )


@dataclass(frozen=True, slots=True)
class CoverOpenRule:
    """A cover reported open (lifted or pushed aside) is a fault until it reports closed."""

    name: str = "manhole_cover_open"
    kinds: frozenset[Kind] = frozenset({Kind.MANHOLE})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.COVER_OPEN})
    params_model: type[NoParams] = NoParams

    def initial_state(self) -> None:
        """Stateless."""

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: NoParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """Open is a fault, closed is OK."""
        del state, params
        is_open = reading.value("cover_open")
        if is_open is None or (faults_only and not is_open):
            return ()  # no reading of the cover, or a quiet cover closed
        return (
            observation(
                AlarmType.COVER_OPEN,
                Verdict.FAULT if is_open else Verdict.OK,
                reading.ts,
                reading.device_id,
                values={"cover_open": bool(is_open), "tilt_deg": reading.value("tilt_deg")},
                message="manhole cover open or displaced",
                severity=Severity.CRITICAL if on_main_road(device) else None,
            ),
        )


def _level_verdict(value: float, params: LevelParams, *, high_is_bad: bool) -> Verdict:
    if high_is_bad:
        if value >= params.raise_at:
            return Verdict.FAULT
        if value < params.raise_at - params.clear_margin:
            return Verdict.OK
        return Verdict.HOLD
    if value <= params.raise_at:
        return Verdict.FAULT
    if value > params.raise_at + params.clear_margin:
        return Verdict.OK
    return Verdict.HOLD


@dataclass(frozen=True, slots=True)
class LevelRule:
    """One optional numeric field against a level: water, gas, battery."""

    name: str
    alarm_type: AlarmType
    field_name: str
    params_model: type[LevelParams]
    high_is_bad: bool
    label: str
    kinds: frozenset[Kind] = frozenset({Kind.MANHOLE})
    unit: str = ""
    alarm_types: frozenset[AlarmType] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "alarm_types", frozenset({self.alarm_type}))

    def initial_state(self) -> None:
        """Stateless."""

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: LevelParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """A verdict when the reading carries the field; nothing when it does not."""
        del device, state
        value = real_number(reading.value(self.field_name))
        if value is None:
            return ()
        verdict = _level_verdict(value, params, high_is_bad=self.high_is_bad)
        if faults_only and verdict is not Verdict.FAULT:
            return ()  # a quiet cover: only a FAULT changes anything
        values: Mapping[str, object] = {self.field_name: value}
        return (
            observation(
                self.alarm_type,
                verdict,
                reading.ts,
                reading.device_id,
                values=values,
                message=f"{self.label} {value:g}{self.unit} (limit {params.raise_at:g}{self.unit})",
            ),
        )


RULES: tuple[AnyRule, ...] = (
    TiltRule(),
    CoverOpenRule(),
    LevelRule(
        "manhole_water_alert",
        AlarmType.WATER_ALERT,
        "water_level_cm",
        WaterAlertParams,
        high_is_bad=True,
        label="water level",
        unit=" cm",
    ),
    LevelRule(
        "manhole_water_danger",
        AlarmType.WATER_DANGER,
        "water_level_cm",
        WaterDangerParams,
        high_is_bad=True,
        label="water level",
        unit=" cm",
    ),
    LevelRule(
        "manhole_gas",
        AlarmType.GAS,
        "gas_lel_pct",
        GasParams,
        high_is_bad=True,
        label="combustible gas",
        unit="% LEL",
    ),
    LevelRule(
        "manhole_low_battery",
        AlarmType.LOW_BATTERY,
        "battery_pct",
        BatteryParams,
        high_is_bad=False,
        label="battery",
        unit="%",
    ),
)
