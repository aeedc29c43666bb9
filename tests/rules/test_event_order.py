"""The engine's order of released readings: event time, then device id, then arrival.

`_sort_released` sorts by time, then each instant's run by device id (two stable sorts
with plain keys, hub/rules/engine.py); it must give the order of one stable sort by the
key (time, device id), over generated batches with many ties of time and of device.
"""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hub.devices.kinds import Kind
from hub.rules.engine import _DeviceSlot, _sort_released
from hub.rules.interface import DeviceInfo

SLOT = _DeviceSlot(DeviceInfo("lighting-2", Kind.LIGHTING), 0, {}, ())

# (ts_s, device id, received_s, item, slot): few instants and devices, so ties abound.
ENTRIES = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.5, 1.0, 1_796_000_000.123, -3.0]),
        st.sampled_from(["lighting-10", "lighting-2", "truck-1", "Truck-1", "parking-0", ""]),
    ),
    max_size=60,
)


@given(ENTRIES)
def test_released_entries_are_ordered_by_time_then_device_then_arrival(
    keys: list[tuple[float, str]],
) -> None:
    entries: list[Any] = [
        (ts_s, device_id, 0.0, (arrival,), SLOT) for arrival, (ts_s, device_id) in enumerate(keys)
    ]
    expected = sorted(entries, key=lambda entry: (entry[0], entry[1]))

    _sort_released(entries)

    assert entries == expected
