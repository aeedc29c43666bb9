"""Registry import files: every bad row reported with its line, good rows parsed with attributes."""

import json

from hub.devices.kinds import Kind
from hub.devices.registry import (
    format_device_csv,
    parse_device_csv,
    parse_device_file,
    parse_device_geojson,
)


def test_csv_with_core_and_kind_specific_columns() -> None:
    text = (
        "device_id,kind,lat,lon,grid_code,class_code,department,rated_power_w,lamp_type\n"
        "L-1,lighting,31.3,120.6,320506001001001,01037,市政照明管理处,150,LED\n"
        "P-1,parking,31.31,120.61,,,,,\n"
    )
    parsed = parse_device_csv(text)
    assert parsed.problems == []
    lamp, spot = parsed.records
    assert lamp.kind is Kind.LIGHTING
    assert lamp.class_code == "01037"
    assert lamp.department == "市政照明管理处"
    assert lamp.attributes == {"rated_power_w": 150, "lamp_type": "LED"}
    assert spot.grid_code is None
    assert spot.attributes == {}


def test_every_bad_row_is_reported_with_its_line_number() -> None:
    text = (
        "device_id,kind,lat,lon,grid_code\n"
        "L-1,lighting,31.3,120.6,\n"
        "L-2,lamp,31.3,120.6,\n"
        "L-3,lighting,91,120.6,\n"
        "L-4,lighting,31.3,120.6,12345\n"
        "L-1,lighting,31.3,120.6,\n"
        "bad id!,lighting,31.3,120.6,\n"
        "L-5,lighting,north,120.6,\n"
    )
    parsed = parse_device_csv(text)
    assert [r.device_id for r in parsed.records] == ["L-1"]
    lines = {p.line: p.reason for p in parsed.problems}
    assert set(lines) == {3, 4, 5, 6, 7, 8}
    assert "kind" in lines[3]
    assert "lat" in lines[4]
    assert "grid_code" in lines[5]
    assert "duplicate" in lines[6]
    assert "line 2" in lines[6]
    assert "device_id" in lines[7]
    assert "lat" in lines[8]
    assert str(parsed.problems[0]).startswith("line 3 (L-2): ")


def test_missing_required_header_is_one_problem() -> None:
    parsed = parse_device_csv("device_id,kind,lat\nL-1,lighting,31\n")
    assert parsed.records == []
    assert "lon" in parsed.problems[0].reason


def test_geojson_points_with_properties() -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [120.6, 31.3]},
                "properties": {"device_id": "M-1", "kind": "manhole", "cover_type": "sewage"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
                "properties": {"device_id": "M-2", "kind": "manhole"},
            },
        ],
    }
    parsed = parse_device_geojson(json.dumps(collection))
    assert [r.device_id for r in parsed.records] == ["M-1"]
    assert parsed.records[0].lat == 31.3
    assert parsed.records[0].attributes == {"cover_type": "sewage"}
    assert parsed.problems[0].line == 2
    assert "Point" in parsed.problems[0].reason


def test_file_kind_chosen_by_extension() -> None:
    assert parse_device_file("x.geojson", "{}").problems[0].reason.startswith("expected a GeoJSON")
    assert parse_device_file("x.csv", "a,b\n").problems[0].reason.startswith("header lacks")


def test_exported_csv_imports_back_unchanged() -> None:
    text = (
        "device_id,kind,lat,lon,name,class_code,rated_power_w,lamp_type,tags\n"
        'L-1,lighting,31.3,120.6,"人民路, 12 号",01037,150,LED,"[""a"", ""b""]"\n'
        "T-1,truck,31.31,120.61,,,,,\n"
    )
    first = parse_device_csv(text)
    assert first.problems == []
    again = parse_device_csv(format_device_csv(first.records))
    assert again.problems == []
    assert again.records == first.records
