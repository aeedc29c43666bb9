"""Manhole rules through the real engine: baseline tilt, spikes, open covers, water, battery."""

from datetime import UTC, datetime, timedelta

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.manholes import ManholePayload
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.catalogue import domain_rules
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.manholes import RULES
from hub.rules.signals import AlarmSignal, SignalAction

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _reading(device_id: str, at_s: float, tilt_deg: float, **values: object) -> Reading:
    ts = T0 + timedelta(seconds=at_s)
    body: dict[str, object] = {"ts": int(ts.timestamp() * 1000), "tilt_deg": tilt_deg}
    body.setdefault("cover_open", False)
    body.update(values)
    payload = ManholePayload.model_validate(body)
    return Reading(Kind.MANHOLE, device_id, Channel.TELEMETRY, ts, ts, payload)


def _engine(*devices: DeviceInfo) -> RuleEngine:
    return RuleEngine(
        load_rules_config(), devices, now=T0, rules=[r for r in domain_rules() if r in RULES]
    )


def _cover(device_id: str = "MH-1", **attributes: object) -> DeviceInfo:
    attrs: dict[str, object] = {"baseline_tilt_deg": 3.0, "cover_type": "storm_water"}
    attrs.update(attributes)
    return DeviceInfo(device_id, Kind.MANHOLE, attributes=attrs)


def _feed(engine: RuleEngine, readings: list[Reading]) -> list[AlarmSignal]:
    signals: list[AlarmSignal] = []
    for reading in readings:
        signals += engine.process([reading])
    signals += engine.tick(max(r.ts for r in readings) + timedelta(seconds=30))
    return [s for s in signals if s.alarm_type is not AlarmType.OFFLINE]


def _raised(signals: list[AlarmSignal]) -> list[tuple[str, AlarmType]]:
    return [(s.source_id, s.alarm_type) for s in signals if s.action is SignalAction.RAISE]


def test_tilt_is_measured_from_the_installed_baseline() -> None:
    engine = _engine(_cover("MH-1", baseline_tilt_deg=12.0), _cover("MH-2", baseline_tilt_deg=0.0))
    signals = _feed(
        engine,
        [_reading("MH-1", t, 12.1) for t in (0, 300, 600)]
        + [_reading("MH-2", t, 12.1) for t in (0, 300, 600)],
    )
    assert _raised(signals) == [("MH-2", AlarmType.TILT)]


def test_a_traffic_spike_does_not_raise_but_a_lasting_tilt_does() -> None:
    engine = _engine(_cover())
    spike = _feed(engine, [_reading("MH-1", 0, 15.0), _reading("MH-1", 12, 3.1)])
    assert _raised(spike) == []
    lasting = _feed(engine, [_reading("MH-1", 1000, 28.0), _reading("MH-1", 1300, 28.1)])
    assert _raised(lasting) == [("MH-1", AlarmType.TILT)]
    cleared = _feed(engine, [_reading("MH-1", 1600, 3.0)])
    assert [s.action for s in cleared] == [SignalAction.CLEAR]


def test_threshold_per_cover_type_comes_from_the_rules_file() -> None:
    engine = _engine(
        _cover("MH-G", cover_type="gas", **{"rules.manhole_tilt.threshold_deg": 5}),
        _cover("MH-S"),
    )
    signals = _feed(
        engine,
        [_reading(d, t, 10.0) for d in ("MH-G", "MH-S") for t in (0, 300)],
    )
    assert _raised(signals) == [("MH-G", AlarmType.TILT)]


def test_a_displaced_cover_on_a_main_road_is_critical() -> None:
    engine = _engine(_cover("MH-M", road_class="main"), _cover("MH-B", road_class="branch"))
    signals = _feed(
        engine,
        [_reading(d, t, 48.0, cover_open=True) for d in ("MH-M", "MH-B") for t in (0, 300)],
    )
    raised = {(s.source_id, s.alarm_type): s.severity for s in signals if s.action == "raise"}
    assert raised == {
        ("MH-M", AlarmType.COVER_OPEN): Severity.CRITICAL,
        ("MH-M", AlarmType.TILT): Severity.CRITICAL,
        ("MH-B", AlarmType.COVER_OPEN): Severity.MAJOR,
        ("MH-B", AlarmType.TILT): Severity.MAJOR,
    }


def test_water_alert_and_danger_rise_and_clear_with_hysteresis() -> None:
    engine = _engine(_cover())
    levels = [20, 90, 120, 160, 148, 140, 97, 94, 30]
    signals = _feed(
        engine,
        [_reading("MH-1", i * 300, 3.0, water_level_cm=cm) for i, cm in enumerate(levels)],
    )
    events = [
        (s.action.value, s.alarm_type.value, s.at)
        for s in signals
        if s.action is not SignalAction.UPDATE
    ]
    at = [T0 + timedelta(seconds=i * 300) for i in range(len(levels))]
    assert events == [
        ("raise", "water_alert", at[2]),
        ("raise", "water_danger", at[3]),
        ("clear", "water_danger", at[5]),
        ("clear", "water_alert", at[7]),
    ]


def test_low_battery_and_gas_only_when_reported() -> None:
    engine = _engine(_cover())
    signals = _feed(
        engine,
        [
            _reading("MH-1", 0, 3.0, battery_pct=10.0),
            _reading("MH-1", 300, 3.0, battery_pct=10.0, gas_lel_pct=35.0),
        ],
    )
    assert sorted(t for _, t in _raised(signals)) == [AlarmType.GAS, AlarmType.LOW_BATTERY]
