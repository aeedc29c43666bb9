"""The rules' queue is bounded by readings: the writer waits, a huge batch still gets in."""

import threading
import time

from hub.devices.decode import Reading
from hub.services.reading_queue import ReadingQueue


def batch(n: int) -> list[Reading]:
    return [object()] * n  # type: ignore[list-item]  # only their number matters here


def test_a_put_over_the_budget_waits_until_the_flow_takes_a_batch() -> None:
    q = ReadingQueue(max_readings=1_000)
    assert q.put(batch(600), False, timeout_s=0.1)
    assert q.put(batch(400), True, timeout_s=0.1)
    assert not q.put(batch(1), False, timeout_s=0.2)  # full: the writer would wait
    assert q.readings == 1_000
    admitted = threading.Event()

    def writer() -> None:
        if q.put(batch(500), False, timeout_s=5):
            admitted.set()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.2)
    assert not admitted.is_set()
    first = q.get(timeout_s=1)
    assert first is not None
    assert (len(first[0]), first[1]) == (600, False)
    assert admitted.wait(5)
    thread.join()
    assert q.readings == 900


def test_a_batch_larger_than_the_budget_is_let_in_alone() -> None:
    q = ReadingQueue(max_readings=100)
    assert q.put(batch(5_000), False, timeout_s=0.1)
    assert not q.put(batch(1), False, timeout_s=0.1)
    taken = q.get(timeout_s=1)
    assert taken is not None
    assert len(taken[0]) == 5_000
    assert q.empty()
    assert q.get(timeout_s=0.05) is None
