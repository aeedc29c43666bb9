"""Lighting rules on the real rules file: each lamp fault raises, a dark cabinet raises once."""

from datetime import UTC, datetime, timedelta

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.lighting import CabinetPayload, LightingPayload
from hub.rules import lighting as lighting_rules
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Verdict
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.lighting import FlickerRule
from hub.rules.lighting_context import INTENT, IntentWindow, SunTimes
from hub.rules.lighting_params import FlickerParams
from hub.rules.signals import AlarmSignal, SignalAction, SourceKind

NIGHT = datetime(2026, 11, 19, 13, 0, tzinfo=UTC)  # 21:00 in Suzhou
NOON = datetime(2026, 11, 19, 4, 0, tzinfo=UTC)  # 12:00 in Suzhou
LAT, LON = 31.3, 120.62


def _lamp(i: int, cabinet: str = "CAB-00001") -> DeviceInfo:
    return DeviceInfo(
        f"LMP-{i:06d}", Kind.LIGHTING, cabinet, {"rated_power_w": 100}, LAT, LON + i * 1e-4
    )


def _reading(
    device_id: str,
    ts: datetime,
    *,
    on: bool = True,
    dim_pct: float = 100.0,
    voltage_v: float = 220.0,
    power_w: float | None = None,
    supply: bool = True,
) -> Reading:
    if not supply:
        on, dim_pct, voltage_v, power_w = False, 0.0, 0.0, 0.0
    watts = (100.0 * dim_pct / 100 if on else 0.0) if power_w is None else power_w
    payload = LightingPayload(
        ts=round(ts.timestamp() * 1000),
        on=on,
        dim_pct=dim_pct,
        voltage_v=voltage_v,
        current_a=watts / max(voltage_v, 1.0) / 0.95,
        power_w=watts,
        power_factor=0.95 if watts else 0.0,
        energy_kwh=10.0,
        fault_code=None if supply else "SUPPLY_LOSS",
    )
    return Reading(Kind.LIGHTING, device_id, Channel.TELEMETRY, ts, ts, payload)


def _engine(devices: list[DeviceInfo], now: datetime) -> RuleEngine:
    return RuleEngine(
        load_rules_config(),
        devices,
        now=now,
        rules=lighting_rules.RULES,
        group_rules=lighting_rules.GROUP_RULES,
    )


def _raised(signals: list[AlarmSignal]) -> set[tuple[str, AlarmType]]:
    return {(s.source_id, s.alarm_type) for s in signals if s.action is SignalAction.RAISE}


def _feed(engine: RuleEngine, readings: list[Reading]) -> list[AlarmSignal]:
    signals: list[AlarmSignal] = []
    for reading in readings:
        signals += engine.process([reading])
        signals += engine.tick(reading.ts + timedelta(seconds=30))
    return signals


def _every_5_min(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=5 * k) for k in range(count)]


def test_sun_times_tell_day_from_night_with_a_margin() -> None:
    sun = SunTimes()
    assert sun.is_day(LAT, LON, NOON, 20 * 60)
    assert sun.is_night(LAT, LON, NIGHT, 20 * 60)
    assert not sun.is_day(LAT, LON, NIGHT, 0)


def test_lamp_faults_each_raise_their_type() -> None:
    cases = {
        AlarmType.LAMP_OUT: {"power_w": 0.0},
        AlarmType.UNDER_VOLTAGE: {"voltage_v": 185.0},
        AlarmType.OVER_VOLTAGE: {"voltage_v": 252.0},
        AlarmType.POWER_ABNORMAL: {"power_w": 50.0},
    }
    for expected, overrides in cases.items():
        engine = _engine([_lamp(1)], NIGHT)
        readings = [_reading("LMP-000001", t, **overrides) for t in _every_5_min(NIGHT, 4)]  # type: ignore[arg-type]
        assert _raised(_feed(engine, readings)) == {("LMP-000001", expected)}, expected


def test_a_healthy_dimmed_lamp_raises_nothing() -> None:
    engine = _engine([_lamp(1)], NIGHT)
    readings = [_reading("LMP-000001", t, dim_pct=50.0) for t in _every_5_min(NIGHT, 12)]
    assert _raised(_feed(engine, readings)) == set()


def test_lit_by_day_raises_only_in_daylight() -> None:
    engine = _engine([_lamp(1)], NOON)
    readings = [_reading("LMP-000001", t) for t in _every_5_min(NOON, 4)]
    assert _raised(_feed(engine, readings)) == {("LMP-000001", AlarmType.LIT_BY_DAY)}


def test_flicker_raises_on_frequent_switching() -> None:
    engine = _engine([_lamp(1)], NIGHT)
    readings = [
        _reading("LMP-000001", NIGHT + timedelta(minutes=k), on=k % 2 == 0) for k in range(10)
    ]
    assert (("LMP-000001", AlarmType.FLICKER)) in _raised(_feed(engine, readings))


def test_flicker_counts_only_the_switches_inside_its_window() -> None:
    rule, params = FlickerRule(), FlickerParams(window_s=600, min_switches=4, clear_switches=1)
    state, lamp = rule.initial_state(), _lamp(1)

    def verdict(minute: float, on: bool) -> tuple[Verdict, object]:
        reading = _reading("LMP-000001", NIGHT + timedelta(minutes=minute), on=on)
        (observation,) = rule.evaluate(reading, lamp, state, params)
        return observation.verdict, observation.values["switches"]

    assert verdict(0, True) == (Verdict.OK, 0)
    for minute in (1, 2, 3):
        verdict(minute, minute % 2 == 0)
    assert verdict(4, True) == (Verdict.FAULT, 4)  # switches at minutes 1-4
    assert verdict(12.5, True) == (Verdict.HOLD, 2)  # 1 and 2 are older than 10 min
    assert verdict(14.5, True) == (Verdict.OK, 0)


def test_a_tripped_cabinet_raises_one_group_alarm_and_no_lamp_alarms() -> None:
    lamps = [_lamp(i) for i in range(40)]
    engine = _engine(lamps, NIGHT)
    readings = [
        _reading(lamp.device_id, t + timedelta(seconds=i), supply=t < NIGHT + timedelta(minutes=5))
        for t in _every_5_min(NIGHT, 6)
        for i, lamp in enumerate(lamps)
    ]
    signals = _feed(engine, readings)
    assert _raised(signals) == {("CAB-00001", AlarmType.CABINET_TRIP)}
    assert all(s.source_kind is SourceKind.GROUP for s in signals)


def test_one_circuit_without_supply_raises_circuit_dark() -> None:
    lamps = [_lamp(i) for i in range(40)]
    engine = _engine(lamps, NIGHT)
    readings = [
        _reading(lamp.device_id, t + timedelta(seconds=i), supply=i >= 10)
        for t in _every_5_min(NIGHT, 4)
        for i, lamp in enumerate(lamps)
    ]
    assert _raised(_feed(engine, readings)) == {("CAB-00001", AlarmType.CIRCUIT_DARK)}


def test_cabinet_door_and_contactor_by_day() -> None:
    cabinet = DeviceInfo("CAB-00001", Kind.CABINET, None, {}, LAT, LON)
    engine = _engine([cabinet], NOON)
    readings = [
        Reading(
            Kind.CABINET,
            "CAB-00001",
            Channel.TELEMETRY,
            t,
            t,
            CabinetPayload(
                ts=round(t.timestamp() * 1000),
                contactor_on=True,
                door_open=True,
                voltage_a_v=220,
                voltage_b_v=220,
                voltage_c_v=220,
                current_a_a=5,
                current_b_a=5,
                current_c_a=5,
                power_w=3000,
                energy_kwh=100,
            ),
        )
        for t in [NOON + timedelta(minutes=k) for k in range(4)]
    ]
    assert _raised(_feed(engine, readings)) == {
        ("CAB-00001", AlarmType.DOOR_OPEN),
        ("CAB-00001", AlarmType.CONTACTOR_ANOMALY),
    }


def test_a_lamp_reporting_off_at_night_with_supply_raises_dark_at_night() -> None:
    lamp, dark_no_supply, lit = _lamp(1), _lamp(2), _lamp(3)
    engine = _engine([lamp, dark_no_supply, lit], NIGHT)
    readings = [
        r
        for ts in _every_5_min(NIGHT, 4)
        for r in (
            _reading(lamp.device_id, ts, on=False, dim_pct=0.0),
            _reading(dark_no_supply.device_id, ts, supply=False),
            _reading(lit.device_id, ts),
        )
    ]
    signals = _feed(engine, readings)
    assert _raised(signals) == {("LMP-000001", AlarmType.DARK_AT_NIGHT)}
    first = next(s for s in signals if s.alarm_type is AlarmType.DARK_AT_NIGHT)
    assert first.action is SignalAction.RAISE
    assert first.at - NIGHT >= timedelta(seconds=600)  # after its debounce, not at once


def test_off_by_day_or_meant_to_be_dark_raises_no_dark_at_night() -> None:
    lamp = _lamp(1)
    engine = _engine([lamp], NOON)
    by_day = [_reading(lamp.device_id, ts, on=False, dim_pct=0.0) for ts in _every_5_min(NOON, 6)]
    assert _raised(_feed(engine, by_day)) == set()
    INTENT.replace({lamp.device_id: (IntentWindow(NIGHT, None, "command c1"),)})
    try:
        engine = _engine([lamp], NIGHT)
        off = [_reading(lamp.device_id, ts, on=False, dim_pct=0.0) for ts in _every_5_min(NIGHT, 6)]
        assert _raised(_feed(engine, off)) == set()
    finally:
        INTENT.replace({})
