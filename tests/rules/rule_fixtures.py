"""Readings, example rules and configs shared by the rule engine tests."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.lighting import LightingPayload
from hub.devices.manholes import ManholePayload
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Observation, Verdict
from hub.rules.config import RulesConfig, parse_rules_config
from hub.rules.interface import DeviceInfo, GroupView

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """The test epoch plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def _ms(ts: datetime) -> int:
    """Epoch milliseconds, as the wire contract accepts them."""
    return round(ts.timestamp() * 1000)


def manhole_reading(
    device_id: str, ts_s: float, tilt_deg: float, received_s: float | None = None
) -> Reading:
    """A manhole cover reading at T0 + ts_s, received at T0 + received_s (default: at once)."""
    ts = at(ts_s)
    payload = ManholePayload(ts=_ms(ts), tilt_deg=tilt_deg, cover_open=False)
    received = at(ts_s if received_s is None else received_s)
    return Reading(Kind.MANHOLE, device_id, Channel.TELEMETRY, ts, received, payload)


def lamp_reading(
    device_id: str, ts_s: float, *, lit: bool, received_s: float | None = None
) -> Reading:
    """A lamp commanded on that is lit (normal power) or dark (no power)."""
    ts = at(ts_s)
    payload = LightingPayload(
        ts=_ms(ts),
        on=True,
        dim_pct=100,
        voltage_v=230,
        current_a=0.5 if lit else 0.0,
        power_w=110 if lit else 0.0,
        power_factor=0.95,
        energy_kwh=1.0,
    )
    received = at(ts_s if received_s is None else received_s)
    return Reading(Kind.LIGHTING, device_id, Channel.TELEMETRY, ts, received, payload)


class TiltParams(BaseModel):
    """Tilt thresholds with a hysteresis band."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raise_deg: float = 10.0
    clear_deg: float = 8.0


@dataclass(frozen=True)
class TiltRule:
    """Example device rule: tilt above raise_deg is a fault, below clear_deg is normal."""

    name: str = "tilt"
    kinds: frozenset[Kind] = frozenset({Kind.MANHOLE})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.TILT})
    params_model: type[TiltParams] = TiltParams

    def initial_state(self) -> None:
        """Stateless."""

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: None, params: TiltParams
    ) -> Iterable[Observation]:
        """One observation per reading."""
        del device, state
        tilt = float(reading.value("tilt_deg"))
        if tilt > params.raise_deg:
            verdict = Verdict.FAULT
        elif tilt < params.clear_deg:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        return (
            Observation(
                AlarmType.TILT,
                verdict,
                reading.ts,
                reading.device_id,
                values={"tilt_deg": tilt},
                message=f"cover tilted {tilt:.1f}°",
            ),
        )


class NoParams(BaseModel):
    """No parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class LampOutRule:
    """Example device rule: a lamp commanded on that draws no power is out."""

    name: str = "lamp_out"
    kinds: frozenset[Kind] = frozenset({Kind.LIGHTING})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.LAMP_OUT})
    params_model: type[NoParams] = NoParams

    def initial_state(self) -> None:
        """Stateless."""

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: None, params: NoParams
    ) -> Iterable[Observation]:
        """Dark while commanded on is a fault."""
        del device, state, params
        dark = bool(reading.value("on")) and float(reading.value("power_w")) < 5
        verdict = Verdict.FAULT if dark else Verdict.OK
        return (Observation(AlarmType.LAMP_OUT, verdict, reading.ts, reading.device_id),)


class CircuitDarkParams(BaseModel):
    """Share of dark members that raises and that clears the group alarm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raise_share: float = 0.5
    clear_share: float = 0.2


@dataclass(frozen=True)
class CircuitDarkRule:
    """Example group rule: most lamps of a circuit dark is one circuit alarm."""

    name: str = "circuit_dark"
    member_kinds: frozenset[Kind] = frozenset({Kind.LIGHTING})
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.CIRCUIT_DARK})
    suppresses: frozenset[AlarmType] = frozenset({AlarmType.LAMP_OUT})
    params_model: type[CircuitDarkParams] = CircuitDarkParams

    def project(self, reading: Reading, params: CircuitDarkParams) -> bool:
        """Keep only whether the lamp is dark."""
        del params
        return bool(reading.value("on")) and float(reading.value("power_w")) < 5

    def evaluate_group(
        self, group: GroupView[bool], params: CircuitDarkParams
    ) -> Iterable[Observation]:
        """Share of all registered members known to be dark."""
        dark = sum(1 for m in group.member_ids if group.latest.get(m) is True)
        share = dark / max(1, len(group.member_ids))
        if share >= params.raise_share:
            verdict = Verdict.FAULT
        elif share <= params.clear_share:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        return (
            Observation(
                AlarmType.CIRCUIT_DARK,
                verdict,
                group.ts,
                group.group_id,
                values={"dark": dark, "members": len(group.member_ids)},
                message=f"{dark} of {len(group.member_ids)} lamps dark",
            ),
        )


def make_config(
    rules: Mapping[str, Any] | None = None, *, reorder_tolerance_s: float = 10.0
) -> RulesConfig:
    """A rules config whose offline thresholds are long unless the test sets them."""
    sections: dict[str, Any] = {
        "offline": {"expected_interval_s": 3600, "missed_reports": 24},
    }
    sections.update(rules or {})
    return parse_rules_config({"reorder_tolerance_s": reorder_tolerance_s, "rules": sections})
