"""Unit grids from GeoJSON: Polygon features with a 15-digit `grid_code` property."""

from typing import Any

import orjson

from hub.cases.grid import GridError, Ring, UnitGridIndex


def parse_grid_geojson(text: str | bytes) -> UnitGridIndex:
    """Build a grid index from a FeatureCollection; each polygon's outer ring counts."""
    try:
        doc: Any = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise GridError(f"grid file is not JSON: {err}") from err
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise GridError("grid file must be a GeoJSON FeatureCollection")
    grids: list[tuple[str, Ring]] = []
    for number, feature in enumerate(doc.get("features") or [], start=1):
        properties = feature.get("properties") or {}
        code = properties.get("grid_code")
        geometry = feature.get("geometry") or {}
        if not isinstance(code, str):
            raise GridError(f"feature {number}: properties.grid_code must be a string")
        coordinates = geometry.get("coordinates") or []
        if geometry.get("type") == "MultiPolygon" and len(coordinates) == 1:
            coordinates = coordinates[0]
        elif geometry.get("type") != "Polygon":
            raise GridError(f"feature {number} ({code}): geometry must be one Polygon")
        if not coordinates:
            raise GridError(f"feature {number} ({code}): empty polygon")
        grids.append((code, [(float(p[0]), float(p[1])) for p in coordinates[0]]))
    return UnitGridIndex(grids)
