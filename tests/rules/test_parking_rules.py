"""Parking spot rules and occupancy arithmetic: debounce, overstay, stuck sensors, flows."""

from datetime import UTC, datetime, timedelta

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.parking import ParkingPayload
from hub.rules.alarm_types import AlarmType
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.parking import RULES, SpotChange, count_flows, debounce_spot_states, state_at
from hub.rules.signals import AlarmSignal

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """The test epoch plus minutes."""
    return T0 + timedelta(minutes=minutes)


def _reading(device_id: str, minutes: float, occupied: bool, *, event: bool = True) -> Reading:
    ts = at(minutes)
    payload = ParkingPayload(ts=int(ts.timestamp() * 1000), occupied=occupied)
    channel = Channel.EVENT if event else Channel.TELEMETRY
    return Reading(Kind.PARKING, device_id, channel, ts, ts, payload)


def _run(readings: list[Reading], **attributes: object) -> list[AlarmSignal]:
    device = DeviceInfo("PS-1", Kind.PARKING, attributes=attributes)
    engine = RuleEngine(load_rules_config(), [device], now=T0, rules=RULES)
    signals: list[AlarmSignal] = []
    for reading in readings:
        signals += engine.process([reading])
    signals += engine.tick(max(r.ts for r in readings) + timedelta(seconds=30))
    return [s for s in signals if s.alarm_type is not AlarmType.OFFLINE and s.action != "update"]


def test_jitter_shorter_than_the_confirmation_is_ignored() -> None:
    reports = [(at(0), False), (at(10), True), (at(10.5), False), (at(40), True), (at(90), True)]
    changes = debounce_spot_states(reports, now=at(120))
    assert changes == [SpotChange(at(0), False), SpotChange(at(40), True)]
    assert state_at(changes, at(20)) is False
    assert state_at(changes, at(41)) is True


def test_the_newest_run_counts_only_once_confirmed() -> None:
    reports = [(at(0), False), (at(30), True)]
    assert debounce_spot_states(reports, now=at(30.5))[-1] == SpotChange(at(0), False)
    assert debounce_spot_states(reports, now=at(31))[-1] == SpotChange(at(30), True)


def test_flows_count_arrivals_departures_and_dwell() -> None:
    changes = [
        SpotChange(at(0), False),
        SpotChange(at(10), True),
        SpotChange(at(70), False),
        SpotChange(at(100), True),
    ]
    flows = count_flows([changes], at(0), at(90))
    assert (flows.arrivals, flows.departures, flows.average_dwell_s) == (1, 1, 3600.0)


def test_overstay_from_arrival_plus_max_stay_until_departure() -> None:
    readings = [
        _reading("PS-1", 0, False, event=False),
        _reading("PS-1", 5, True),
        _reading("PS-1", 30, True, event=False),
        _reading("PS-1", 120, True, event=False),  # 115 min: within the limit
        _reading("PS-1", 150, True, event=False),  # 145 min: overstaying
        _reading("PS-1", 200, False),
        _reading("PS-1", 230, False, event=False),
    ]
    signals = _run(readings, max_stay_min=120, zone_id="PZ-1")
    assert [(s.action.value, s.alarm_type.value, s.at) for s in signals] == [
        ("raise", "overstay", at(150)),
        ("clear", "overstay", at(230)),
    ]


def test_lots_without_a_maximum_stay_never_overstay() -> None:
    readings = [_reading("PS-1", m, True, event=False) for m in range(0, 600, 30)]
    assert _run(readings, lot_id="LOT-1") == []


def test_a_neighbours_jitter_does_not_end_a_stay() -> None:
    readings = [
        _reading("PS-1", 0, True),
        _reading("PS-1", 60, False),
        _reading("PS-1", 60.4, True),
        _reading("PS-1", 130, True, event=False),
    ]
    signals = _run(readings, max_stay_min=120)
    assert [(s.action.value, s.at) for s in signals] == [("raise", at(130))]


def test_a_sensor_without_a_change_for_a_day_is_stuck() -> None:
    readings = [_reading("PS-1", m, False, event=False) for m in range(0, 26 * 60, 30)]
    readings.append(_reading("PS-1", 26 * 60 + 5, True))
    readings.append(_reading("PS-1", 26 * 60 + 30, True, event=False))
    signals = _run(readings, lot_id="LOT-1")
    assert [(s.action.value, s.alarm_type.value, s.at) for s in signals] == [
        ("raise", "stuck_sensor", at(24 * 60)),
        ("clear", "stuck_sensor", at(26 * 60 + 5)),
    ]
