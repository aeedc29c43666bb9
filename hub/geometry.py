"""Planar geometry in numpy for the truck rules and views: a local metric projection, point to
polyline and point to polygon distances, point in polygon, track simplification.

Everything is pure and vectorised over many points. Coordinates come in as WGS-84 degrees
and are projected to metres east/north of a centre with an equirectangular projection,
which is accurate to about 0.1 % within 30 km of the centre (a city), far below GPS error.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS-84 points (the reference for tests)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


_M_PER_DEG_LAT = math.radians(1.0) * EARTH_RADIUS_M


@dataclass(frozen=True, slots=True)
class LocalProjection:
    """Equirectangular projection: degrees to metres east (x) and north (y) of a centre."""

    centre_lat: float
    centre_lon: float
    # Derived once: `to_xy` runs for every truck position.
    m_per_deg_lon: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scale = _M_PER_DEG_LAT * math.cos(math.radians(self.centre_lat))
        object.__setattr__(self, "m_per_deg_lon", scale)

    @property
    def m_per_deg_lat(self) -> float:
        """Metres per degree of latitude."""
        return _M_PER_DEG_LAT

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        """One point in metres (scalar fast path for per-reading rules)."""
        return (
            (lon - self.centre_lon) * self.m_per_deg_lon,
            (lat - self.centre_lat) * _M_PER_DEG_LAT,
        )

    def to_xy_array(self, lat: npt.ArrayLike, lon: npt.ArrayLike) -> FloatArray:
        """Points in metres as an (N, 2) array."""
        lat_a = np.asarray(lat, dtype=np.float64)
        lon_a = np.asarray(lon, dtype=np.float64)
        x = (lon_a - self.centre_lon) * self.m_per_deg_lon
        y = (lat_a - self.centre_lat) * self.m_per_deg_lat
        return np.stack([x, y], axis=-1).reshape(-1, 2)

    def lonlat_to_xy(self, coordinates: npt.ArrayLike) -> FloatArray:
        """GeoJSON `[lon, lat]` pairs as an (N, 2) array of metres."""
        pairs = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
        return self.to_xy_array(pairs[:, 1], pairs[:, 0])


def projection_around(coordinates: npt.ArrayLike) -> LocalProjection:
    """A projection centred on the bounding box of `[lon, lat]` pairs (city centre by default)."""
    pairs = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
    if len(pairs) == 0:
        return LocalProjection(31.30, 120.62)
    lo, hi = pairs.min(axis=0), pairs.max(axis=0)
    return LocalProjection(float((lo[1] + hi[1]) / 2), float((lo[0] + hi[0]) / 2))


@dataclass(frozen=True, slots=True)
class PreparedPolyline:
    """A polyline's segments as arrays, ready for distance queries."""

    start: FloatArray  # (M, 2)
    delta: FloatArray  # (M, 2)
    length_sq: FloatArray  # (M,)
    bbox: tuple[float, float, float, float]

    @classmethod
    def from_xy(cls, points_xy: npt.ArrayLike) -> "PreparedPolyline":
        """Prepare from an (N ≥ 1, 2) array of vertices in metres."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            raise ValueError("a polyline needs at least one vertex")
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        start = pts[:-1]
        delta = pts[1:] - pts[:-1]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        return cls(
            start=np.ascontiguousarray(start),
            delta=np.ascontiguousarray(delta),
            length_sq=np.einsum("ij,ij->i", delta, delta),
            bbox=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
        )

    def distance_m(self, points_xy: npt.ArrayLike) -> FloatArray:
        """Distance from each of (N, 2) points to the nearest segment, shape (N,)."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        rel = pts[:, None, :] - self.start[None, :, :]  # (N, M, 2)
        dot = np.einsum("nmk,mk->nm", rel, self.delta)
        safe = np.where(self.length_sq > 0, self.length_sq, 1.0)
        t = np.clip(dot / safe, 0.0, 1.0)
        t = np.where(self.length_sq > 0, t, 0.0)
        closest = rel - t[:, :, None] * self.delta[None, :, :]
        dist_sq = np.einsum("nmk,nmk->nm", closest, closest)
        distances: FloatArray = np.sqrt(dist_sq.min(axis=1))
        return distances

    def distance_one_m(self, x: float, y: float) -> float:
        """Distance of one point (the per-reading fast path)."""
        return float(self.distance_m(np.array([[x, y]]))[0])


def polyline_distance_m(points_xy: npt.ArrayLike, line_xy: npt.ArrayLike) -> FloatArray:
    """Distance from each point to a polyline, both in metres."""
    return PreparedPolyline.from_xy(line_xy).distance_m(points_xy)


@dataclass(frozen=True, slots=True)
class PreparedPolygon:
    """A polygon's outer ring (closed or not) as arrays, for containment and distance."""

    ring: FloatArray  # (M, 2), not repeating the first vertex
    edges: PreparedPolyline
    bbox: tuple[float, float, float, float]

    @classmethod
    def from_xy(cls, ring_xy: npt.ArrayLike) -> "PreparedPolygon":
        """Prepare from an (N ≥ 3, 2) ring in metres."""
        ring = np.asarray(ring_xy, dtype=np.float64).reshape(-1, 2)
        if len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
            ring = ring[:-1]
        if len(ring) < 3:
            raise ValueError("a polygon needs at least three distinct vertices")
        closed = np.vstack([ring, ring[:1]])
        edges = PreparedPolyline.from_xy(closed)
        return cls(ring=ring, edges=edges, bbox=edges.bbox)

    def contains(self, points_xy: npt.ArrayLike) -> BoolArray:
        """Whether each point is inside (even-odd ray casting), shape (N,)."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        x, y = pts[:, 0:1], pts[:, 1:2]
        xi, yi = self.ring[:, 0], self.ring[:, 1]
        xj, yj = np.roll(xi, 1), np.roll(yi, 1)
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = (xj - xi) * (y - yi) / (yj - yi) + xi
        inside: BoolArray = (np.count_nonzero(crosses & (x < x_cross), axis=1) % 2) == 1
        return inside

    def distance_m(self, points_xy: npt.ArrayLike) -> FloatArray:
        """0 inside, else the distance to the boundary, shape (N,)."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        return np.where(self.contains(pts), 0.0, self.edges.distance_m(pts))

    def distance_one_m(self, x: float, y: float) -> float:
        """Distance of one point (0 inside)."""
        return float(self.distance_m(np.array([[x, y]]))[0])


def point_in_polygon(points_xy: npt.ArrayLike, ring_xy: npt.ArrayLike) -> BoolArray:
    """Whether each point lies inside the ring."""
    return PreparedPolygon.from_xy(ring_xy).contains(points_xy)


def polygon_distance_m(points_xy: npt.ArrayLike, ring_xy: npt.ArrayLike) -> FloatArray:
    """Distance from each point to the polygon (0 inside)."""
    return PreparedPolygon.from_xy(ring_xy).distance_m(points_xy)


def bbox_distance_m(bbox: tuple[float, float, float, float], x: float, y: float) -> float:
    """A lower bound of the distance from a point to anything inside a bounding box."""
    dx = max(bbox[0] - x, 0.0, x - bbox[2])
    dy = max(bbox[1] - y, 0.0, y - bbox[3])
    return math.hypot(dx, dy)


def douglas_peucker_tolerances(
    points_xy: npt.NDArray[np.float64], tolerance_m: float
) -> npt.NDArray[np.float64]:
    """Each vertex's kept-below tolerance under Douglas-Peucker from `tolerance_m` up.

    The splits of the recursive algorithm, found one level of the recursion at a time over
    every open segment at once: a few dozen numpy passes instead of a few per kept vertex
    (a 3,000-fix track: 2 ms instead of 28 ms). A vertex split off a segment whose
    farthest vertex is `d` away, under ancestors split at distances `d1, d2, ...`, is kept
    at any tolerance below `min(d, d1, d2, ...)`, so `simplify_indices(xy, t)` for every
    `t >= tolerance_m` is `flatnonzero(result > t)`. The end points are `inf`; vertices
    dropped at `tolerance_m` already are `-inf`.
    """
    n = len(points_xy)
    kept_below = np.full(n, -np.inf)
    if n == 0:
        return kept_below
    kept_below[0] = kept_below[-1] = np.inf
    xs = np.ascontiguousarray(points_xy[:, 0])
    ys = np.ascontiguousarray(points_xy[:, 1])
    first = np.zeros(1, dtype=np.intp)
    last = np.full(1, n - 1, dtype=np.intp)
    bound = np.full(1, np.inf)
    while True:
        inner = last - first - 1
        wide = inner > 0
        first, last, bound, inner = first[wide], last[wide], bound[wide], inner[wide]
        if len(first) == 0:
            return kept_below
        # every inner vertex of every open segment (`index`), and its segment's number
        starts = np.zeros(len(first), dtype=np.intp)
        np.cumsum(inner[:-1], out=starts[1:])
        segment = np.repeat(np.arange(len(first)), inner)
        position = np.arange(len(segment))
        index = position + np.repeat(first + 1 - starts, inner)
        origin_x, origin_y = xs[first], ys[first]
        chord_x, chord_y = xs[last] - origin_x, ys[last] - origin_y
        length_sq = (chord_x * chord_x + chord_y * chord_y)[segment]
        chord_x, chord_y = chord_x[segment], chord_y[segment]
        rel_x, rel_y = xs[index] - origin_x[segment], ys[index] - origin_y[segment]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (rel_x * chord_x + rel_y * chord_y) / length_sq
        t[length_sq == 0.0] = 0.0  # a closed segment: the distance to its end point
        np.clip(t, 0.0, 1.0, out=t)
        dist = np.hypot(rel_x - t * chord_x, rel_y - t * chord_y)
        # each segment's farthest vertex, the first one on a tie (as np.argmax)
        worst = np.maximum.reduceat(dist, starts)
        farthest = np.minimum.reduceat(
            np.where(dist == worst[segment], position, len(position)), starts
        )
        split = worst > tolerance_m
        chosen = index[farthest[split]]
        chosen_below = np.minimum(bound[split], worst[split])
        kept_below[chosen] = chosen_below
        first = np.concatenate([first[split], chosen])
        last = np.concatenate([chosen, last[split]])
        bound = np.concatenate([chosen_below, chosen_below])


def simplify_indices(points_xy: npt.ArrayLike, tolerance_m: float) -> list[int]:
    """Indices of the vertices Douglas-Peucker keeps at `tolerance_m` (first and last always)."""
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    kept_below = douglas_peucker_tolerances(pts, tolerance_m)
    return [int(i) for i in np.flatnonzero(kept_below > tolerance_m)]


class GridIndex:
    """Items' bounding boxes bucketed by square cells: the candidates near a point without a
    scan of every item (sites and zones per truck fix). Exact tests stay with the caller.

    Each item is also listed in the ring of cells around its own (`_near`), so a search
    within one cell's width, the sites near every truck fix, is one dict look-up instead
    of a walk over nine cells and a sort: 8.7 against 1.3 µs per fix under cProfile on
    bench_ingest's trucks (issue 23). The ring may hold an item a little farther than
    asked; a candidate is a superset by contract.
    """

    __slots__ = ("_cells", "_near", "_wide", "cell_m")

    MAX_CELLS_PER_ITEM = 4096  # a bigger box goes on the always-checked list

    def __init__(
        self, bboxes: Sequence[tuple[float, float, float, float]], cell_m: float = 1_000.0
    ) -> None:
        if cell_m <= 0:
            raise ValueError("cell_m must be positive")
        self.cell_m = cell_m
        self._cells: dict[tuple[int, int], list[int]] = {}
        self._near: dict[tuple[int, int], list[int]] = {}
        self._wide: list[int] = []
        for index, (x0, y0, x1, y1) in enumerate(bboxes):
            cx0, cy0 = self._cell(x0, y0)
            cx1, cy1 = self._cell(x1, y1)
            if (cx1 - cx0 + 1) * (cy1 - cy0 + 1) > self.MAX_CELLS_PER_ITEM:
                self._wide.append(index)
                continue
            for cx in range(cx0, cx1 + 1):
                for cy in range(cy0, cy1 + 1):
                    self._cells.setdefault((cx, cy), []).append(index)
            for cx in range(cx0 - 1, cx1 + 2):
                for cy in range(cy0 - 1, cy1 + 2):
                    self._near.setdefault((cx, cy), []).append(index)

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        return math.floor(x / self.cell_m), math.floor(y / self.cell_m)

    def candidates(self, x: float, y: float, within_m: float = 0.0) -> list[int]:
        """Indices (ascending, unique) of every item whose box may lie within `within_m`."""
        if within_m <= self.cell_m:
            # The point's own cell, or (within a cell's width) the ring around it.
            table = self._near if within_m > 0 else self._cells
            found = table.get(self._cell(x, y), ())
            return sorted(set(self._wide).union(found)) if self._wide else list(found)
        cx0, cy0 = self._cell(x - within_m, y - within_m)
        cx1, cy1 = self._cell(x + within_m, y + within_m)
        cells = self._cells
        found_set: set[int] = set(self._wide)
        for cx in range(cx0, cx1 + 1):
            for cy in range(cy0, cy1 + 1):
                found_set.update(cells.get((cx, cy), ()))
        return sorted(found_set)
