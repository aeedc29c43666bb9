"""Offline as a condition: silence judged over thousands of devices at once by the clock."""

import numpy as np

from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.signals import AlarmSignal, SignalAction
from tests.rules.rule_fixtures import at, make_config, manhole_reading

N = 5000


def offline_config(**offline: object) -> RuleEngine:
    config = make_config(
        {"offline": {"expected_interval_s": 60, "missed_reports": 3, **offline}},
        reorder_tolerance_s=0,
    )
    devices = [DeviceInfo(f"mh-{i}", Kind.MANHOLE) for i in range(N)]
    return RuleEngine(config, devices, now=at(0))


def by_action(signals: list[AlarmSignal], action: SignalAction) -> set[str]:
    return {s.source_id for s in signals if s.action is action}


def test_thousands_of_devices_go_offline_after_missed_reports_and_clear_on_return() -> None:
    engine = offline_config()
    rng = np.random.default_rng(7)
    silent = {f"mh-{i}" for i in rng.choice(N, size=250, replace=False)}
    for minute in range(1, 4):
        batch = [
            manhole_reading(f"mh-{i}", minute * 60, 0.5)
            for i in range(N)
            if f"mh-{i}" not in silent
        ]
        assert engine.process(batch) == []
        assert engine.tick(at(minute * 60)) == []
    assert engine.tick(at(180)) == []  # silent for exactly 3 × 60 s is not yet offline
    raised = engine.tick(at(181))
    assert by_action(raised, SignalAction.RAISE) == silent
    assert all(s.alarm_type is AlarmType.OFFLINE for s in raised)
    assert raised[0].evidence[0].values["threshold_s"] == 180.0
    # Still silent: no repeated raises on later ticks.
    assert engine.tick(at(200)) == []
    # Half of them come back: each clears on its first reading.
    back = sorted(silent)[:125]
    cleared = engine.process([manhole_reading(d, 205, 0.5, received_s=206) for d in back])
    assert by_action(cleared, SignalAction.CLEAR) == set(back)
    assert cleared[0].at == at(206)  # receive time, the clock offline is judged by
    assert engine.live_conditions == 125  # cleared ones are forgotten (no suppression window)


def test_never_reporting_device_counts_from_registration_and_seeded_last_seen() -> None:
    engine = offline_config()
    engine.seed_last_seen("mh-1", at(100))
    raised = by_action(engine.tick(at(181)), SignalAction.RAISE)
    assert "mh-0" in raised
    assert "mh-1" not in raised
    assert "mh-1" in by_action(engine.tick(at(281)), SignalAction.RAISE)


def test_clear_after_requires_the_device_to_keep_reporting() -> None:
    engine = offline_config(clear_after_s=120)
    engine.tick(at(200))
    assert engine.process([manhole_reading("mh-0", 210, 1.0)]) == []
    assert engine.tick(at(300)) == []  # back for 90 s only
    cleared = engine.tick(at(331))
    assert by_action(cleared, SignalAction.CLEAR) == {"mh-0"}


def test_clear_streak_is_broken_when_the_device_falls_silent_again() -> None:
    engine = offline_config(clear_after_s=300)
    engine.tick(at(200))
    engine.process([manhole_reading("mh-0", 210, 1.0)])
    # Silent again past the threshold before the clear streak completes.
    assert by_action(engine.tick(at(400)), SignalAction.CLEAR) == set()
    assert by_action(engine.tick(at(600)), SignalAction.CLEAR) == set()


def test_flapping_device_is_suppressed_within_the_window() -> None:
    engine = offline_config(suppress_s=600)
    engine.tick(at(200))
    engine.process([manhole_reading("mh-0", 210, 1.0)])  # clears at 210
    assert "mh-0" not in by_action(engine.tick(at(400)), SignalAction.RAISE)
    assert "mh-0" in by_action(engine.tick(at(811)), SignalAction.RAISE)


def test_per_kind_defaults_and_per_device_override_from_the_packaged_file() -> None:
    config = load_rules_config()
    devices = [
        DeviceInfo("cab-1", Kind.CABINET),
        DeviceInfo("lamp-1", Kind.LIGHTING),
        DeviceInfo(
            "lamp-2",
            Kind.LIGHTING,
            attributes={"rules": {"offline": {"expected_interval_s": 600}}},
        ),
    ]
    engine = RuleEngine(config, devices, now=at(0))
    first = engine.tick(at(181))
    assert [(s.source_id, s.severity) for s in first] == [("cab-1", Severity.CRITICAL)]
    assert by_action(engine.tick(at(901)), SignalAction.RAISE) == {"lamp-1"}
    assert by_action(engine.tick(at(1801)), SignalAction.RAISE) == {"lamp-2"}


def test_disabled_offline_for_a_device_and_removed_device_never_alarm() -> None:
    config = make_config({"offline": {"expected_interval_s": 60}}, reorder_tolerance_s=0)
    devices = [
        DeviceInfo("mh-0", Kind.MANHOLE, attributes={"rules.offline.enabled": False}),
        DeviceInfo("mh-1", Kind.MANHOLE),
        DeviceInfo("mh-2", Kind.MANHOLE),
    ]
    engine = RuleEngine(config, devices, now=at(0))
    engine.remove_device("mh-2")
    assert by_action(engine.tick(at(10_000)), SignalAction.RAISE) == {"mh-1"}
