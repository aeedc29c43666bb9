"""Trips, stops and site visits over a stored track, pure; the enforcement API runs them."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.devices.kinds import Load
from hub.rules.truck_context import TruckContext
from hub.rules.truck_params import SegmentParams

# -- trips, stops and site visits over a stored track (for the enforcement views) --


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One stored position."""

    ts: datetime
    lat: float
    lon: float
    speed_kmh: float
    acc_on: bool = True
    body_lifted: bool = False
    load: Load = Load.EMPTY


@dataclass(frozen=True, slots=True)
class Stop:
    """A stop: where, when, how long, at which site, and whether the truck unloaded there."""

    start: datetime
    end: datetime
    lat: float
    lon: float
    site_id: str | None
    unloaded: bool

    @property
    def duration_s(self) -> float:
        """Length of the stop."""
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Trip:
    """Movement between two stops."""

    start: datetime
    end: datetime
    distance_m: float
    max_speed_kmh: float
    fixes: int
    load: str


@dataclass(frozen=True, slots=True)
class SiteVisit:
    """A site entry and exit: within the radius, under the speed, for over the dwell."""

    site_id: str
    entered_at: datetime
    exited_at: datetime | None


def _load_of(points: Sequence[TrackPoint]) -> str:
    loads = {p.load for p in points}
    if Load.FULL in loads or Load.HALF in loads:
        return "loaded"
    return "empty"


def segment_track(
    points: Sequence[TrackPoint], context: TruckContext, params: SegmentParams | None = None
) -> tuple[list[Trip], list[Stop]]:
    """Split a time-ordered track into trips and stops."""
    params = params or SegmentParams()
    projection = context.projection
    xy = [projection.to_xy(p.lat, p.lon) for p in points]
    stops: list[Stop] = []
    trips: list[Trip] = []
    n = len(points)
    i = 0
    trip_start = 0
    while i < n:
        p = points[i]
        if p.speed_kmh < params.stop_speed_kmh or not p.acc_on:
            j = i
            while j + 1 < n:
                q = points[j + 1]
                slow = q.speed_kmh < params.stop_speed_kmh or not q.acc_on
                near = math.dist(xy[i], xy[j + 1]) <= params.stop_radius_m
                if not (slow and near):
                    break
                j += 1
            if (points[j].ts - p.ts).total_seconds() >= params.min_stop_s:
                if i > trip_start:
                    trips.append(_trip(points, xy, trip_start, i))
                sites = context.sites_near(xy[i][0], xy[i][1], params.site_radius_m)
                segment = points[i : j + 1]
                unloaded = any(s.body_lifted for s in segment) or (
                    _load_of(segment[:1]) == "loaded" and segment[-1].load is Load.EMPTY
                )
                stops.append(
                    Stop(
                        p.ts,
                        points[j].ts,
                        p.lat,
                        p.lon,
                        sites[0][1].site.site_id if sites else None,
                        unloaded,
                    )
                )
                trip_start = j
                i = j + 1
                continue
        i += 1
    if n - 1 > trip_start:
        trips.append(_trip(points, xy, trip_start, n - 1))
    return trips, stops


def _trip(points: Sequence[TrackPoint], xy: Sequence[tuple[float, float]], a: int, b: int) -> Trip:
    distance = sum(math.dist(xy[k], xy[k + 1]) for k in range(a, b))
    segment = points[a : b + 1]
    return Trip(
        points[a].ts,
        points[b].ts,
        round(distance, 1),
        max(p.speed_kmh for p in segment),
        len(segment),
        _load_of(segment),
    )


def site_visits(
    points: Sequence[TrackPoint], context: TruckContext, params: SegmentParams | None = None
) -> list[SiteVisit]:
    """Site entries and exits along a time-ordered track."""
    params = params or SegmentParams()
    visits: list[SiteVisit] = []
    candidate: tuple[str, datetime] | None = None
    inside: str | None = None
    for p in points:
        x, y = context.projection.to_xy(p.lat, p.lon)
        near = context.sites_near(x, y, params.site_radius_m)
        site_id = near[0][1].site.site_id if near else None
        if inside is not None:
            if site_id != inside:
                last = visits[-1]
                visits[-1] = SiteVisit(last.site_id, last.entered_at, p.ts)
                inside = None
            else:
                continue
        if site_id is None or p.speed_kmh >= params.site_speed_kmh:
            candidate = None
            continue
        if candidate is None or candidate[0] != site_id:
            candidate = (site_id, p.ts)
        if (p.ts - candidate[1]).total_seconds() >= params.site_min_dwell_s:
            visits.append(SiteVisit(site_id, candidate[1], None))
            inside, candidate = site_id, None
    return visits
