"""Offline from a device's own status: the arrival pattern never changes the alarms.

Statuses travel on `<kind>/<id>/status`, readings on other topics: MQTT keeps each topic's
order, not their interleaving, and the hub's batches and clock ticks fall anywhere. The
same readings and statuses must give the same alarm signals paced (any batches, ticks
between them) and as one backlog (issue 18: the lighting scoring's LMP-000006).
"""

import dataclasses
import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.devices.decode import Reading, StatusChange
from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.signals import AlarmSignal, SignalAction
from tests.rules.rule_fixtures import (
    CircuitDarkRule,
    at,
    lamp_reading,
    make_config,
    manhole_reading,
)

Item = Reading | StatusChange
Outcome = list[tuple[str, AlarmType, float, SignalAction]]

LAMPS = ("L1", "L2", "L3")
# A circuit gone dark covers its lamps' offline alarms, as the cabinet rules do.
COVERING = dataclasses.replace(
    CircuitDarkRule(), suppresses=frozenset({AlarmType.LAMP_OUT, AlarmType.OFFLINE})
)


def _engine(
    kind: Kind, devices: Sequence[str], tolerance_s: float, **offline: object
) -> RuleEngine:
    # Silence by the receive clock only after a day: these tests are about the status.
    config = make_config(
        {"offline": {"expected_interval_s": 3600, "missed_reports": 24, **offline}},
        reorder_tolerance_s=tolerance_s,
    )
    group = "CAB-1" if kind is Kind.LIGHTING else None
    infos = [DeviceInfo(d, kind, group_id=group) for d in devices]
    group_rules = [COVERING] if kind is Kind.LIGHTING else []
    return RuleEngine(config, infos, now=at(0), group_rules=group_rules)


def _status(kind: Kind, device: str, ts_s: float, online: bool, received_s: float) -> StatusChange:
    return StatusChange(kind, device, online, at(ts_s), at(received_s))


def _received(item: Item, received_s: float) -> Item:
    if isinstance(item, Reading):
        return item._replace(received_at=at(received_s))
    return dataclasses.replace(item, received_at=at(received_s))


def _outcome(signals: list[AlarmSignal]) -> Outcome:
    return sorted(
        (s.source_id, s.alarm_type, (s.at - at(0)).total_seconds(), s.action) for s in signals
    )


def _feed(rules: RuleEngine, items: Sequence[Item]) -> list[AlarmSignal]:
    readings = [i for i in items if isinstance(i, Reading)]
    statuses = [i for i in items if isinstance(i, StatusChange)]
    return rules.process(readings, statuses)


def _paced(
    rules: RuleEngine, items: Sequence[Item], cuts: Sequence[int], ticks: Sequence[int], end: float
) -> Outcome:
    """Items in their arrival order, cut into batches, the clock ticking after some."""
    signals: list[AlarmSignal] = []
    bounds = sorted({0, len(items), *(c % (len(items) + 1) for c in cuts)})
    ticked = {t % (len(bounds) + 1) for t in ticks}
    for number, (start, stop) in enumerate(itertools.pairwise(bounds)):
        signals += _feed(rules, items[start:stop])
        if number in ticked:
            signals += rules.tick(max(i.received_at for i in items[:stop]))
    signals += rules.tick(at(end))
    return _outcome(signals)


def _backlog(rules: RuleEngine, items: Sequence[Item], received_s: float, end: float) -> Outcome:
    """Everything received at once, long after (a hub started on its broker's queue)."""
    signals = _feed(rules, [_received(i, received_s) for i in items])
    signals += rules.tick(at(received_s)) + rules.tick(at(end))
    return _outcome(signals)


def test_an_offline_status_is_judged_in_event_order_with_the_other_devices_readings() -> None:
    # LMP-000006 in the lighting scoring: its offline status came before its cabinet
    # tripped. Judged at the next clock tick (paced), after the trip had been judged, it
    # was covered and never announced; in the backlog it was raised, then covered.
    items: list[Item] = [lamp_reading(d, 0, lit=True) for d in LAMPS]
    items.append(_status(Kind.LIGHTING, "L1", 100, False, 100))
    items += [lamp_reading(d, 200, lit=False) for d in ("L2", "L3")]
    backlog = _backlog(_engine(Kind.LIGHTING, LAMPS, 0), items, 1_000, 2_000)
    assert backlog == [
        ("CAB-1", AlarmType.CIRCUIT_DARK, 200.0, SignalAction.RAISE),
        ("L1", AlarmType.OFFLINE, 100.0, SignalAction.RAISE),
        ("L1", AlarmType.OFFLINE, 200.0, SignalAction.CLEAR),
    ]
    # One batch per message, the clock ticking once a second (the alarm flow's tick).
    paced = _paced(_engine(Kind.LIGHTING, LAMPS, 0), items, range(len(items)), [], 2_000)
    assert paced == backlog


# One device's life: readings, outages announced by an `offline` status and ended by an
# `online` status (or just by readings), one event per step of 20 s of event time.
steps = st.lists(
    st.sampled_from(["reading", "reading", "offline", "online"]), min_size=1, max_size=40
)
policies = st.fixed_dictionaries(
    {"raise_after_s": st.sampled_from([0, 60, 300]), "suppress_s": st.sampled_from([0, 600])}
)


@settings(max_examples=300, deadline=None)
@given(
    life=steps,
    policy=policies,
    reading_delays=st.lists(st.integers(0, 30), min_size=40, max_size=40),
    status_delays=st.lists(st.integers(0, 30), min_size=40, max_size=40),
    cuts=st.lists(st.integers(0, 80), max_size=10),
    ticks=st.lists(st.integers(0, 12), max_size=6),
)
def test_any_interleaving_within_the_tolerance_gives_the_same_offline_alarms(
    life: list[str],
    policy: dict[str, int],
    reading_delays: list[int],
    status_delays: list[int],
    cuts: list[int],
    ticks: list[int],
) -> None:
    """Each topic keeps its order; either may overtake the other by up to the tolerance."""
    tolerance_s = 30
    timeline: list[Item] = []
    arrivals: list[tuple[float, int, Item]] = []
    last_arrival = {True: 0.0, False: 0.0}
    for step, what in enumerate(life):
        ts_s = 20.0 * step + 10
        is_reading = what == "reading"
        delay = (reading_delays if is_reading else status_delays)[step]
        # Topic order: nothing arrives before what its topic carried earlier.
        received_s = max(ts_s + delay, last_arrival[is_reading])
        last_arrival[is_reading] = received_s
        item: Item = (
            manhole_reading("mh-1", ts_s, 0.5, received_s=received_s)
            if is_reading
            else _status(Kind.MANHOLE, "mh-1", ts_s, what == "online", received_s)
        )
        timeline.append(item)
        arrivals.append((received_s, step, item))
    arrived = [item for _, _, item in sorted(arrivals, key=lambda a: (a[0], a[1]))]
    end = 20.0 * len(life) + 5_000
    devices = ("mh-1",)
    paced = _paced(_engine(Kind.MANHOLE, devices, tolerance_s, **policy), arrived, cuts, ticks, end)
    backlog = _backlog(
        _engine(Kind.MANHOLE, devices, tolerance_s, **policy), timeline, end - 1_000, end
    )
    assert paced == backlog


@settings(max_examples=300, deadline=None)
@given(
    lives=st.tuples(steps, steps, steps),
    policy=policies,
    cuts=st.lists(st.integers(0, 130), max_size=20),
    ticks=st.lists(st.integers(0, 25), max_size=10),
)
def test_any_batches_and_ticks_give_the_same_alarms_as_the_backlog(
    lives: tuple[list[str], list[str], list[str]],
    policy: dict[str, int],
    cuts: list[int],
    ticks: list[int],
) -> None:
    """No reorder tolerance: lamps of one circuit, messages in the order they were sent,
    batches cut and the clock ticking anywhere; a dark circuit covers offline lamps."""
    items: list[tuple[float, Item]] = []
    for offset, (lamp, life) in enumerate(zip(LAMPS, lives, strict=True)):
        for step, what in enumerate(life):
            ts_s = 30.0 * step + 10 * offset + 1  # no two lamps share an instant
            item: Item = (
                lamp_reading(lamp, ts_s, lit=step % 3 != 2)
                if what == "reading"
                else _status(Kind.LIGHTING, lamp, ts_s, what == "online", ts_s)
            )
            items.append((ts_s, item))
    sent = [item for _, item in sorted(items, key=lambda p: p[0])]
    end = 30.0 * 40 + 5_000
    paced = _paced(_engine(Kind.LIGHTING, LAMPS, 0, **policy), sent, cuts, ticks, end)
    backlog = _backlog(_engine(Kind.LIGHTING, LAMPS, 0, **policy), sent, end - 1_000, end)
    assert paced == backlog
