"""Muck trucks as the rules see them: the context and the per-truck tracker.

The context (permits, sites, zones, prepared geometry) is a pure snapshot the composition
refreshes from the store and swaps in; the tracker derives each position's facts once for
every rule.
"""

import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from hub.devices.decode import Reading
from hub.devices.kinds import Kind, Load
from hub.geometry import GridIndex, LocalProjection, projection_around
from hub.rules.condition import epoch_s
from hub.rules.interface import DeviceInfo
from hub.rules.truck_records import (
    Permit,
    Site,
    Zone,
    hours_minutes,
)

SITE_SEARCH_M = 1_000.0
TRACK_EVIDENCE_FIXES = 10
TRUCK = frozenset({Kind.TRUCK})


# -- geometry prepared for one point at a time (pure Python beats numpy for a single point) --


class FastPolyline:
    """A polyline's segments as Python floats: point distance in a few µs for short routes."""

    __slots__ = ("bbox", "segments")

    def __init__(self, points_xy: Sequence[tuple[float, float]]) -> None:
        pts = list(points_xy) if len(points_xy) > 1 else [points_xy[0], points_xy[0]]
        self.segments = tuple(
            (ax, ay, bx - ax, by - ay, (bx - ax) ** 2 + (by - ay) ** 2)
            for (ax, ay), (bx, by) in itertools.pairwise(pts)
        )
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        self.bbox = (min(xs), min(ys), max(xs), max(ys))

    def distance_m(self, x: float, y: float) -> float:
        """Distance from (x, y) to the nearest segment."""
        best = math.inf
        for ax, ay, dx, dy, length_sq in self.segments:
            rx, ry = x - ax, y - ay
            if length_sq > 0.0:
                t = (rx * dx + ry * dy) / length_sq
                if t > 1.0:
                    t = 1.0
                elif t < 0.0:
                    t = 0.0
                rx -= t * dx
                ry -= t * dy
            d = rx * rx + ry * ry
            best = min(best, d)
        return math.sqrt(best)


class FastPolygon:
    """A polygon ring as Python floats: containment and distance of one point."""

    __slots__ = ("bbox", "edges", "ring")

    def __init__(self, ring_xy: Sequence[tuple[float, float]]) -> None:
        ring = list(ring_xy)
        if len(ring) > 1 and ring[0] == ring[-1]:
            ring = ring[:-1]
        self.ring = tuple(ring)
        self.edges = FastPolyline([*ring, ring[0]])
        self.bbox = self.edges.bbox

    def contains(self, x: float, y: float) -> bool:
        """Even-odd ray casting."""
        inside = False
        ring = self.ring
        xj, yj = ring[-1]
        for xi, yi in ring:
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                inside = not inside
            xj, yj = xi, yi
        return inside

    def distance_m(self, x: float, y: float) -> float:
        """0 inside, else the distance to the boundary."""
        return 0.0 if self.contains(x, y) else self.edges.distance_m(x, y)


def _bbox_gap_m(bbox: tuple[float, float, float, float], x: float, y: float) -> float:
    dx = max(bbox[0] - x, 0.0, x - bbox[2])
    dy = max(bbox[1] - y, 0.0, y - bbox[3])
    return math.hypot(dx, dy)


# -- the context --


@dataclass(frozen=True, slots=True)
class SiteGeom:
    """A site with its polygon prepared in the context's projection."""

    site: Site
    polygon: FastPolygon


@dataclass(frozen=True, slots=True)
class PermitGeom:
    """A permit with its route prepared and its hours as minutes of the day."""

    permit: Permit
    route: FastPolyline
    window: tuple[int, int]
    disposal_ids: frozenset[str]

    def valid_on(self, day: date) -> bool:
        """Whether the permit is valid on a local date."""
        return self.permit.valid_from <= day <= self.permit.valid_to


@dataclass(frozen=True, slots=True)
class ZoneGeom:
    """A zone with its polygon prepared and its hours (None: always)."""

    zone: Zone
    polygon: FastPolygon
    window: tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class TruckContext:
    """What the truck rules judge positions against: an immutable snapshot of the store."""

    projection: LocalProjection
    sites: tuple[SiteGeom, ...] = ()
    permits_by_truck: Mapping[str, tuple[PermitGeom, ...]] = field(default_factory=dict)
    permits_by_id: Mapping[str, PermitGeom] = field(default_factory=dict)
    zones: tuple[ZoneGeom, ...] = ()
    loaded: bool = False
    site_grid: GridIndex = field(default_factory=lambda: GridIndex(()))
    zone_grid: GridIndex = field(default_factory=lambda: GridIndex(()))

    @classmethod
    def build(
        cls, sites: Iterable[Site], permits: Iterable[Permit], zones: Iterable[Zone] = ()
    ) -> "TruckContext":
        """Prepare geometry for every record (a loaded context: absence of a permit counts)."""
        sites, permits, zones = list(sites), list(permits), list(zones)
        coords = [p for s in sites for p in s.ring] + [p for r in permits for p in r.route]
        coords += [p for z in zones for p in z.ring]
        projection = projection_around(coords)

        def xy(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
            return [projection.to_xy(lat, lon) for lon, lat in points]

        permit_geoms = [
            PermitGeom(
                p,
                FastPolyline(xy(p.route)),
                hours_minutes(p.allowed_hours),
                frozenset(p.disposal_site_ids),
            )
            for p in permits
        ]
        by_truck: dict[str, list[PermitGeom]] = {}
        for geom in permit_geoms:
            by_truck.setdefault(geom.permit.truck_id, []).append(geom)
        site_geoms = tuple(SiteGeom(s, FastPolygon(xy(s.ring))) for s in sites)
        zone_geoms = tuple(
            ZoneGeom(z, FastPolygon(xy(z.ring)), hours_minutes(z.hours) if z.hours else None)
            for z in zones
        )
        return cls(
            projection=projection,
            sites=site_geoms,
            permits_by_truck={k: tuple(v) for k, v in by_truck.items()},
            permits_by_id={g.permit.permit_id: g for g in permit_geoms},
            zones=zone_geoms,
            loaded=True,
            site_grid=GridIndex([g.polygon.bbox for g in site_geoms], SITE_SEARCH_M),
            zone_grid=GridIndex([g.polygon.bbox for g in zone_geoms], SITE_SEARCH_M),
        )

    def permits_for(self, device: DeviceInfo) -> tuple[PermitGeom, ...]:
        """The truck's permits (by truck id, else the registry's `permit_id` attribute)."""
        found = self.permits_by_truck.get(device.device_id)
        if found:
            return found
        permit_id = device.attributes.get("permit_id")
        geom = self.permits_by_id.get(str(permit_id)) if permit_id else None
        return (geom,) if geom is not None else ()

    def sites_near(self, x: float, y: float, within_m: float) -> list[tuple[float, SiteGeom]]:
        """Sites within `within_m` of a point, nearest first."""
        found = []
        sites = self.sites
        for index in self.site_grid.candidates(x, y, within_m):
            geom = sites[index]
            if _bbox_gap_m(geom.polygon.bbox, x, y) > within_m:
                continue
            d = geom.polygon.distance_m(x, y)
            if d <= within_m:
                found.append((d, geom))
        found.sort(key=lambda item: item[0])
        return found

    def zones_at(self, x: float, y: float) -> tuple[ZoneGeom, ...]:
        """Zones containing a point."""
        zones = self.zones
        return tuple(
            z
            for z in (zones[i] for i in self.zone_grid.candidates(x, y))
            if _bbox_gap_m(z.polygon.bbox, x, y) == 0.0 and z.polygon.contains(x, y)
        )


class TruckContextSource:
    """Holds the current context; the composition swaps in a new one (an atomic reference)."""

    def __init__(self) -> None:
        self._context = TruckContext(LocalProjection(31.30, 120.62))

    @property
    def current(self) -> TruckContext:
        """The context now in force."""
        return self._context

    def replace(self, context: TruckContext) -> None:
        """Put a freshly built context in force."""
        self._context = context


# -- per-truck derived facts --


class TruckFix:
    """One position with everything the rules derive from it (computed once per reading).

    A plain class, not a dataclass: compiled (hub/native.py), its `__init__` is native,
    where a dataclass's generated `__init__` ran as Python, ~1 µs of each truck reading.
    """

    def __init__(
        self,
        *,
        ts: datetime,
        ts_s: float,
        lat: float,
        lon: float,
        x: float,
        y: float,
        projection: LocalProjection,
        speed_kmh: float,
        acc_on: bool,
        body_lifted: bool,
        cover_closed: bool,
        load: Load,
        permits: tuple[PermitGeom, ...],
        route_distance_m: float | None,
        sites: list[tuple[float, SiteGeom]],
        zones: tuple[ZoneGeom, ...],
    ) -> None:
        self.ts = ts
        self.ts_s = ts_s
        self.lat = lat
        self.lon = lon
        self.x = x
        self.y = y
        self.projection = projection  # of x and y
        self.speed_kmh = speed_kmh
        self.acc_on = acc_on
        self.body_lifted = body_lifted
        self.cover_closed = cover_closed
        self.load = load
        self.permits = permits
        self.route_distance_m = route_distance_m
        self.sites = sites
        self.zones = zones
        self.prev_ts_s: float | None = None
        self.prev_acc_on = False
        self.prev_load: Load | None = None
        self.step_m = 0.0
        self._values: Mapping[str, object] | None = None

    def values(self) -> Mapping[str, object]:
        """The reading's fields as evidence values (built once, shared by the rules' faults)."""
        if self._values is None:
            self._values = {
                "lat": self.lat,
                "lon": self.lon,
                "speed_kmh": self.speed_kmh,
                "acc_on": self.acc_on,
                "body_lifted": self.body_lifted,
                "cover_closed": self.cover_closed,
                # str() of a StrEnum member is its value, in C; `.value` is a Python-level
                # enum property (one frame per call)
                "load": str(self.load),
            }
        return self._values


class _TruckMemory:
    """What the tracker keeps per truck."""

    __slots__ = ("fix", "track")

    def __init__(self) -> None:
        self.fix: TruckFix | None = None
        self.track: deque[tuple[float, float, float, float]] = deque(maxlen=TRACK_EVIDENCE_FIXES)


class TruckTracker:
    """Derives a `TruckFix` per reading once, shared by every truck rule, and keeps the track."""

    def __init__(self, source: TruckContextSource) -> None:
        self.source = source
        self._memory: dict[str, _TruckMemory] = {}
        # The reading judged last and its fix: the other rules on that reading ask again.
        self._last: tuple[Reading, TruckFix] | None = None

    def fix(self, reading: Reading, device: DeviceInfo) -> TruckFix:
        """The derived fix of this reading (computed by the first rule that asks)."""
        last = self._last
        if last is not None and last[0] is reading:
            return last[1]
        memory = self._memory.get(reading.device_id)
        if memory is None:
            memory = self._memory[reading.device_id] = _TruckMemory()
        current = memory.fix
        ts_s = epoch_s(reading.ts)
        if current is not None and current.ts_s == ts_s:
            self._last = (reading, current)
            return current
        context = self.source.current
        # The payload model's fields from its `__dict__` (where pydantic keeps them): each
        # attribute of a model is a read through its class's `__getattr__` hook.
        payload: dict[str, Any] = reading.payload.__dict__
        lat, lon = float(payload["lat"]), float(payload["lon"])
        x, y = context.projection.to_xy(lat, lon)
        permits = context.permits_for(device)
        route_distance = min((p.route.distance_m(x, y) for p in permits), default=None)
        fix = TruckFix(
            ts=reading.ts,
            ts_s=ts_s,
            lat=lat,
            lon=lon,
            x=x,
            y=y,
            projection=context.projection,
            speed_kmh=float(payload["speed_kmh"]),
            acc_on=bool(payload["acc_on"]),
            body_lifted=bool(payload["body_lifted"]),
            cover_closed=bool(payload["cover_closed"]),
            load=payload["load"],  # a Load already: the payload model validated it
            permits=permits,
            route_distance_m=route_distance,
            sites=context.sites_near(x, y, SITE_SEARCH_M),
            zones=context.zones_at(x, y) if context.zones else (),
        )
        if current is not None:
            fix.prev_ts_s = current.ts_s
            fix.prev_acc_on = current.acc_on
            fix.prev_load = current.load
            # metres in the current projection: consistent even if the context changed
            if current.projection is context.projection:
                px, py = current.x, current.y
            else:
                px, py = context.projection.to_xy(current.lat, current.lon)
            fix.step_m = math.hypot(x - px, y - py)
        memory.fix = fix
        memory.track.append((ts_s, lon, lat, fix.speed_kmh))
        self._last = (reading, fix)
        return fix

    def track(self, device_id: str) -> list[list[float]]:
        """The recent track as `[epoch_ms, lon, lat, speed_kmh]` rows (evidence)."""
        memory = self._memory.get(device_id)
        if memory is None:
            return []
        return [[round(t * 1000), lon, lat, v] for t, lon, lat, v in memory.track]

    def forget(self, device_id: str) -> None:
        """Drop a truck's memory."""
        self._memory.pop(device_id, None)


# (zone, UTC minute since the epoch) → (minute of the local day, local date). A batch's
# readings fall in a few minutes, and `astimezone` to a ZoneInfo costs ~0.5 µs a reading.
# Every zone's offset since 1972 is a whole number of minutes (Liberia's −0:44:30 was the
# last that was not), so a UTC minute is one local minute; readings older than
# HUB_MAX_AGE_S are refused at the door.
_LOCAL_MINUTES: dict[tuple[tzinfo, int], tuple[int, date]] = {}


def local_minute_and_date(ts: datetime, zone: tzinfo) -> tuple[int, date]:
    """Minute of the local day and the local date of an instant."""
    key = (zone, int(epoch_s(ts) // 60))
    found = _LOCAL_MINUTES.get(key)
    if found is None:
        local = ts.astimezone(zone)
        found = (local.hour * 60 + local.minute, local.date())
        if len(_LOCAL_MINUTES) > 100_000:
            _LOCAL_MINUTES.clear()
        _LOCAL_MINUTES[key] = found
    return found


def load_state(fix: TruckFix) -> str:
    """Load state from the status bits and the lift sensor: `unloading` while the body is up."""
    return "unloading" if fix.body_lifted else str(fix.load)
