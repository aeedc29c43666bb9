"""Debounce, hysteresis, suppression and update rate of the condition table."""

from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.condition import ConditionPolicy, ConditionTable, Observation, Verdict
from hub.rules.signals import AlarmSignal, SignalAction, SourceKind
from tests.rules.rule_fixtures import at

DEV = SourceKind.DEVICE


def obs(ts_s: float, verdict: Verdict, severity: Severity | None = None) -> Observation:
    return Observation(
        AlarmType.TILT, verdict, at(ts_s), "mh-1", values={"t": ts_s}, severity=severity
    )


def feed(
    table: ConditionTable, policy: ConditionPolicy, steps: list[tuple[float, Verdict]]
) -> list[AlarmSignal]:
    out = []
    for ts_s, verdict in steps:
        signal = table.observe(DEV, "mh-1", obs(ts_s, verdict), policy)
        if signal is not None:
            out.append(signal)
    return out


F, OK, H = Verdict.FAULT, Verdict.OK, Verdict.HOLD


def test_blip_shorter_than_raise_after_does_not_raise() -> None:
    policy = ConditionPolicy(raise_after_s=30)
    table = ConditionTable()
    assert feed(table, policy, [(0, F), (10, F), (20, F), (25, OK), (40, F), (60, F)]) == []
    assert len(table) == 1  # a streak from 40 s is still pending


def test_raises_once_condition_held_for_raise_after() -> None:
    policy = ConditionPolicy(raise_after_s=30, severity=Severity.CRITICAL)
    signals = feed(ConditionTable(), policy, [(0, F), (15, F), (30, F), (45, F)])
    assert [s.action for s in signals] == [SignalAction.RAISE]
    raised = signals[0]
    assert raised.at == at(30)
    assert raised.severity is Severity.CRITICAL
    assert raised.count == 3
    assert raised.details["condition_since"] == at(0)
    assert [e.ts for e in raised.evidence] == [at(0), at(15), at(30)]


def test_hold_breaks_the_raise_streak() -> None:
    policy = ConditionPolicy(raise_after_s=30)
    assert feed(ConditionTable(), policy, [(0, F), (20, H), (30, F), (50, F)]) == []


def test_clear_only_after_clear_after_and_hold_restarts_it() -> None:
    policy = ConditionPolicy(clear_after_s=60)
    table = ConditionTable()
    assert [s.action for s in feed(table, policy, [(0, F)])] == [SignalAction.RAISE]
    # OK for 50 s, then inside the band, then OK again: the clear streak restarts at 100.
    assert feed(table, policy, [(10, OK), (60, OK), (70, H), (100, OK), (150, OK)]) == []
    cleared = feed(table, policy, [(160, OK)])
    assert [s.action for s in cleared] == [SignalAction.CLEAR]
    assert cleared[0].at == at(160)
    assert cleared[0].details["clear_since"] == at(100)
    assert len(table) == 0  # idle conditions are forgotten


def test_fault_during_clear_streak_keeps_alarm_active() -> None:
    policy = ConditionPolicy(clear_after_s=60)
    table = ConditionTable()
    feed(table, policy, [(0, F)])
    assert feed(table, policy, [(10, OK), (50, F), (70, OK), (120, OK)]) == []
    assert [s.action for s in feed(table, policy, [(130, OK)])] == [SignalAction.CLEAR]


def test_suppression_window_defers_a_reraise_and_drops_a_short_one() -> None:
    policy = ConditionPolicy(suppress_s=600)
    table = ConditionTable()
    feed(table, policy, [(0, F), (10, OK)])  # raise, clear at 10
    # Fault again inside the window, then normal: never announced.
    assert feed(table, policy, [(100, F), (200, OK)]) == []
    # Fault again inside the window and still faulty after it: raised once, after the window.
    assert feed(table, policy, [(300, F), (500, F)]) == []
    raised = feed(table, policy, [(610, F)])
    assert [s.action for s in raised] == [SignalAction.RAISE]
    assert raised[0].details["suppressed_until"] == at(610)
    assert raised[0].details["condition_since"] == at(300)


def test_repeat_triggers_update_at_most_once_per_interval() -> None:
    policy = ConditionPolicy(update_interval_s=60)
    table = ConditionTable()
    steps = [(float(t), F) for t in range(0, 181, 10)]
    signals = feed(table, policy, steps)
    assert [(s.action, s.at) for s in signals] == [
        (SignalAction.RAISE, at(0)),
        (SignalAction.UPDATE, at(60)),
        (SignalAction.UPDATE, at(120)),
        (SignalAction.UPDATE, at(180)),
    ]
    assert signals[-1].count == 19
    assert signals[-1].details["reason"] == "repeat"


def test_severity_change_updates_at_once() -> None:
    policy = ConditionPolicy(update_interval_s=3600, severity=Severity.MINOR)
    table = ConditionTable()
    table.observe(DEV, "mh-1", obs(0, F), policy)
    signal = table.observe(DEV, "mh-1", obs(5, F, Severity.CRITICAL), policy)
    assert signal is not None
    assert signal.action is SignalAction.UPDATE
    assert signal.severity is Severity.CRITICAL
    assert signal.details["reason"] == "severity"


def test_older_observation_is_ignored() -> None:
    policy = ConditionPolicy(clear_after_s=0)
    table = ConditionTable()
    feed(table, policy, [(0, F), (100, F)])
    # A stale OK from before the newest observation must not clear the alarm.
    assert feed(table, policy, [(50, OK)]) == []
    state = table.get((DEV, "mh-1", AlarmType.TILT))
    assert state is not None
    assert state.active


def test_evidence_keeps_onset_and_latest() -> None:
    policy = ConditionPolicy(raise_after_s=100, evidence_max=3)
    signals = feed(ConditionTable(), policy, [(float(t), F) for t in range(0, 101, 10)])
    assert [e.ts for e in signals[0].evidence] == [at(0), at(90), at(100)]


def test_persisting_verdict_completes_streak_by_the_injected_clock() -> None:
    policy = ConditionPolicy(raise_after_s=60, assume_persists=True)
    table = ConditionTable()
    # The device clock is an hour behind: receive time, not ts, measures the wait.
    signal = table.observe(DEV, "mh-1", obs(0, F), policy, received_s=at(3600).timestamp())
    assert signal is None
    assert table.advance(at(3630).timestamp()) == []
    raised = table.advance(at(3660).timestamp())
    assert [(s.action, s.at) for s in raised] == [(SignalAction.RAISE, at(60))]


def test_without_persistence_advance_does_not_raise() -> None:
    policy = ConditionPolicy(raise_after_s=60)
    table = ConditionTable()
    table.observe(DEV, "mh-1", obs(0, F), policy)
    assert table.advance(at(10_000).timestamp()) == []


def test_a_source_is_quiet_exactly_while_it_has_no_live_condition() -> None:
    # The engine skips OK and HOLD verdicts of types with no live condition: wrong sets
    # would lose clears.
    policy = ConditionPolicy(clear_after_s=0)
    table = ConditionTable()
    assert table.live_types("mh-1") is None
    feed(table, policy, [(0, F)])
    other = Observation(AlarmType.COVER_OPEN, F, at(0), "mh-1")
    table.observe(DEV, "mh-1", other, policy)
    assert table.live_types("mh-1") == {AlarmType.TILT, AlarmType.COVER_OPEN}
    assert table.live_types("mh-2") is None
    feed(table, policy, [(10, OK)])  # TILT cleared, COVER_OPEN still active
    assert table.live_types("mh-1") == {AlarmType.COVER_OPEN}
    table.observe(DEV, "mh-1", other._replace(verdict=OK, ts=at(10)), policy)
    assert table.live_types("mh-1") is None
    assert len(table) == 0
    table.restore((DEV, "mh-2", AlarmType.TILT), policy, Severity.MAJOR, at(0))
    assert table.live_types("mh-2") == {AlarmType.TILT}


def test_a_source_whose_last_condition_ends_by_the_clock_is_quiet_again() -> None:
    policy = ConditionPolicy(suppress_s=300)
    table = ConditionTable()
    feed(table, policy, [(0, F), (10, OK)])  # cleared, then live for its suppression window
    assert table.live_types("mh-1") == {AlarmType.TILT}
    table.advance(at(10_000).timestamp())
    assert len(table) == 0
    assert table.live_types("mh-1") is None
