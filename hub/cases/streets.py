"""The nearest street to a point, from the city's streets layer (GeoJSON LineStrings with a
`name`), so a case of a moving asset (a truck that dumped) names the road where it happened.

Pure: the layer's document comes from the store (`city_layers`, imported with
`python -m hub city-layers import`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hub.geometry import LocalProjection, PreparedPolyline, bbox_distance_m, projection_around

NEAREST_STREET_MAX_M = 200.0
"""Farther than this from every street, a case names none."""


@dataclass(frozen=True, slots=True)
class NearestStreet:
    """The street nearest a point and how far it is."""

    name: str
    distance_m: float
    street_id: str | None = None


def _lines(geometry: object) -> list[list[list[float]]]:
    if not isinstance(geometry, Mapping):
        return []
    coordinates = geometry.get("coordinates")
    if geometry.get("type") == "LineString" and isinstance(coordinates, list):
        return [coordinates]
    if geometry.get("type") == "MultiLineString" and isinstance(coordinates, list):
        return [c for c in coordinates if isinstance(c, list)]
    return []


class StreetIndex:
    """Named polylines in one local projection; `nearest` scans their bounding boxes first."""

    __slots__ = ("_max_m", "_streets", "projection")

    def __init__(
        self, streets: Sequence[tuple[str, str | None, list[list[float]]]], max_m: float
    ) -> None:
        points = [p for _, _, line in streets for p in line]
        self.projection: LocalProjection = projection_around(points)
        self._streets = [
            (name, street_id, PreparedPolyline.from_xy(self.projection.lonlat_to_xy(line)))
            for name, street_id, line in streets
            if line
        ]
        self._max_m = max_m

    @classmethod
    def from_geojson(
        cls, document: Mapping[str, object], max_m: float = NEAREST_STREET_MAX_M
    ) -> "StreetIndex":
        """The index of a FeatureCollection's named LineStrings (others are skipped)."""
        streets: list[tuple[str, str | None, list[list[float]]]] = []
        features = document.get("features")
        for feature in features if isinstance(features, list) else []:
            if not isinstance(feature, Mapping):
                continue
            props = feature.get("properties")
            name = props.get("name") if isinstance(props, Mapping) else None
            if not isinstance(name, str) or not name.strip():
                continue
            raw_id = props.get("id") if isinstance(props, Mapping) else None
            street_id = None if raw_id is None else str(raw_id)
            streets.extend(
                (name.strip(), street_id, line) for line in _lines(feature.get("geometry"))
            )
        return cls(streets, max_m)

    def __len__(self) -> int:
        return len(self._streets)

    def nearest(self, lat: float, lon: float) -> NearestStreet | None:
        """The nearest named street within the index's range, None when none is that close."""
        x, y = self.projection.to_xy(lat, lon)
        best: NearestStreet | None = None
        for name, street_id, line in self._streets:
            limit = self._max_m if best is None else best.distance_m
            if bbox_distance_m(line.bbox, x, y) > limit:
                continue
            distance = line.distance_one_m(x, y)
            if distance <= limit and (best is None or distance < best.distance_m):
                best = NearestStreet(name, round(distance, 1), street_id)
        return best
