"""Dusk and dawn at the city's position (astral), cached per local date; the dimming schedule."""

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import dawn, dusk

MS_PER_DAY = 86_400_000
MS_PER_MINUTE = 60_000

# (local minute of day from which it applies, dim percent); lamps run full until 22:00,
# 70% until midnight, 50% until 05:00 and full again for the morning traffic.
DIM_SCHEDULE: tuple[tuple[int, float], ...] = ((0, 50.0), (300, 100.0), (1320, 70.0))


@dataclass(slots=True)
class SunClock:
    """Answers "is it dark?" for epoch ms at one place; lamps are lit from dusk to dawn."""

    lat: float
    lon: float
    timezone: str
    depression_deg: float = 6.0
    _zone: ZoneInfo = field(init=False)
    _offsets: dict[int, int] = field(init=False, default_factory=dict)
    _days: dict[dt.date, tuple[int, int]] = field(init=False, default_factory=dict)
    # the local day last asked about: [start, end) in UTC ms and its (dawn, dusk)
    _day_window: tuple[int, int, int, int] = field(init=False, default=(0, 0, 0, 0))

    def __post_init__(self) -> None:
        self._zone = ZoneInfo(self.timezone)

    def utc_offset_ms(self, ts_ms: int) -> int:
        """The zone's UTC offset at that instant (cached per UTC day)."""
        day = ts_ms // MS_PER_DAY
        offset = self._offsets.get(day)
        if offset is None:
            instant = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
            delta = self._zone.utcoffset(instant.replace(tzinfo=None))
            offset = int(delta.total_seconds() * 1000) if delta is not None else 0
            self._offsets[day] = offset
        return offset

    def local_minute(self, ts_ms: int) -> int:
        """Minute of the local day, 0..1439."""
        return int(((ts_ms + self.utc_offset_ms(ts_ms)) % MS_PER_DAY) // MS_PER_MINUTE)

    def local_date(self, ts_ms: int) -> dt.date:
        """The local calendar date at that instant."""
        days = (ts_ms + self.utc_offset_ms(ts_ms)) // MS_PER_DAY
        return dt.date(1970, 1, 1) + dt.timedelta(days=days)

    def daylight(self, day: dt.date) -> tuple[int, int]:
        """(dawn, dusk) of a local date as epoch milliseconds."""
        cached = self._days.get(day)
        if cached is None:
            observer = Observer(latitude=self.lat, longitude=self.lon)
            dawn_at = dawn(observer, day, tzinfo=self._zone, depression=self.depression_deg)
            dusk_at = dusk(observer, day, tzinfo=self._zone, depression=self.depression_deg)
            cached = (int(dawn_at.timestamp() * 1000), int(dusk_at.timestamp() * 1000))
            self._days[day] = cached
        return cached

    def is_dark(self, ts_ms: int) -> bool:
        """True between dusk and the next dawn."""
        start, end, dawn_ms, dusk_ms = self._day_window
        if not start <= ts_ms < end:
            offset = self.utc_offset_ms(ts_ms)
            start = (ts_ms + offset) // MS_PER_DAY * MS_PER_DAY - offset
            dawn_ms, dusk_ms = self.daylight(self.local_date(ts_ms))
            self._day_window = (start, start + MS_PER_DAY, dawn_ms, dusk_ms)
        return not dawn_ms <= ts_ms < dusk_ms

    def next_change_ms(self, ts_ms: int) -> int:
        """The next dusk or dawn strictly after ts."""
        day = self.local_date(ts_ms)
        for offset in (0, 1, 2):
            dawn_ms, dusk_ms = self.daylight(day + dt.timedelta(days=offset))
            for edge in (dawn_ms, dusk_ms):
                if edge > ts_ms:
                    return edge
        raise ValueError("no dusk or dawn within two days")  # polar day or night

    def dim_pct(self, ts_ms: int) -> float:
        """Dimming level the schedule asks for at that instant (when lamps are on)."""
        minute = self.local_minute(ts_ms)
        level = DIM_SCHEDULE[0][1]
        for start, pct in DIM_SCHEDULE:
            if minute >= start:
                level = pct
        return level
