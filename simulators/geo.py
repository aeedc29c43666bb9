"""Local planar geometry: metres around the city centre, polylines measured along their length."""

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

EARTH_RADIUS_M = 6_371_008.8

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class LocalProjection:
    """Equirectangular projection: WGS-84 degrees to metres east/north of a centre (~30 km)."""

    centre_lat: float
    centre_lon: float

    @property
    def _m_per_deg_lat(self) -> float:
        return math.radians(1.0) * EARTH_RADIUS_M

    @property
    def _m_per_deg_lon(self) -> float:
        return math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(self.centre_lat))

    def to_metres(self, lat: float, lon: float) -> Point:
        """Metres east and north of the centre."""
        return (
            (lon - self.centre_lon) * self._m_per_deg_lon,
            (lat - self.centre_lat) * self._m_per_deg_lat,
        )

    def to_lat_lon(self, x_m: float, y_m: float) -> tuple[float, float]:
        """Latitude and longitude of a point given in metres east and north of the centre."""
        return (
            self.centre_lat + y_m / self._m_per_deg_lat,
            self.centre_lon + x_m / self._m_per_deg_lon,
        )


def distance_m(a: Point, b: Point) -> float:
    """Straight-line distance between two planar points."""
    return math.hypot(b[0] - a[0], b[1] - a[1])


def heading_deg(a: Point, b: Point) -> float:
    """Compass heading from a to b: 0 north, 90 east, in [0, 360)."""
    return math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360.0


def segment_distance_m(p: Point, a: Point, b: Point) -> float:
    """Distance from p to the segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length_sq = dx * dx + dy * dy
    if length_sq == 0.0:
        return distance_m(p, a)
    t = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length_sq))
    return math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy))


@dataclass(frozen=True, slots=True)
class Polyline:
    """A path in metres with cumulative lengths, so positions can be found by distance along it."""

    points: tuple[Point, ...]
    cumulative_m: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError("a polyline needs at least two points")
        total = 0.0
        cumulative = [0.0]
        for a, b in zip(self.points, self.points[1:], strict=False):
            total += distance_m(a, b)
            cumulative.append(total)
        object.__setattr__(self, "cumulative_m", tuple(cumulative))

    @property
    def length_m(self) -> float:
        """Total length."""
        return self.cumulative_m[-1]

    def point_at(self, along_m: float) -> tuple[float, float, float]:
        """Position (x, y) and heading at a distance along the path, clamped to its ends."""
        along_m = max(0.0, min(self.length_m, along_m))
        index = min(bisect_right(self.cumulative_m, along_m) - 1, len(self.points) - 2)
        a, b = self.points[index], self.points[index + 1]
        seg = self.cumulative_m[index + 1] - self.cumulative_m[index]
        t = 0.0 if seg == 0.0 else (along_m - self.cumulative_m[index]) / seg
        return a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), heading_deg(a, b)

    def distance_to(self, p: Point) -> float:
        """Shortest distance from p to the path."""
        return min(
            segment_distance_m(p, a, b) for a, b in zip(self.points, self.points[1:], strict=False)
        )

    def reversed(self) -> "Polyline":
        """The same path travelled the other way."""
        return Polyline(tuple(reversed(self.points)))

    def sub_path(self, from_m: float, to_m: float) -> "Polyline":
        """The part between two distances along the path, travelled from the first to the second."""
        lo, hi = sorted((max(0.0, from_m), min(self.length_m, to_m)))
        start = self.point_at(lo)[:2]
        end = self.point_at(hi)[:2]
        inner = [pt for pt, c in zip(self.points, self.cumulative_m, strict=True) if lo < c < hi]
        pts: list[Point] = [start, *inner, end]
        if len(pts) == 2 and pts[0] == pts[1]:
            pts[1] = (pts[1][0] + 0.01, pts[1][1])
        path = Polyline(tuple(pts))
        return path if from_m <= to_m else path.reversed()

    def vertex_distances_m(self) -> tuple[float, ...]:
        """Distances along the path of the inner vertices (the junctions it passes)."""
        return self.cumulative_m[1:-1]


def polygon_contains(ring: Sequence[Point], p: Point) -> bool:
    """Ray-casting point-in-polygon test for a closed or open ring."""
    inside = False
    n = len(ring)
    x, y = p
    for i in range(n):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside
