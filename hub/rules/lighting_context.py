"""What the street-lighting rules share: the sun at a place, the operators' intent (commanded
off, lockouts), a lamp's rating and supply.

Civil dawn and dusk are cached per ~1 km cell and UTC date; the intent windows are swapped
in whole by the store (hub/store/lighting.py), so the rules read them without I/O.
"""

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from astral import Observer
from astral.sun import dawn, dusk

from hub.devices.decode import Reading
from hub.devices.lighting import CabinetPayload, LightingPayload
from hub.rules.condition import epoch_s, real_number
from hub.rules.interface import DeviceInfo

SUPPLY_LOSS_CODE = "SUPPLY_LOSS"


# -- sun --------------------------------------------------------------------------------


@dataclass(slots=True)
class SunTimes:
    """Civil dawn and dusk at a place, cached per ~1 km cell and UTC date (astral).

    Events are kept as epoch seconds: a reading is placed among them with float
    comparisons, not a datetime subtraction per event.
    """

    depression_deg: float = 6.0
    _cache: dict[tuple[float, float, int], tuple[tuple[float, bool], ...]] = field(
        default_factory=dict
    )
    # The same events by the exact position asked for: a lamp's position is the same at
    # every reading, and rounding two floats per call (`round(x, 2)` formats the number)
    # was a twentieth of a lamp reading's rules.
    _by_position: dict[tuple[float, float, int], tuple[tuple[float, bool], ...]] = field(
        default_factory=dict
    )

    def _events(self, lat: float, lon: float, day_number: int) -> tuple[tuple[float, bool], ...]:
        """(epoch s, is dawn) of the dawns and dusks from the day before to the day after.

        `day_number` is the UTC date as days since 1970-01-01.
        """
        exact = (lat, lon, day_number)
        found = self._by_position.get(exact)
        if found is not None:
            return found
        if len(self._by_position) > 200_000:
            self._by_position.clear()
        found = self._by_position[exact] = self._cell_events(lat, lon, day_number)
        return found

    def _cell_events(
        self, lat: float, lon: float, day_number: int
    ) -> tuple[tuple[float, bool], ...]:
        """`_events` of the ~1 km cell of a position."""
        key = (round(lat, 2), round(lon, 2), day_number)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        observer = Observer(latitude=key[0], longitude=key[1])
        day = _EPOCH_DATE + timedelta(days=day_number)
        events: set[tuple[float, bool]] = set()
        for offset in (-1, 0, 1):
            when = day + timedelta(days=offset)
            for event, is_dawn in ((dawn, True), (dusk, False)):
                try:
                    at = event(observer, when, self.depression_deg, tzinfo=UTC)
                except ValueError:  # polar day or night: no such event that date
                    continue
                events.add((at.timestamp(), is_dawn))
        result = tuple(sorted(events))
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[key] = result
        return result

    def phase(self, lat: float, lon: float, at: datetime) -> tuple[bool, float, float]:
        """(is day, seconds since the last dawn/dusk, seconds until the next one) at `at`."""
        at_s = epoch_s(at)
        is_day = False
        since_s = math.inf
        until_s = math.inf
        for event_s, is_dawn in self._events(lat, lon, int(at_s // _DAY_S)):
            if at_s >= event_s:
                since_s = at_s - event_s
                is_day = is_dawn
            else:
                until_s = event_s - at_s
                break
        return is_day, since_s, until_s

    def is_day(self, lat: float, lon: float, at: datetime, margin_s: float) -> bool:
        """Daylight at least `margin_s` after dawn and before dusk."""
        return daylight(self.phase(lat, lon, at), margin_s)

    def is_night(self, lat: float, lon: float, at: datetime, margin_s: float) -> bool:
        """Darkness at least `margin_s` after dusk and before dawn."""
        day, since_s, until_s = self.phase(lat, lon, at)
        return not day and since_s >= margin_s and until_s >= margin_s


_EPOCH_DATE = date(1970, 1, 1)
_DAY_S = 86_400


def daylight(phase: tuple[bool, float, float], margin_s: float) -> bool:
    """A phase of `SunTimes.phase` at least `margin_s` into the day and before its end."""
    day, since_s, until_s = phase
    return day and since_s >= margin_s and until_s >= margin_s


SUN = SunTimes()


def night_windows(
    lat: float, lon: float, start: datetime, end: datetime, margin: timedelta
) -> list[tuple[datetime, datetime]]:
    """The nights at a place within [start, end]: from `margin` after civil dusk to `margin`
    before the next civil dawn, clipped to the period, oldest first (the lamps are due)."""
    observer = Observer(latitude=lat, longitude=lon)
    events: list[tuple[datetime, bool]] = []
    day = start.astimezone(UTC).date() - timedelta(days=1)
    while day <= end.astimezone(UTC).date() + timedelta(days=1):
        for event, is_dawn in ((dawn, True), (dusk, False)):
            try:
                events.append((event(observer, day, tzinfo=UTC), is_dawn))
            except ValueError:  # polar day or night
                continue
        day += timedelta(days=1)
    events.sort()
    nights: list[tuple[datetime, datetime]] = []
    for (at, is_dawn), (next_at, next_is_dawn) in itertools.pairwise(events):
        if is_dawn or not next_is_dawn:
            continue
        begins, ends = max(at + margin, start), min(next_at - margin, end)
        if begins < ends:
            nights.append((begins, ends))
    return nights


# -- intent: what the operators meant to be dark --------------------------------------------


@dataclass(frozen=True, slots=True)
class IntentWindow:
    """A lamp or cabinet meant to be dark from `starts_at` until `ends_at` (None: open)."""

    starts_at: datetime
    ends_at: datetime | None
    why: str  # "command <id>" or "lockout <id>"

    def covers(self, at: datetime) -> bool:
        """Whether an event time falls inside the window."""
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


class LightingIntent:
    """Commanded-off and maintenance-lockout windows per device, swapped in whole by the store.

    A dark lamp, an open contactor or a dark circuit that such a window explains is the
    operators' intent, not a fault: the rules judge it OK while the window holds.
    """

    def __init__(self) -> None:
        self._windows: dict[str, tuple[IntentWindow, ...]] = {}
        self._inside: dict[str, tuple[IntentWindow, ...]] = {}

    def replace(
        self,
        windows: dict[str, tuple[IntentWindow, ...]],
        inside: dict[str, tuple[IntentWindow, ...]] | None = None,
    ) -> None:
        """Put a freshly loaded set of windows in force (an atomic reference swap);
        `inside`: per cabinet, the windows of its lamps (some of its circuit meant dark)."""
        self._windows = windows
        self._inside = inside or {}

    def explains_some(self, cabinet_id: str, at: datetime) -> str | None:
        """Why some of a cabinet's lamps are meant to be dark at `at` (a circuit locked out or
        commanded off), or None."""
        for window in self._inside.get(cabinet_id, ()):
            if window.covers(at):
                return window.why
        return None

    def explains(self, device_id: str, at: datetime) -> str | None:
        """Why the device is meant to be dark at `at`, or None when it is not."""
        for window in self._windows.get(device_id, ()):
            if window.covers(at):
                return window.why
        return None


INTENT = LightingIntent()


def sun_position(
    device: DeviceInfo, lat: float | None = None, lon: float | None = None
) -> tuple[float, float] | None:
    """Where the sun is judged: the rule's configured position if set, else the device's."""
    if lat is not None and lon is not None:
        return lat, lon
    if device.lat is None or device.lon is None:
        return None
    return device.lat, device.lon


def rated_power_w(device: DeviceInfo) -> float | None:
    """The lamp's rating from its registry attributes, None when unknown."""
    rating = real_number(device.attributes.get("rated_power_w"))
    return rating if rating is not None and rating > 0 else None


class LampView:
    """A lamp reading's fields as the rules read them, taken from its payload model once.

    Every lamp rule reads the same few fields, ~35 reads per reading; a pydantic model's
    attribute costs ~0.1 µs to read (its class's `__getattr__` hook, the type lookup, the
    instance dict), an attribute of this class (compiled) a few ns. The fields are taken
    from the model's `__dict__`, where pydantic keeps them: one hooked read, not seven.
    """

    def __init__(self, payload: LightingPayload) -> None:
        fields: dict[str, Any] = payload.__dict__
        self.on: bool = fields["on"]
        self.dim_pct: float = fields["dim_pct"]
        self.voltage_v: float = fields["voltage_v"]
        self.current_a: float = fields["current_a"]
        self.power_w: float = fields["power_w"]
        self.power_factor: float = fields["power_factor"]
        self.fault_code: str | None = fields["fault_code"]


class _LastLamp:
    """The reading `lamp_view` was last asked for and its view, as one pair (the rules of
    a reading ask in turn); a field of a compiled instance in a Final name, not a module
    global (a dictionary lookup and store for compiled code)."""

    def __init__(self) -> None:
        self.pair: tuple[Reading, LampView] | None = None


_LAST_LAMP: Final = _LastLamp()


def lamp_view(reading: Reading) -> LampView:
    """A lamp reading's fields (the engine hands lamp rules only lamp readings)."""
    last = _LAST_LAMP.pair
    if last is not None and last[0] is reading:
        return last[1]
    payload = reading.payload
    if not isinstance(payload, LightingPayload):
        raise TypeError(f"a lamp rule got a {type(payload).__name__}")
    view = LampView(payload)
    _LAST_LAMP.pair = (reading, view)
    return view


def cabinet_payload(reading: Reading) -> CabinetPayload:
    """A cabinet reading's payload (the engine hands cabinet rules only cabinet readings)."""
    payload = reading.payload
    if not isinstance(payload, CabinetPayload):
        raise TypeError(f"a cabinet rule got a {type(payload).__name__}")
    return payload


def has_supply(payload: LampView, supply_min_v: float) -> bool:
    """The lamp's circuit is live (voltage present and no supply-loss code)."""
    return payload.fault_code != SUPPLY_LOSS_CODE and payload.voltage_v >= supply_min_v


def expected_power_w(payload: LampView, device: DeviceInfo) -> float | None:
    """Rating × reported dim level, None when the rating is unknown."""
    rating = rated_power_w(device)
    return None if rating is None else rating * payload.dim_pct / 100.0


# -- lamp rules -------------------------------------------------------------------------
