"""City generation: determinism, registry format, codes, and reading the files back."""

import csv
from dataclasses import replace
from pathlib import Path

from simulators.catalogue import COVER_OWNERS
from simulators.city import ATTRIBUTE_COLUMNS, REGISTRY_COLUMNS, CitySpec, load_city
from simulators.generator import generate_city, write_city

SPEC = CitySpec(seed=3, lamps=300, trucks=5, manholes=80, spots=90, lamps_per_cabinet=50)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    write_city(generate_city(SPEC), tmp_path / "a")
    write_city(generate_city(SPEC), tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert set(a) >= {"devices.csv", "city.json", "permits.json", "sites.geojson", "grids.geojson"}
    assert a == b


def test_other_seed_gives_another_city(tmp_path: Path) -> None:
    write_city(generate_city(SPEC), tmp_path / "a")
    write_city(generate_city(replace(SPEC, seed=4)), tmp_path / "b")
    assert (tmp_path / "a" / "devices.csv").read_bytes() != (
        tmp_path / "b" / "devices.csv"
    ).read_bytes()


def test_registry_csv_follows_the_import_format(tmp_path: Path) -> None:
    city = generate_city(SPEC)
    write_city(city, tmp_path)
    with (tmp_path / "devices.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == REGISTRY_COLUMNS + ATTRIBUTE_COLUMNS
        rows = list(reader)
    assert len(rows) == city.device_count()
    assert len({r["device_id"] for r in rows}) == len(rows)
    cover_codes = {o.class_code for o in COVER_OWNERS}
    for row in rows:
        assert row["kind"] in {"lighting", "cabinet", "truck", "manhole", "parking"}
        assert len(row["grid_code"]) == 15
        assert row["grid_code"].startswith("320506")
        assert abs(float(row["lat"]) - 31.30) < 0.3
        assert abs(float(row["lon"]) - 120.62) < 0.3
        assert row["department"]
        expected = {
            "lighting": {"01037"},
            "cabinet": {"01060"},
            "truck": {""},
            "manhole": cover_codes,
            "parking": {"02001", "02003"},
        }[row["kind"]]
        assert row["class_code"] in expected
    lamps = [r for r in rows if r["kind"] == "lighting"]
    assert all(int(r["rated_power_w"]) > 0 and r["cabinet_id"] == r["parent_id"] for r in lamps)
    cabinets = {r["device_id"] for r in rows if r["kind"] == "cabinet"}
    assert {r["cabinet_id"] for r in lamps} == cabinets
    covers = [r for r in rows if r["kind"] == "manhole"]
    assert {r["road_class"] for r in covers} <= {"main", "secondary", "branch"}
    spots = [r for r in rows if r["kind"] == "parking"]
    assert all(bool(r["lot_id"]) != bool(r["zone_id"]) for r in spots)
    assert all(r["max_stay_min"] == "120" for r in spots if r["zone_id"])


def test_grid_codes_number_cells_left_to_right_top_to_bottom() -> None:
    grid = generate_city(SPEC).grid
    assert grid is not None
    assert grid.code_of_cell(0, 0) == "320506001001001"
    assert grid.code_of_cell(1, 0) == "320506001001002"
    assert grid.code_of_cell(0, 1) == "320506001001011"
    assert grid.code_of_cell(10, 0) == "320506001002001"


def test_written_city_loads_back(tmp_path: Path) -> None:
    city = generate_city(SPEC)
    write_city(city, tmp_path)
    loaded = load_city(tmp_path)
    assert loaded.device_count() == city.device_count()
    assert [p.permit_id for p in loaded.permits] == [p.permit_id for p in city.permits]
    assert len(loaded.sites) == len(city.sites)
    original = city.permits[0].route
    again = loaded.permits[0].route
    assert abs(original.length_m - again.length_m) < 1.0
    for permit in loaded.permits:
        assert set(permit.disposal_site_ids) < {s.area_id for s in loaded.sites}
    assert [c.circuit_ids for c in loaded.cabinets] == [c.circuit_ids for c in city.cabinets]


def test_hub_registry_parser_accepts_every_row(tmp_path: Path) -> None:
    from hub.devices.registry import parse_device_csv

    city = generate_city(SPEC)
    write_city(city, tmp_path)
    parsed = parse_device_csv((tmp_path / "devices.csv").read_text(encoding="utf-8"))
    assert parsed.problems == []
    assert len(parsed.records) == city.device_count()
