"""The engine: ordering, duplicates, late readings, overrides, group rules, restore."""

from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo, SharedAttributes
from hub.rules.signals import AlarmSignal, SignalAction, SourceKind
from tests.rules.rule_fixtures import (
    CircuitDarkRule,
    LampOutRule,
    TiltParams,
    TiltRule,
    at,
    lamp_reading,
    make_config,
    manhole_reading,
)

MANHOLES = [DeviceInfo("mh-1", Kind.MANHOLE), DeviceInfo("mh-2", Kind.MANHOLE)]


def tilt_engine(tolerance_s: float = 10.0, **tilt: object) -> RuleEngine:
    config = make_config(
        {"tilt": {"raise_after_s": 20, "clear_after_s": 20, **tilt}},
        reorder_tolerance_s=tolerance_s,
    )
    return RuleEngine(config, MANHOLES, now=at(0), rules=[TiltRule()])


def actions(signals: list[AlarmSignal]) -> list[tuple[SignalAction, str, AlarmType, float]]:
    return [(s.action, s.source_id, s.alarm_type, (s.at - at(0)).total_seconds()) for s in signals]


def test_debounced_raise_and_hysteresis_clear_through_the_engine() -> None:
    engine = tilt_engine(tolerance_s=0)
    tilts = [(0, 15), (10, 15), (20, 15), (30, 9), (40, 5), (50, 5), (60, 5)]
    signals = engine.process([manhole_reading("mh-1", t, v) for t, v in tilts])
    assert actions(signals) == [
        (SignalAction.RAISE, "mh-1", AlarmType.TILT, 20),
        (SignalAction.CLEAR, "mh-1", AlarmType.TILT, 60),
    ]
    assert signals[0].evidence[-1].values == {"tilt_deg": 15.0}


def test_duplicates_do_not_double_count_or_double_raise() -> None:
    engine = tilt_engine(tolerance_s=0, raise_after_s=0)
    reading = manhole_reading("mh-1", 0, 15)
    first = engine.process([reading, reading])
    again = engine.process([reading, manhole_reading("mh-1", 0, 15, received_s=5)])
    assert actions(first) == [(SignalAction.RAISE, "mh-1", AlarmType.TILT, 0)]
    assert first[0].count == 1
    assert again == []
    assert engine.stats.duplicates == 3


def test_out_of_order_within_tolerance_is_evaluated_in_event_time_order() -> None:
    engine = tilt_engine(tolerance_s=30)
    # Event order: fault 0..20 (raises at 20), then normal 30..50 (clears at 50).
    arrivals = [(10, 15), (0, 15), (30, 5), (20, 15), (50, 5), (40, 5)]
    signals: list[AlarmSignal] = []
    for ts_s, tilt in arrivals:
        signals += engine.process([manhole_reading("mh-1", ts_s, tilt, received_s=60)])
    signals += engine.tick(at(60 + 30))
    assert actions(signals) == [
        (SignalAction.RAISE, "mh-1", AlarmType.TILT, 20),
        (SignalAction.CLEAR, "mh-1", AlarmType.TILT, 50),
    ]
    assert engine.pending_readings == 0


def test_held_readings_are_released_by_tick_after_the_tolerance() -> None:
    engine = tilt_engine(tolerance_s=30, raise_after_s=0)
    assert engine.process([manhole_reading("mh-1", 0, 15, received_s=1)]) == []
    assert engine.pending_readings == 1
    assert engine.tick(at(20)) == []
    assert actions(engine.tick(at(31))) == [(SignalAction.RAISE, "mh-1", AlarmType.TILT, 0)]


def test_late_reading_beyond_tolerance_is_dropped_without_flapping() -> None:
    engine = tilt_engine(tolerance_s=0, raise_after_s=0, clear_after_s=0)
    raised = engine.process([manhole_reading("mh-1", 100, 15)])
    assert actions(raised) == [(SignalAction.RAISE, "mh-1", AlarmType.TILT, 100)]
    assert engine.process([manhole_reading("mh-1", 50, 2, received_s=101)]) == []
    assert engine.stats.late == 1
    assert engine.process([manhole_reading("mh-1", 110, 15)]) == []


def test_per_device_overrides_nested_and_flat() -> None:
    config = make_config({"tilt": {"raise_deg": 10, "clear_deg": 8}}, reorder_tolerance_s=0)
    devices = [
        DeviceInfo("mh-a", Kind.MANHOLE),
        DeviceInfo("mh-b", Kind.MANHOLE, attributes={"rules": {"tilt": {"raise_deg": 15}}}),
        DeviceInfo(
            "mh-c",
            Kind.MANHOLE,
            attributes={"rules.tilt.raise_deg": 5, "rules.tilt.severity": "critical"},
        ),
    ]
    engine = RuleEngine(config, devices, now=at(0), rules=[TiltRule()])
    b = engine.device_params("mh-b", "tilt")
    c = engine.device_params("mh-c", "tilt")
    assert b is not None
    assert c is not None
    assert b.params == TiltParams(raise_deg=15, clear_deg=8)
    assert c.params == TiltParams(raise_deg=5, clear_deg=8)
    assert c.policy.severity is Severity.CRITICAL
    signals = engine.process([manhole_reading(d.device_id, 0, 12) for d in devices])
    assert sorted((s.source_id, s.severity) for s in signals) == [
        ("mh-a", Severity.MAJOR),
        ("mh-c", Severity.CRITICAL),
    ]


def test_disabled_rule_and_unknown_devices() -> None:
    engine = tilt_engine(tolerance_s=0, enabled=False, raise_after_s=0)
    signals = engine.process([manhole_reading("mh-1", 0, 30), manhole_reading("ghost", 0, 30)])
    assert signals == []
    assert engine.stats.unknown_device == 1


def test_restored_alarm_is_cleared_not_raised_again() -> None:
    engine = tilt_engine(tolerance_s=0, raise_after_s=0, clear_after_s=0)
    engine.restore_alarm(SourceKind.DEVICE, "mh-1", AlarmType.TILT, Severity.MAJOR, at(-60))
    assert engine.process([manhole_reading("mh-1", 0, 20)]) == []
    cleared = engine.process([manhole_reading("mh-1", 10, 1)])
    assert actions(cleared) == [(SignalAction.CLEAR, "mh-1", AlarmType.TILT, 10)]


def circuit_engine() -> RuleEngine:
    config = make_config(
        {
            "lamp_out": {"raise_after_s": 0, "clear_after_s": 0},
            "circuit_dark": {"raise_after_s": 0, "clear_after_s": 0},
        },
        reorder_tolerance_s=0,
    )
    lamps = [DeviceInfo(f"lamp-{i}", Kind.LIGHTING, group_id="circuit-7") for i in range(10)]
    return RuleEngine(
        config, lamps, now=at(0), rules=[LampOutRule()], group_rules=[CircuitDarkRule()]
    )


def test_group_rule_raises_one_alarm_and_covers_member_alarms() -> None:
    engine = circuit_engine()
    lit = [lamp_reading(f"lamp-{i}", 0, lit=True) for i in range(10)]
    assert engine.process(lit) == []
    # One lamp goes out on its own: an individual alarm.
    first = engine.process([lamp_reading("lamp-0", 10, lit=False)])
    assert actions(first) == [(SignalAction.RAISE, "lamp-0", AlarmType.LAMP_OUT, 10)]
    # The circuit loses supply: one circuit alarm; lamp-0's own alarm is folded into it.
    dark = engine.process([lamp_reading(f"lamp-{i}", 20, lit=False) for i in range(1, 10)])
    assert [(s.action, s.source_kind, s.alarm_type) for s in dark] == [
        (SignalAction.RAISE, SourceKind.GROUP, AlarmType.CIRCUIT_DARK),
        (SignalAction.CLEAR, SourceKind.DEVICE, AlarmType.LAMP_OUT),
    ]
    assert dark[0].source_id == "circuit-7"
    assert "covered by" in str(dark[1].details["reason"])
    # Supply back except lamp-0: the circuit clears and lamp-0 is announced again.
    back = engine.process([lamp_reading(f"lamp-{i}", 30, lit=True) for i in range(1, 10)])
    assert [(s.action, s.source_id, s.alarm_type) for s in back] == [
        (SignalAction.CLEAR, "circuit-7", AlarmType.CIRCUIT_DARK),
        (SignalAction.RAISE, "lamp-0", AlarmType.LAMP_OUT),
    ]
    assert actions(engine.process([lamp_reading("lamp-0", 40, lit=True)])) == [
        (SignalAction.CLEAR, "lamp-0", AlarmType.LAMP_OUT, 40)
    ]


def test_covered_members_that_recover_with_the_group_stay_silent() -> None:
    engine = circuit_engine()
    engine.process([lamp_reading(f"lamp-{i}", 0, lit=False) for i in range(10)])
    back = engine.process([lamp_reading(f"lamp-{i}", 10, lit=True) for i in range(10)])
    assert [(s.action, s.source_id) for s in back] == [(SignalAction.CLEAR, "circuit-7")]
    assert engine.live_conditions == 0


def test_registry_record_parent_becomes_the_group() -> None:
    record = DeviceRecord(
        device_id="lamp-1",
        kind=Kind.LIGHTING,
        lat=31.2,
        lon=121.5,
        parent_id="cab-3",
        attributes={"rules.offline.missed_reports": 5},
    )
    info = DeviceInfo.from_record(record)
    assert (info.kind, info.group_id) == (Kind.LIGHTING, "cab-3")
    engine = RuleEngine(make_config(), [info], now=at(0))
    resolved = engine.device_params("lamp-1", "offline")
    assert resolved is not None
    assert resolved.params.missed_reports == 5


def test_devices_with_equal_attributes_share_one_mapping() -> None:
    shared = SharedAttributes()

    def lamp(device_id: str, **attributes: object) -> DeviceInfo:
        record = DeviceRecord(
            device_id=device_id, kind=Kind.LIGHTING, lat=31.2, lon=121.5, attributes=attributes
        )
        return DeviceInfo.from_record(record, shared)

    first = lamp("lamp-1", rated_power_w=200, circuit_id="CAB-1-1")
    second = lamp("lamp-2", rated_power_w=200, circuit_id="CAB-1-1")
    assert second.attributes is first.attributes
    # Equal in Python but not the same attributes: 1, 1.0 and True hash alike.
    as_int, as_float, as_bool = lamp("a", n=1), lamp("b", n=1.0), lamp("c", n=True)
    assert [type(i.attributes["n"]) for i in (as_int, as_float, as_bool)] == [int, float, bool]
    assert lamp("d", rated_power_w=150, circuit_id="CAB-1-1").attributes["rated_power_w"] == 150
    # A list among the values is not hashable: kept as it is, not shared, not an error.
    listed = [lamp(f"l-{i}", route=[1, 2]) for i in range(2)]
    assert listed[0].attributes == listed[1].attributes
    assert listed[0].attributes is not listed[1].attributes
    assert lamp("e").attributes == {}


def test_member_reporting_behind_the_others_still_moves_the_group() -> None:
    engine = circuit_engine()
    first = engine.process([lamp_reading(f"lamp-{i}", 100, lit=False) for i in range(4)])
    assert {s.source_kind for s in first} == {SourceKind.DEVICE}  # 4 of 10: lamps on their own
    # lamp-4's clock is a little behind: its reading is older than the group's newest.
    signals = engine.process([lamp_reading("lamp-4", 95, lit=False)])
    group = [s for s in signals if s.source_kind is SourceKind.GROUP]
    assert [(s.action, s.source_id) for s in group] == [(SignalAction.RAISE, "circuit-7")]
    assert signals[0].at == at(100)


def test_event_time_ahead_of_receipt_is_judged_at_the_receipt_time() -> None:
    # A cover whose clock runs 4 minutes fast: the decoder accepts it (HUB_MAX_AHEAD_S),
    # but the alarm must not be raised, nor its debounce counted, in the future.
    engine = tilt_engine(tolerance_s=0)
    fast_s = 240
    signals = engine.process(
        [manhole_reading("mh-1", t + fast_s, 15, received_s=t) for t in (0, 10, 20)]
    )
    assert actions(signals) == [(SignalAction.RAISE, "mh-1", AlarmType.TILT, 20)]
    assert signals[0].evidence[-1].ts == at(20)
