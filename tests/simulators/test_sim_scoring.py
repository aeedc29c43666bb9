"""Matching ground truth to alarms on hand-built examples."""

from datetime import UTC, datetime, timedelta

import pytest

from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from simulators.faults import Incident
from simulators.scoring import Alarm, MatchRules, format_report, match_alarms, source_matches

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _incident(device: str, kind: AlarmType, start_min: int, end_min: int) -> Incident:
    return Incident(
        device,
        Kind.LIGHTING,
        kind,
        _ms(T0 + timedelta(minutes=start_min)),
        _ms(T0 + timedelta(minutes=end_min)),
        "x",
    )


def _alarm(source: str, kind: str, raised_min: float, cleared_min: float | None = None) -> Alarm:
    cleared = None if cleared_min is None else T0 + timedelta(minutes=cleared_min)
    return Alarm(source, kind, T0 + timedelta(minutes=raised_min), cleared)


def test_detection_duplicates_and_false_alarms() -> None:
    incidents = [
        _incident("LMP-1", AlarmType.LAMP_OUT, 0, 60),
        _incident("LMP-2", AlarmType.LAMP_OUT, 0, 60),
        _incident("CAB-1", AlarmType.CABINET_TRIP, 10, 20),
    ]
    alarms = [
        _alarm("LMP-1", "lamp_out", 5, 61),
        _alarm("LMP-1", "lamp_out", 30),  # raised again while the first is open: duplicate
        _alarm("CAB-1:2", "cabinet_trip", 12),  # a group under the cabinet
        _alarm("LMP-3", "lamp_out", 5),  # no such incident: false alarm
        _alarm("LMP-2", "flicker", 5),  # wrong type: false alarm, LMP-2 missed
    ]
    report = match_alarms(incidents, alarms)
    lamp_out = report.by_type["lamp_out"]
    assert (lamp_out.incidents, lamp_out.detected) == (2, 1)
    assert lamp_out.recall == pytest.approx(0.5)
    assert (lamp_out.true_alarms, lamp_out.false_alarms, lamp_out.duplicates) == (1, 1, 1)
    assert lamp_out.precision == pytest.approx(0.5)
    assert lamp_out.detect_delays_s == [300.0]
    trip = report.by_type["cabinet_trip"]
    assert trip.recall == 1.0
    assert trip.detect_delays_s == [120.0]
    assert report.by_type["flicker"].false_alarms == 1
    assert report.by_type["flicker"].recall is None
    total = report.total
    assert (total.incidents, total.detected, total.duplicates) == (3, 2, 1)
    assert "TOTAL" in format_report(report)


def test_time_windows_bound_matching() -> None:
    incident = _incident("MH-1", AlarmType.TILT, 0, 10)
    rules = MatchRules(early_s=60, late_s=300)
    too_late = match_alarms([incident], [_alarm("MH-1", "tilt", 16)], rules)
    assert too_late.by_type["tilt"].detected == 0
    assert too_late.by_type["tilt"].false_alarms == 1
    just_in = match_alarms([incident], [_alarm("MH-1", "tilt", 14)], rules)
    assert just_in.by_type["tilt"].detected == 1
    early = match_alarms([incident], [_alarm("MH-1", "tilt", -0.5)], rules)
    assert early.by_type["tilt"].detect_delays_s == [0.0]
    stale = match_alarms([incident], [_alarm("MH-1", "tilt", -30, -20)], rules)
    assert stale.by_type["tilt"].detected == 0
    still_open = match_alarms([incident], [_alarm("MH-1", "tilt", -30)], rules)
    assert still_open.by_type["tilt"].detected == 1


def test_one_alarm_detects_one_incident() -> None:
    first = _incident("TRK-1", AlarmType.OVERSPEED, 0, 5)
    second = _incident("TRK-1", AlarmType.OVERSPEED, 20, 25)
    report = match_alarms(
        [first, second], [_alarm("TRK-1", "overspeed", 1, 6), _alarm("TRK-1", "overspeed", 21, 26)]
    )
    score = report.by_type["overspeed"]
    assert (score.detected, score.duplicates, score.false_alarms) == (2, 0, 0)
    assert score.detect_delays_s == [60.0, 60.0]


def test_source_matching() -> None:
    assert source_matches("CAB-1", "CAB-1")
    assert source_matches("CAB-1/3", "CAB-1")
    assert not source_matches("CAB-10", "CAB-1")


def test_a_voltage_trend_during_a_sag_is_a_true_alarm_that_detects_nothing() -> None:
    incidents = [_incident("LMP-1", AlarmType.UNDER_VOLTAGE, 0, 120)]
    alarms = [
        _alarm("LMP-1", "under_voltage", 5, 121),
        _alarm("LMP-1", "voltage_trend", 100, 300),  # the average follows the sag
        _alarm("LMP-2", "voltage_trend", 100, 300),  # another lamp: false
    ]
    report = match_alarms(incidents, alarms)
    trend = report.by_type["voltage_trend"]
    assert (trend.incidents, trend.detected, trend.true_alarms, trend.false_alarms) == (0, 0, 1, 1)
    assert report.by_type["under_voltage"].recall == 1.0
    assert [a.source_id for a in report.false_alarms] == ["LMP-2"]


def test_cable_theft_during_a_circuit_loss_of_the_same_cabinet_is_a_true_alarm() -> None:
    # The cabinet's meter cannot tell a circuit's breaker from a cut cable.
    incidents = [_incident("CAB-1", AlarmType.CIRCUIT_DARK, 0, 120)]
    alarms = [
        _alarm("CAB-1", "circuit_dark", 5, 121),
        _alarm("CAB-1", "cable_theft", 2, 121),
        _alarm("CAB-2", "cable_theft", 2, 121),  # another cabinet: false
    ]
    report = match_alarms(incidents, alarms)
    theft = report.by_type["cable_theft"]
    assert (theft.incidents, theft.detected, theft.true_alarms, theft.false_alarms) == (0, 0, 1, 1)
    assert [a.source_id for a in report.false_alarms] == ["CAB-2"]
