"""Readings that share one receipt-time object are judged as readings with their own.

The network thread stamps every message of one socket read with the same datetime, and
the engine takes that object's timestamp once for the run of readings holding it
(hub/rules/engine.py). Generated streams of every kind (tests/rules/streams.py), their
readings grouped as one read would hand them over, are played twice: each group sharing
one object, and each reading holding an equal object of its own. The signals must be
the same, signal for signal (that these streams raise and clear alarms of every kind is
tests/rules/test_quiet_screening.py's test_the_streams_raise_and_clear_alarms_of_every_kind).
"""

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.devices.decode import Reading
from tests.rules.streams import draw_modes, engine, play, stream_of


def regroup(
    stream: list[list[Reading]], size: int, first: bool
) -> tuple[list[list[Reading]], list[list[Reading]]]:
    """Each batch's readings in groups of `size` stamped with one receipt time (the group's
    first reading's, some readings then ahead of it, or its last's): shared, and copied."""
    shared: list[list[Reading]] = []
    own: list[list[Reading]] = []
    for batch in stream:
        shared.append([])
        own.append([])
        for start in range(0, len(batch), size):
            group = batch[start : start + size]
            at = group[0 if first else -1].received_at
            for reading in group:
                copy = at + timedelta(0)
                assert copy is not at
                assert copy == at
                shared[-1].append(reading._replace(received_at=at))
                own[-1].append(reading._replace(received_at=copy))
    return shared, own


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_shared_receipt_time_gives_the_signals_of_equal_ones(data: st.DataObject) -> None:
    modes = draw_modes(data)
    size = data.draw(st.integers(1, 12), label="readings per socket read")
    first = data.draw(st.booleans(), label="stamped with the first reading's receipt")
    shared, own = regroup(stream_of(modes), size, first)

    by_shared = [repr(s) for s in play(engine(screen_quiet=True), shared)]
    by_own = [repr(s) for s in play(engine(screen_quiet=True), own)]

    assert by_shared == by_own
