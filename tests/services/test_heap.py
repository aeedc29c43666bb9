"""freeze_heap: garbage cycles are collected first, survivors leave the collector's sight."""

import gc
import weakref
from collections.abc import Iterator

import pytest

from hub.services.runtime import freeze_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


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
