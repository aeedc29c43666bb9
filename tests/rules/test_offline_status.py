"""Offline from the device's own status: event time, stale statuses, any arrival pattern."""

from datetime import timedelta

import pytest

from hub.devices.decode import Reading, StatusChange
from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.signals import AlarmSignal, SignalAction
from tests.rules.rule_fixtures import TiltRule, at, make_config, manhole_reading

DEVICES = ("mh-1", "mh-2", "mh-3")


def engine(tolerance_s: float = 0, **offline: object) -> RuleEngine:
    # Silence by the receive clock only after a day: these tests are about the status.
    config = make_config(
        {"offline": {"expected_interval_s": 3600, "missed_reports": 24, **offline}},
        reorder_tolerance_s=tolerance_s,
    )
    return RuleEngine(config, [DeviceInfo(d, Kind.MANHOLE) for d in DEVICES], now=at(0))


def status(device_id: str, ts_s: float, *, online: bool, received_s: float) -> StatusChange:
    """A status carrying its own ts (the simulators' `{"state": …, "ts": …}`)."""
    return StatusChange(Kind.MANHOLE, device_id, online, at(ts_s), at(received_s))


def report(rules: RuleEngine, item: StatusChange) -> list[AlarmSignal]:
    """Hand a status to the engine and tick at its receipt (a status waits for the clock
    unless readings past it release it: it never releases or delays readings itself)."""
    return rules.process([], [item]) + rules.tick(item.received_at)


def offline_signals(signals: list[AlarmSignal]) -> list[tuple[str, SignalAction, float]]:
    return [
        (s.source_id, s.action, (s.at - at(0)).total_seconds())
        for s in signals
        if s.alarm_type is AlarmType.OFFLINE
    ]


def test_an_offline_status_raises_at_its_ts_and_the_next_reading_clears() -> None:
    rules = engine()
    assert rules.process([manhole_reading("mh-1", 100, 0.5)]) == []
    raised = report(rules, status("mh-1", 160, online=False, received_s=161))
    assert offline_signals(raised) == [("mh-1", SignalAction.RAISE, 160.0)]
    assert raised[0].evidence[0].values["status"] == "offline"
    # Hours of receive time later nothing more happens: the status holds until evidence.
    assert offline_signals(rules.tick(at(20_000))) == []
    cleared = rules.process([manhole_reading("mh-1", 900, 0.5, received_s=20_001)])
    assert offline_signals(cleared) == [("mh-1", SignalAction.CLEAR, 900.0)]


def test_an_online_status_with_a_newer_ts_clears() -> None:
    rules = engine()
    report(rules, status("mh-1", 160, online=False, received_s=161))
    cleared = report(rules, status("mh-1", 400, online=True, received_s=401))
    assert offline_signals(cleared) == [("mh-1", SignalAction.CLEAR, 400.0)]


def test_a_stale_offline_older_than_the_newest_reading_is_ignored() -> None:
    rules = engine()
    rules.process([manhole_reading("mh-1", 500, 0.5)])
    # An old retained `offline` delivered after the device has reported since.
    assert report(rules, status("mh-1", 160, online=False, received_s=600)) == []
    assert rules.stats.stale_statuses == 1
    # After a restart the store's last-seen time plays the newest reading's part.
    restarted = engine()
    restarted.seed_last_seen("mh-2", at(500))
    assert report(restarted, status("mh-2", 160, online=False, received_s=600)) == []


def test_a_bare_status_has_no_event_time_and_is_left_to_the_receive_clock() -> None:
    rules = engine()
    received = at(160)  # decoded from the bare text: its ts is its receipt time
    bare = StatusChange(Kind.MANHOLE, "mh-1", False, received, received)
    assert rules.process([], [bare]) == []
    assert rules.stats.statuses == 0


def test_the_debounce_and_suppression_run_in_event_time() -> None:
    rules = engine(raise_after_s=300, suppress_s=600)
    assert report(rules, status("mh-1", 100, online=False, received_s=101)) == []
    # Other devices' readings move event time on; the raise is due at 100 + 300.
    assert offline_signals(rules.process([manhole_reading("mh-2", 399, 0.5)])) == []
    raised = rules.process([manhole_reading("mh-2", 450, 0.5)])
    assert offline_signals(raised) == [("mh-1", SignalAction.RAISE, 400.0)]
    cleared = rules.process([manhole_reading("mh-1", 500, 0.5)])
    assert offline_signals(cleared) == [("mh-1", SignalAction.CLEAR, 500.0)]
    # Offline again at once: due at the end of the suppression window (500 + 600).
    assert report(rules, status("mh-1", 520, online=False, received_s=521)) == []
    assert offline_signals(rules.process([manhole_reading("mh-2", 1000, 0.5)])) == []
    again = rules.process([manhole_reading("mh-2", 1200, 0.5)])
    assert offline_signals(again) == [("mh-1", SignalAction.RAISE, 1100.0)]


def test_a_device_back_within_the_debounce_raises_nothing() -> None:
    rules = engine(raise_after_s=300)
    report(rules, status("mh-1", 100, online=False, received_s=101))
    assert offline_signals(rules.process([manhole_reading("mh-1", 200, 0.5)])) == []
    assert offline_signals(rules.process([manhole_reading("mh-2", 2000, 0.5)])) == []


def _scenario() -> list[Reading | StatusChange]:
    """Three devices every 5 minutes for 3 hours; two outages announced by status."""
    items: list[Reading | StatusChange] = []
    outages = {"mh-1": (3_000, 5_400), "mh-3": (6_900, 7_800)}
    for ts in range(0, 10_800, 300):
        for device in DEVICES:
            down, up = outages.get(device, (-1, -1))
            if ts == down:
                items.append(status(device, ts + 1, online=False, received_s=ts + 1))
            if ts == up:
                items.append(status(device, ts, online=True, received_s=ts))
            if not down <= ts < up:
                items.append(manhole_reading(device, ts + 2, 0.5))
    return items


def _play(
    items: list[Reading | StatusChange], batch: int, tolerance_s: float, backlog: bool
) -> list[tuple[str, SignalAction, float]]:
    rules = engine(tolerance_s)
    received = at(20_000)
    signals: list[AlarmSignal] = []
    for start in range(0, len(items), batch):
        part = items[start : start + batch]
        if backlog:  # all of it received long after, as after a hub outage
            part = [
                p._replace(received_at=received)
                if isinstance(p, Reading)
                else StatusChange(p.kind, p.device_id, p.online, p.ts, received)
                for p in part
            ]
        readings = [p for p in part if isinstance(p, Reading)]
        statuses = [p for p in part if isinstance(p, StatusChange)]
        signals += rules.process(readings, statuses)
        newest = max(p.received_at for p in part)
        signals += rules.tick(
            newest + timedelta(seconds=tolerance_s + 1) if not backlog else newest
        )
    signals += rules.tick(at(40_000) + timedelta(seconds=tolerance_s + 1))
    return offline_signals(signals)


@pytest.mark.parametrize("tolerance_s", [0, 30])
def test_paced_and_backlog_give_the_same_offline_alarms(tolerance_s: float) -> None:
    items = _scenario()
    paced = _play(items, 1, tolerance_s, backlog=False)
    assert paced == [
        ("mh-1", SignalAction.RAISE, 3_001.0),
        ("mh-1", SignalAction.CLEAR, 5_400.0),
        ("mh-3", SignalAction.RAISE, 6_901.0),
        ("mh-3", SignalAction.CLEAR, 7_800.0),
    ]
    for batch in (7, 50, len(items)):
        assert _play(items, batch, tolerance_s, backlog=True) == paced


def test_a_status_the_condition_has_seen_past_leaves_the_device_to_the_receive_clock() -> None:
    rules = engine(expected_interval_s=60, missed_reports=3, suppress_s=600)
    assert ("mh-1", SignalAction.RAISE, 181.0) in offline_signals(rules.tick(at(181)))
    # Back (a reading of ts 100 received at 200 clears at 200, the receive clock's time) ...
    back = rules.process([manhole_reading("mh-1", 100, 0.5, received_s=200)])
    assert ("mh-1", SignalAction.CLEAR, 200.0) in offline_signals(back)
    # ... then an offline status of ts 150: older than what the condition has seen.
    assert report(rules, status("mh-1", 150, online=False, received_s=201)) == []
    # Silent from then on: the receive clock still raises it, after the suppression window.
    raised = [s for s in offline_signals(rules.tick(at(1_000))) if s[0] == "mh-1"]
    assert raised == [("mh-1", SignalAction.RAISE, 1_000.0)]


def test_a_status_stamped_ahead_of_the_readings_makes_none_of_them_late() -> None:
    # A JT/T 808 gateway stamps a hang-up with its own clock; the terminal then uploads
    # positions it stored, older than that: they are still judged, and the event clock
    # follows the readings, not the status.
    config = make_config({"tilt": {"raise_deg": 10, "clear_deg": 8}}, reorder_tolerance_s=0)
    rules = RuleEngine(
        config, [DeviceInfo(d, Kind.MANHOLE) for d in DEVICES], now=at(0), rules=[TiltRule()]
    )
    report(rules, status("mh-1", 10_000, online=False, received_s=10_000))
    stored = [manhole_reading("mh-1", ts, 20.0, received_s=10_001) for ts in (100, 200, 300)]
    signals = rules.process(stored)
    assert [(s.alarm_type, s.action, s.at) for s in signals] == [
        (AlarmType.TILT, SignalAction.RAISE, at(100))
    ]
    assert rules.stats.late == 0
    assert rules.event_clock(at(10_001)) == at(300)
