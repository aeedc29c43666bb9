"""The bounded queue between the ingest writer thread and the alarm flow's thread."""

import threading
from collections import deque
from collections.abc import Sequence

from hub.devices.decode import Reading, StatusChange


class ReadingQueue:
    """Batches of readings for the flow thread, bounded by readings rather than batches.

    A backlog drains in batches of up to `HUB_BATCH_MAX_ROWS` readings and live traffic in
    batches of a few hundred, so a bound in batches is either too small for one or
    unbounded memory for the other (64 batches of 20,000 readings each were 1.28 million
    decoded readings). `put` waits while the readings queued would exceed the budget; a
    batch larger than the budget is let in alone, so it cannot wait for ever.
    """

    def __init__(self, max_readings: int) -> None:
        self._max = max_readings
        # (readings, handed by another member, the batch's device statuses)
        self._batches: deque[tuple[Sequence[Reading], bool, Sequence[StatusChange]]] = deque()
        self._readings = 0
        self._changed = threading.Condition()

    @property
    def readings(self) -> int:
        """Readings queued."""
        return self._readings

    def put(
        self,
        readings: Sequence[Reading],
        handed: bool,
        timeout_s: float,
        statuses: Sequence[StatusChange] = (),
    ) -> bool:
        """Queue a batch; False when it did not fit within `timeout_s`."""
        with self._changed:
            fits = self._changed.wait_for(
                lambda: not self._readings or self._readings + len(readings) <= self._max,
                timeout_s,
            )
            if not fits:
                return False
            self._batches.append((readings, handed, statuses))
            self._readings += len(readings)
            self._changed.notify_all()
            return True

    def get(
        self, timeout_s: float
    ) -> tuple[Sequence[Reading], bool, Sequence[StatusChange]] | None:
        """The oldest batch, or None when none came within `timeout_s`."""
        with self._changed:
            if not self._changed.wait_for(lambda: bool(self._batches), timeout_s):
                return None
            batch = self._batches.popleft()
            self._readings -= len(batch[0])
            self._changed.notify_all()
            return batch

    def empty(self) -> bool:
        """Whether no batch is queued."""
        return not self._batches
