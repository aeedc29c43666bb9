"""Unit grids read from GeoJSON."""

import csv
from pathlib import Path

import orjson
import pytest

from hub.cases.grid import GridError
from hub.cases.grid_file import parse_grid_geojson
from simulators.city import CitySpec
from simulators.generator import generate_city, write_city

SQUARE = [[118.0, 32.0], [118.1, 32.0], [118.1, 32.1], [118.0, 32.1], [118.0, 32.0]]


def feature(code: object, geometry: dict[str, object]) -> dict[str, object]:
    return {"type": "Feature", "properties": {"grid_code": code}, "geometry": geometry}


def collection(*features: dict[str, object]) -> bytes:
    return orjson.dumps({"type": "FeatureCollection", "features": list(features)})


def test_polygons_and_single_part_multipolygons() -> None:
    east = [[[x + 0.1, y] for x, y in SQUARE]]
    index = parse_grid_geojson(
        collection(
            feature("320102001002001", {"type": "Polygon", "coordinates": [SQUARE]}),
            feature("320102001002002", {"type": "MultiPolygon", "coordinates": [east]}),
        )
    )
    assert len(index) == 2
    assert index.locate(lat=32.05, lon=118.05) == "320102001002001"
    assert index.locate(lat=32.05, lon=118.15) == "320102001002002"
    assert index.locate(lat=31.0, lon=118.05) is None


@pytest.mark.parametrize(
    "text",
    [
        b"not json",
        b'{"type": "Feature"}',
        collection(feature(320102001002001, {"type": "Polygon", "coordinates": [SQUARE]})),
        collection(feature("320102001002001", {"type": "Point", "coordinates": [118, 32]})),
        collection(feature("320102001002001", {"type": "Polygon", "coordinates": []})),
    ],
)
def test_bad_files_say_what_is_wrong(text: bytes) -> None:
    with pytest.raises(GridError):
        parse_grid_geojson(text)


def test_the_simulated_citys_grid_file_loads_as_the_hubs(tmp_path: Path) -> None:
    """HUB_GRID_FILE=city/grids.geojson: the simulator writes the one documented format."""
    city = generate_city(CitySpec(seed=3, lamps=300, trucks=5, manholes=80, spots=90))
    write_city(city, tmp_path)
    index = parse_grid_geojson((tmp_path / "grids.geojson").read_bytes())
    assert city.grid is not None
    assert len(index) == city.grid.columns * city.grid.rows
    with (tmp_path / "devices.csv").open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["lat"] and r["kind"] == "manhole"]
    assert rows
    located = [index.locate(lat=float(r["lat"]), lon=float(r["lon"])) for r in rows[:20]]
    assert located == [r["grid_code"] for r in rows[:20]]
