"""Unit-grid (单元网格) lookup: which grid polygon holds a WGS-84 point."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hub.cases.classification import parse_unit_grid_code

_MIN_RING_POINTS = 3

Ring = Sequence[tuple[float, float]]
"""A polygon ring as (lon, lat) pairs in WGS-84 degrees, closed or not."""


class GridError(ValueError):
    """A grid polygon is malformed."""


def _ring_contains(ring: npt.NDArray[np.float64], lon: float, lat: float) -> bool:
    """Even-odd ray casting; points exactly on an edge may fall either side."""
    x0, y0 = ring[:, 0], ring[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > lat) != (y1 > lat)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (lat - y0) * (x1 - x0) / (y1 - y0)
    crossings = np.count_nonzero(straddles & (lon < x_cross))
    return bool(crossings % 2 == 1)


class UnitGridIndex:
    """Grid polygons with bounding boxes; `locate` returns the first grid holding a point."""

    __slots__ = ("_bboxes", "_codes", "_rings")

    def __init__(self, grids: Sequence[tuple[str, Ring]]) -> None:
        codes: list[str] = []
        rings: list[npt.NDArray[np.float64]] = []
        for code, ring in grids:
            parse_unit_grid_code(code)
            if code in codes:
                raise GridError(f"unit grid {code} is given twice")
            points = np.asarray(ring, dtype=np.float64)
            if points.ndim != 2 or points.shape[1] != 2:
                raise GridError(f"unit grid {code}: ring must be (lon, lat) pairs")
            if len(points) > 1 and np.array_equal(points[0], points[-1]):
                points = points[:-1]
            if len(points) < _MIN_RING_POINTS:
                raise GridError(f"unit grid {code}: ring needs at least 3 distinct points")
            if not np.all(np.isfinite(points)):
                raise GridError(f"unit grid {code}: ring has a non-finite coordinate")
            codes.append(code)
            rings.append(points)
        self._codes = tuple(codes)
        self._rings = tuple(rings)
        self._bboxes: npt.NDArray[np.float64] = (
            np.array([[*r.min(axis=0), *r.max(axis=0)] for r in rings], dtype=np.float64)
            if rings
            else np.empty((0, 4), dtype=np.float64)
        )

    def __len__(self) -> int:
        return len(self._codes)

    def locate(self, *, lat: float, lon: float) -> str | None:
        """The 15-digit code of the grid holding (lat, lon), or None outside every grid."""
        b = self._bboxes
        candidates = np.flatnonzero(
            (b[:, 0] <= lon) & (lon <= b[:, 2]) & (b[:, 1] <= lat) & (lat <= b[:, 3])
        )
        for index in candidates:
            if _ring_contains(self._rings[index], lon, lat):
                return self._codes[index]
        return None
