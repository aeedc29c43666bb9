"""freeze_heap: garbage cycles are collected first, survivors leave the collector's sight."""

import gc
import weakref
from collections.abc import Iterator

import pytest

from hub.services.runtime import YOUNG_COLLECTION_THRESHOLD, freeze_heap, tune_collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


@pytest.mark.usefixtures("unfrozen")
def test_a_dropped_cycle_is_collected_and_a_kept_object_is_frozen() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    dropped = weakref.ref(a)
    del a, b
    kept = Node()
    before = gc.get_freeze_count()
    frozen = freeze_heap()
    assert dropped() is None  # not frozen alive
    assert frozen > before
    assert not any(o is kept for o in gc.get_objects())  # the collector no longer walks it


def test_the_young_generation_is_collected_less_often_and_cycles_still_are(
    thresholds: tuple[int, int, int],
) -> None:
    young, middle, old = tune_collector()
    assert young == YOUNG_COLLECTION_THRESHOLD > thresholds[0]
    assert (middle, old) == thresholds[1:]  # the older generations keep their ratios
    collected_before = gc.get_stats()[0]["collections"]
    dropped = []
    for _ in range(3 * YOUNG_COLLECTION_THRESHOLD // 2):
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle only the collector can free
        dropped.append(weakref.ref(a))
        del a, b
    assert gc.get_stats()[0]["collections"] > collected_before  # collected without a call
    assert sum(ref() is None for ref in dropped) >= YOUNG_COLLECTION_THRESHOLD // 2
