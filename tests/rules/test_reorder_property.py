"""Property: any arrival order within the reorder tolerance gives the same alarms."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.devices.decode import Reading
from hub.devices.kinds import Kind
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from hub.rules.signals import AlarmSignal
from tests.rules.rule_fixtures import TiltRule, at, make_config, manhole_reading

TOLERANCE_S = 10
DEVICES = ("mh-1", "mh-2")


def run(arrivals: list[Reading], cuts: list[int], end_s: float) -> list[AlarmSignal]:
    config = make_config(
        {"tilt": {"raise_after_s": 3, "clear_after_s": 4, "suppress_s": 5, "update_interval_s": 2}},
        reorder_tolerance_s=TOLERANCE_S,
    )
    devices = [DeviceInfo(d, Kind.MANHOLE) for d in DEVICES]
    engine = RuleEngine(config, devices, now=at(0), rules=[TiltRule()])
    signals: list[AlarmSignal] = []
    bounds = [0, *sorted(c % (len(arrivals) + 1) for c in cuts), len(arrivals)]
    for start, stop in itertools.pairwise(bounds):
        signals += engine.process(arrivals[start:stop])
    signals += engine.tick(at(end_s + TOLERANCE_S + 1))
    return sorted(signals, key=lambda s: (s.source_id, s.at, s.action))


tilts = st.sampled_from([2.0, 5.0, 9.0, 12.0, 20.0])


@settings(max_examples=150, deadline=None)
@given(
    series=st.lists(
        st.tuples(st.sampled_from(DEVICES), tilts, st.integers(0, TOLERANCE_S - 1)),
        min_size=1,
        max_size=60,
    ),
    duplicates=st.lists(st.integers(0, 59), max_size=5),
    cuts=st.lists(st.integers(0, 100), max_size=6),
)
def test_arrival_order_within_tolerance_does_not_change_alarms(
    series: list[tuple[str, float, int]], duplicates: list[int], cuts: list[int]
) -> None:
    # One reading per second of event time, arriving with a delay below the tolerance.
    readings = [
        (ts_s + delay_s, manhole_reading(device, ts_s, tilt, received_s=ts_s + delay_s))
        for ts_s, (device, tilt, delay_s) in enumerate(series)
    ]
    readings += [readings[i % len(readings)] for i in duplicates]  # redelivered copies
    in_order = [r for _, r in sorted(readings, key=lambda p: p[1].ts)]
    shuffled = [r for _, r in sorted(readings, key=lambda p: p[0])]
    end_s = float(len(series) + TOLERANCE_S)
    assert run(shuffled, cuts, end_s) == run(in_order, [], end_s)
