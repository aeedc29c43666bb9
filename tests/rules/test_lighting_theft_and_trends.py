"""Cable theft at the cabinet, and power-factor and voltage trends at the lamp, on the real
rules file (thresholds from rules.yaml)."""

from datetime import UTC, datetime, timedelta

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.lighting import CabinetPayload, LightingPayload
from hub.rules import lighting as lighting_rules
from hub.rules.alarm_types import AlarmType
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.lighting_context import INTENT, IntentWindow
from hub.rules.signals import AlarmSignal, SignalAction

NIGHT = datetime(2026, 11, 19, 13, 0, tzinfo=UTC)  # 21:00 in Suzhou
NOON = datetime(2026, 11, 19, 4, 0, tzinfo=UTC)
LAT, LON = 31.3, 120.62
CABINET = DeviceInfo("CAB-T", Kind.CABINET, None, {}, LAT, LON)
LAMP = DeviceInfo("LMP-T", Kind.LIGHTING, "CAB-T", {"rated_power_w": 100}, LAT, LON)


def _engine(devices: list[DeviceInfo], now: datetime) -> RuleEngine:
    return RuleEngine(
        load_rules_config(),
        devices,
        now=now,
        rules=lighting_rules.RULES,
        group_rules=lighting_rules.GROUP_RULES,
    )


def _cabinet(
    ts: datetime,
    amps: tuple[float, float, float],
    *,
    volts: float = 220.0,
    contactor_on: bool = True,
) -> Reading:
    payload = CabinetPayload(
        ts=round(ts.timestamp() * 1000),
        contactor_on=contactor_on,
        door_open=False,
        voltage_a_v=volts,
        voltage_b_v=volts,
        voltage_c_v=volts,
        current_a_a=amps[0],
        current_b_a=amps[1],
        current_c_a=amps[2],
        power_w=sum(amps) * volts,
        energy_kwh=100,
    )
    return Reading(Kind.CABINET, CABINET.device_id, Channel.TELEMETRY, ts, ts, payload)


def _lamp(ts: datetime, *, voltage_v: float = 220.0, power_factor: float = 0.95) -> Reading:
    payload = LightingPayload(
        ts=round(ts.timestamp() * 1000),
        on=True,
        dim_pct=100,
        voltage_v=voltage_v,
        current_a=100 / voltage_v / power_factor,
        power_w=100,
        power_factor=power_factor,
        energy_kwh=10,
    )
    return Reading(Kind.LIGHTING, LAMP.device_id, Channel.TELEMETRY, ts, ts, payload)


def _feed(engine: RuleEngine, readings: list[Reading]) -> list[AlarmSignal]:
    signals: list[AlarmSignal] = []
    for reading in readings:
        signals += engine.process([reading])
        signals += engine.tick(reading.ts + timedelta(seconds=30))
    return signals


def _of(signals: list[AlarmSignal], kind: AlarmType, action: SignalAction) -> list[AlarmSignal]:
    return [s for s in signals if s.alarm_type is kind and s.action is action]


def _minutes(start: datetime, count: int, step_min: float = 1.0) -> list[datetime]:
    return [start + timedelta(minutes=step_min * k) for k in range(count)]


def test_a_phase_losing_its_current_at_night_raises_cable_theft_with_evidence() -> None:
    engine = _engine([CABINET], NIGHT)
    before = [_cabinet(t, (6.0, 5.0, 4.0)) for t in _minutes(NIGHT, 5)]
    cut = [_cabinet(t, (6.0, 0.0, 4.0)) for t in _minutes(NIGHT + timedelta(minutes=5), 5)]
    restored = [_cabinet(t, (6.0, 5.0, 4.0)) for t in _minutes(NIGHT + timedelta(minutes=10), 5)]
    signals = _feed(engine, before + cut + restored)
    (raised,) = _of(signals, AlarmType.CABLE_THEFT, SignalAction.RAISE)
    assert raised.source_id == CABINET.device_id
    assert "phase b" in raised.message
    assert raised.details["lost_phases"] == ["b"]
    assert raised.details["load_before_a"] == {"b": 5.0}
    assert _of(signals, AlarmType.CABLE_THEFT, SignalAction.CLEAR)
    assert not _of(signals, AlarmType.CONTACTOR_ANOMALY, SignalAction.RAISE)


def test_no_cable_theft_for_a_trip_a_dim_a_switch_off_by_day_or_an_intended_off() -> None:
    # every loaded phase dark at once: a trip, not theft
    engine = _engine([CABINET], NIGHT)
    trip = [_cabinet(t, (6.0, 5.0, 4.0)) for t in _minutes(NIGHT, 3)] + [
        _cabinet(t, (0.0, 0.0, 0.0)) for t in _minutes(NIGHT + timedelta(minutes=3), 6)
    ]
    assert not _of(_feed(engine, trip), AlarmType.CABLE_THEFT, SignalAction.RAISE)
    # a midnight dim to 50 %
    engine = _engine([CABINET], NIGHT)
    dim = [_cabinet(t, (6.0, 5.0, 4.0)) for t in _minutes(NIGHT, 3)] + [
        _cabinet(t, (3.0, 2.5, 2.0)) for t in _minutes(NIGHT + timedelta(minutes=3), 6)
    ]
    assert not _of(_feed(engine, dim), AlarmType.CABLE_THEFT, SignalAction.RAISE)
    # by day with the contactor (wrongly) closed: contactor_anomaly's business
    engine = _engine([CABINET], NOON)
    day = [_cabinet(t, (6.0, 5.0, 4.0)) for t in _minutes(NOON, 3)] + [
        _cabinet(t, (6.0, 0.0, 4.0)) for t in _minutes(NOON + timedelta(minutes=3), 6)
    ]
    assert not _of(_feed(engine, day), AlarmType.CABLE_THEFT, SignalAction.RAISE)
    # a lockout on the cabinet explains it
    INTENT.replace(
        {CABINET.device_id: (IntentWindow(NIGHT + timedelta(minutes=2), None, "lockout 1"),)}
    )
    try:
        engine = _engine([CABINET], NIGHT)
        locked = [_cabinet(t, (6.0, 5.0, 4.0)) for t in _minutes(NIGHT, 3)] + [
            _cabinet(t, (6.0, 0.0, 4.0)) for t in _minutes(NIGHT + timedelta(minutes=3), 6)
        ]
        assert not _of(_feed(engine, locked), AlarmType.CABLE_THEFT, SignalAction.RAISE)
    finally:
        INTENT.replace({})
    # a circuit of the cabinet locked out (its lamps' windows, by cabinet) explains it too
    INTENT.replace(
        {}, {CABINET.device_id: (IntentWindow(NIGHT + timedelta(minutes=2), None, "lockout 2"),)}
    )
    try:
        engine = _engine([CABINET], NIGHT)
        circuit = [_cabinet(t, (6.0, 5.0, 4.0)) for t in _minutes(NIGHT, 3)] + [
            _cabinet(t, (6.0, 0.0, 4.0)) for t in _minutes(NIGHT + timedelta(minutes=3), 6)
        ]
        assert not _of(_feed(engine, circuit), AlarmType.CABLE_THEFT, SignalAction.RAISE)
    finally:
        INTENT.replace({})
    # a slow fall over readings far apart is no sudden loss
    engine = _engine([CABINET], NIGHT)
    gap = [_cabinet(NIGHT, (6.0, 5.0, 4.0))] + [
        _cabinet(t, (6.0, 0.0, 4.0)) for t in _minutes(NIGHT + timedelta(minutes=30), 6)
    ]
    assert not _of(_feed(engine, gap), AlarmType.CABLE_THEFT, SignalAction.RAISE)


def test_a_low_power_factor_over_an_hour_raises_and_a_brief_dip_does_not() -> None:
    engine = _engine([LAMP], NIGHT)
    healthy = [_lamp(t) for t in _minutes(NIGHT, 12, 5)]
    dip = [_lamp(t, power_factor=0.5) for t in _minutes(NIGHT + timedelta(hours=1), 2, 5)]
    recovered = [_lamp(t) for t in _minutes(NIGHT + timedelta(minutes=70), 6, 5)]
    assert not _of(
        _feed(engine, healthy + dip + recovered), AlarmType.POWER_FACTOR_LOW, SignalAction.RAISE
    )
    engine = _engine([LAMP], NIGHT)
    ageing = [_lamp(t, power_factor=0.6) for t in _minutes(NIGHT, 16, 5)]
    (raised,) = _of(_feed(engine, ageing), AlarmType.POWER_FACTOR_LOW, SignalAction.RAISE)
    assert raised.at >= NIGHT + timedelta(hours=1)  # only once it has seen an hour
    assert "0.60" in raised.message


def test_a_supply_drifting_low_for_hours_raises_voltage_trend() -> None:
    engine = _engine([LAMP], NIGHT)
    # 205 V: inside lamp_voltage's 198 V, outside the trend's 209 V
    sagging = [_lamp(t, voltage_v=205.0) for t in _minutes(NIGHT, 48, 5)]
    signals = _feed(engine, sagging)
    (raised,) = _of(signals, AlarmType.VOLTAGE_TREND, SignalAction.RAISE)
    assert raised.at >= NIGHT + timedelta(hours=3)
    assert not _of(signals, AlarmType.UNDER_VOLTAGE, SignalAction.RAISE)
    engine = _engine([LAMP], NIGHT)
    steady = [_lamp(t, voltage_v=221.0) for t in _minutes(NIGHT, 48, 5)]
    assert not _of(_feed(engine, steady), AlarmType.VOLTAGE_TREND, SignalAction.RAISE)
