"""Per-device reorder buffers: what a device sent is judged in `ts` order, not arrival order.

A reading (or a status with its own ts) waits in its device's buffer until the device's
newest `ts` is `tolerance_s` ahead of it, or until it has been held that long by the
injected clock, then is released oldest first. The engine drops duplicates and late
readings before they get here (it knows what was released: `released_ts_s` of the slot).
With a tolerance of 0 a batch is still sorted per device, and no reading waits.

A status is ordered among the device's readings but is no barrier: it neither moves the
device's newest ts (so it releases no reading) nor makes later-arriving older readings
late. It is released with the readings that pass it, or by the injected clock after
`tolerance_s`. With a tolerance of 0 the engine does not buffer statuses at all: it judges
them at once, in the batch's event order.
"""

import heapq
import math
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from hub.devices.decode import Reading, StatusChange

Item = Reading | StatusChange


class Slot(Protocol):
    """What a buffer needs of the engine's per-device bookkeeping."""

    max_ts_s: float  # newest ts accepted into the buffer
    released_ts_s: float  # newest ts released (judged)


SlotT = TypeVar("SlotT", bound=Slot)
# A released item: (ts_s, device id, received_s, reading or status, the device's slot).
Released = tuple[float, str, float, Item, SlotT]


def _held_ts(held: tuple[float, float, Item]) -> float:
    return held[0]


class ReorderBuffers(Generic[SlotT]):
    """The buffers of all devices and the queue of their hold deadlines."""

    __slots__ = ("_hold_queue", "_pending", "_tolerance_s")

    def __init__(self, tolerance_s: float) -> None:
        self._tolerance_s = tolerance_s
        # Per device, items not yet released as (ts_s, received_s, item).
        self._pending: dict[str, list[tuple[float, float, Item]]] = {}
        # (release time by the injected clock, device) for every device with held items;
        # stale entries (released earlier by event time) are skipped when popped.
        self._hold_queue: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return sum(len(b) for b in self._pending.values())

    def hold(
        self,
        device_id: str,
        slot: SlotT,
        ts_s: float,
        received_s: float,
        item: Item,
    ) -> bool:
        """Buffer an item; False (not buffered) for a reading with a ts already held."""
        reading = isinstance(item, Reading)
        buffer = self._pending.get(device_id)
        if buffer is None:
            self._pending[device_id] = [(ts_s, received_s, item)]
            if self._tolerance_s > 0 or not reading:
                # Without a tolerance the next release takes every reading; a status may
                # be ahead of them all, and waits for the clock.
                heapq.heappush(self._hold_queue, (received_s + self._tolerance_s, device_id))
        elif reading and any(held[0] == ts_s for held in buffer):
            return False
        else:
            buffer.append((ts_s, received_s, item))
            if not reading:
                heapq.heappush(self._hold_queue, (received_s + self._tolerance_s, device_id))
        if reading:
            slot.max_ts_s = max(slot.max_ts_s, ts_s)
        return True

    def holds(self, device_id: str) -> bool:
        """Whether the device has items held."""
        return device_id in self._pending

    def holds_before(self, device_id: str, ts_s: float) -> bool:
        """Whether the device has an item held with a ts at or before `ts_s`."""
        buffer = self._pending.get(device_id)
        return buffer is not None and any(held[0] <= ts_s for held in buffer)

    def drop(self, device_id: str) -> None:
        """Forget a device's held items (decommissioned)."""
        self._pending.pop(device_id, None)

    def release_behind(self, device_id: str, slot: SlotT, out: list[Released[SlotT]]) -> None:
        """Release the device's items `tolerance_s` or more behind its newest ts."""
        self._release(device_id, slot, slot.max_ts_s - self._tolerance_s, -math.inf, out)

    def release_held(
        self, now_s: float, slot_of: Callable[[str], SlotT], out: list[Released[SlotT]]
    ) -> None:
        """Release every item held `tolerance_s` or longer by the injected clock at `now_s`."""
        queue = self._hold_queue
        held_until_s = now_s - self._tolerance_s
        while queue and queue[0][0] <= now_s:
            _, device_id = heapq.heappop(queue)
            if device_id in self._pending:
                self._release(device_id, slot_of(device_id), -math.inf, held_until_s, out)

    def _release(
        self,
        device_id: str,
        slot: SlotT,
        ts_cutoff_s: float,
        received_cutoff_s: float,
        out: list[Released[SlotT]],
    ) -> None:
        """Release, oldest first, the buffered items past the event-time or hold cutoff."""
        buffer = self._pending[device_id]
        if len(buffer) == 1:  # the common case: one reading of the device in the batch
            ts_s, received_s, item = buffer[0]
            if ts_s > ts_cutoff_s and received_s > received_cutoff_s:
                return  # still inside its hold time
            del self._pending[device_id]
            if isinstance(item, Reading):
                slot.released_ts_s = ts_s
            out.append((ts_s, device_id, received_s, item, slot))
            return
        buffer.sort(key=_held_ts)
        count = 0
        for position, (ts_s, received_s, _) in enumerate(buffer):
            if ts_s <= ts_cutoff_s or received_s <= received_cutoff_s:
                count = position + 1
        if count == 0:
            return
        taken = buffer[:count]
        if count == len(buffer):
            del self._pending[device_id]
        else:
            del buffer[:count]
            oldest_received_s = min(held[1] for held in buffer)
            heapq.heappush(self._hold_queue, (oldest_received_s + self._tolerance_s, device_id))
        for ts_s, received_s, item in taken:
            if isinstance(item, Reading):
                slot.released_ts_s = ts_s
            out.append((ts_s, device_id, received_s, item, slot))
