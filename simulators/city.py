"""The synthetic city's model and files: devices.csv (registry import), GeoJSON, permits.json."""

import csv
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hub.devices.registry import CORE_COLUMNS
from simulators.catalogue import LAMP_MODELS, RoadClass
from simulators.geo import LocalProjection, Point, Polyline

GENERATOR_VERSION = 1
COORD_DECIMALS = 7

REGISTRY_COLUMNS: tuple[str, ...] = CORE_COLUMNS
ATTRIBUTE_COLUMNS: tuple[str, ...] = (
    "rated_power_w",
    "lamp_type",
    "cabinet_id",
    "circuit_id",
    "road_class",
    "circuits",
    "modbus_host",
    "modbus_port",
    "modbus_unit",
    "plate",
    "company",
    "permit_id",
    "cover_type",
    "baseline_tilt_deg",
    "lot_id",
    "zone_id",
    "max_stay_min",
)
DEVICES_FILE = "devices.csv"
CITY_FILE = "city.json"
PERMITS_FILE = "permits.json"
GEOJSON_FILES: tuple[str, ...] = (
    "streets.geojson",
    "districts.geojson",
    "grids.geojson",
    "sites.geojson",
    "permits.geojson",
    "lots.geojson",
    "zones.geojson",
)


@dataclass(frozen=True, slots=True)
class CitySpec:
    """What to generate: seed, sizes and where the city is."""

    seed: int = 1
    lamps: int = 2000
    trucks: int = 20
    manholes: int = 500
    spots: int = 600
    lamps_per_cabinet: int = 120
    lamps_per_circuit: int = 30
    centre_lat: float = 31.30
    centre_lon: float = 120.62
    timezone: str = "Asia/Shanghai"
    county_code: str = "320506"
    modbus_host: str = "127.0.0.1"
    modbus_base_port: int = 5020
    modbus_units_per_port: int = 200

    @classmethod
    def for_devices(cls, devices: int, **overrides: Any) -> "CitySpec":
        """Split a total device count over the kinds in proportions typical of a district."""
        base: dict[str, Any] = {
            "lamps": round(devices * 0.60),
            "trucks": max(1, round(devices * 0.004)),
            "manholes": round(devices * 0.196),
            "spots": round(devices * 0.195),
        }
        base.update(overrides)
        return cls(**base)


@dataclass(frozen=True, slots=True)
class Street:
    """A named street as a polyline."""

    street_id: str
    name: str
    road_class: RoadClass
    path: Polyline


@dataclass(frozen=True, slots=True)
class Lamp:
    """A street lamp with its single-lamp controller."""

    device_id: str
    position: Point
    name: str
    grid_code: str
    rated_power_w: int
    lamp_type: str
    cabinet_id: str
    circuit_id: str
    road_class: RoadClass

    @property
    def power_factor(self) -> float:
        """Power factor of the lamp's driver or ballast at full output."""
        led, hps = LAMP_MODELS[self.road_class]
        return led.power_factor if self.lamp_type == led.lamp_type else hps.power_factor


@dataclass(frozen=True, slots=True)
class Cabinet:
    """A lighting control cabinet feeding circuits of lamps; circuit k is on phase k mod 3."""

    device_id: str
    position: Point
    name: str
    grid_code: str
    circuit_ids: tuple[str, ...]
    modbus_host: str
    modbus_port: int
    modbus_unit: int


@dataclass(frozen=True, slots=True)
class Manhole:
    """A smart manhole cover."""

    device_id: str
    position: Point
    name: str
    grid_code: str
    class_code: str
    department: str
    cover_type: str
    baseline_tilt_deg: float
    road_class: RoadClass


@dataclass(frozen=True, slots=True)
class Spot:
    """A parking spot with a geomagnetic sensor, in a lot or an on-street zone."""

    device_id: str
    position: Point
    name: str
    grid_code: str
    lot_id: str | None
    zone_id: str | None
    max_stay_min: int | None


@dataclass(frozen=True, slots=True)
class Area:
    """A polygon with an id and properties: a site, lot, zone, district or community."""

    area_id: str
    name: str
    ring: tuple[Point, ...]
    properties: tuple[tuple[str, Any], ...] = ()

    @property
    def centre(self) -> Point:
        """Mean of the ring's vertices."""
        return (
            sum(p[0] for p in self.ring) / len(self.ring),
            sum(p[1] for p in self.ring) / len(self.ring),
        )

    def prop(self, name: str) -> Any:
        """A property by name, None when absent."""
        return dict(self.properties).get(name)


@dataclass(frozen=True, slots=True)
class Permit:
    """A muck transport permit: origin site, approved disposal sites, route, corridor and hours."""

    permit_id: str
    truck_id: str
    plate: str
    company: str
    origin_site_id: str
    disposal_site_ids: tuple[str, ...]
    route: Polyline
    corridor_m: float
    allowed_hours: str
    valid_from: str
    valid_to: str

    def allowed_minutes(self) -> tuple[int, int]:
        """Allowed local window as (start, end) minutes of the day; end < start wraps midnight."""
        start_text, end_text = self.allowed_hours.split("-")
        return _minutes(start_text), _minutes(end_text)

    def allows_local_minute(self, minute_of_day: int) -> bool:
        """Whether transport is allowed at this local minute of the day."""
        start, end = self.allowed_minutes()
        if start <= end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end


def _minutes(text: str) -> int:
    hours, minutes = text.strip().split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True, slots=True)
class Truck:
    """A muck truck with its GPS terminal; it parks at its permit's origin site."""

    device_id: str
    position: Point
    name: str
    grid_code: str
    plate: str
    company: str
    permit_id: str


@dataclass(frozen=True, slots=True)
class GridLayout:
    """Unit grids: cells numbered left to right, top to bottom, in communities in districts."""

    county_code: str
    x_min_m: float
    y_max_m: float
    columns: int
    rows: int
    cell_m: float = 100.0
    community_cells: int = 10
    district_communities: int = 4

    def cell_of(self, p: Point) -> tuple[int, int]:
        """(column, row) of the cell holding p, clamped to the layout."""
        col = math.floor((p[0] - self.x_min_m) / self.cell_m)
        row = math.floor((self.y_max_m - p[1]) / self.cell_m)
        return min(max(col, 0), self.columns - 1), min(max(row, 0), self.rows - 1)

    def district_columns(self) -> int:
        """Districts per row of the layout."""
        span = self.community_cells * self.district_communities
        return -(-self.columns // span)

    def codes_of_cell(self, col: int, row: int) -> tuple[int, int, int]:
        """(district, community, grid) sequence numbers of a cell, each from 1."""
        cc, dc = self.community_cells, self.district_communities
        span = cc * dc
        district = (row // span) * self.district_columns() + (col // span) + 1
        community = ((row // cc) % dc) * dc + ((col // cc) % dc) + 1
        grid = (row % cc) * cc + (col % cc) + 1
        return district, community, grid

    def code_of_cell(self, col: int, row: int) -> str:
        """15-digit unit grid code of a cell."""
        d, c, g = self.codes_of_cell(col, row)
        return f"{self.county_code}{d:03d}{c:03d}{g:03d}"

    def code_at(self, p: Point) -> str:
        """15-digit unit grid code of the cell holding p."""
        return self.code_of_cell(*self.cell_of(p))

    def cell_ring(self, col: int, row: int) -> tuple[Point, ...]:
        """The cell's square, counter-clockwise from its south-west corner."""
        x0 = self.x_min_m + col * self.cell_m
        y1 = self.y_max_m - row * self.cell_m
        x1, y0 = x0 + self.cell_m, y1 - self.cell_m
        return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


@dataclass(slots=True)
class City:
    """Everything generated for one city; files are written from and read back into this."""

    spec: CitySpec
    projection: LocalProjection
    lamps: list[Lamp] = field(default_factory=list)
    cabinets: list[Cabinet] = field(default_factory=list)
    trucks: list[Truck] = field(default_factory=list)
    manholes: list[Manhole] = field(default_factory=list)
    spots: list[Spot] = field(default_factory=list)
    permits: list[Permit] = field(default_factory=list)
    sites: list[Area] = field(default_factory=list)
    lots: list[Area] = field(default_factory=list)
    zones: list[Area] = field(default_factory=list)
    streets: list[Street] = field(default_factory=list)
    districts: list[Area] = field(default_factory=list)
    grid: GridLayout | None = None

    def device_count(self) -> int:
        """Number of devices of all kinds."""
        return (
            len(self.lamps)
            + len(self.cabinets)
            + len(self.trucks)
            + len(self.manholes)
            + len(self.spots)
        )

    def permit_by_id(self) -> dict[str, Permit]:
        """Permits keyed by id."""
        return {p.permit_id: p for p in self.permits}

    def site_by_id(self) -> dict[str, Area]:
        """Sites keyed by id."""
        return {s.area_id: s for s in self.sites}


# --- writing ---------------------------------------------------------------------------------


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = repr(round(value, COORD_DECIMALS))
    return text[:-2] if text.endswith(".0") else text


def _lat_lon(city: City, p: Point) -> tuple[float, float]:
    lat, lon = city.projection.to_lat_lon(*p)
    return round(lat, COORD_DECIMALS), round(lon, COORD_DECIMALS)


def registry_rows(city: City) -> Iterator[dict[str, str]]:
    """One registry import row per device, in a stable order."""
    for lamp in city.lamps:
        yield _row(
            city,
            lamp.device_id,
            "lighting",
            lamp.position,
            lamp.name,
            lamp.grid_code,
            "01037",
            "市政照明管理处",
            lamp.cabinet_id,
            rated_power_w=str(lamp.rated_power_w),
            lamp_type=lamp.lamp_type,
            cabinet_id=lamp.cabinet_id,
            circuit_id=lamp.circuit_id,
            road_class=lamp.road_class.value,
        )
    for cab in city.cabinets:
        yield _row(
            city,
            cab.device_id,
            "cabinet",
            cab.position,
            cab.name,
            cab.grid_code,
            "01060",
            "市政照明管理处",
            "",
            circuits=str(len(cab.circuit_ids)),
            modbus_host=cab.modbus_host,
            modbus_port=str(cab.modbus_port),
            modbus_unit=str(cab.modbus_unit),
        )
    for truck in city.trucks:
        yield _row(
            city,
            truck.device_id,
            "truck",
            truck.position,
            truck.name,
            truck.grid_code,
            "",
            "渣土管理办公室",
            "",
            plate=truck.plate,
            company=truck.company,
            permit_id=truck.permit_id,
        )
    for mh in city.manholes:
        yield _row(
            city,
            mh.device_id,
            "manhole",
            mh.position,
            mh.name,
            mh.grid_code,
            mh.class_code,
            mh.department,
            "",
            cover_type=mh.cover_type,
            baseline_tilt_deg=_num(mh.baseline_tilt_deg),
            road_class=mh.road_class.value,
        )
    for spot in city.spots:
        yield _row(
            city,
            spot.device_id,
            "parking",
            spot.position,
            spot.name,
            spot.grid_code,
            "02001" if spot.lot_id else "02003",
            "停车管理公司",
            "",
            lot_id=spot.lot_id or "",
            zone_id=spot.zone_id or "",
            max_stay_min=_num(spot.max_stay_min),
        )


def _row(
    city: City,
    device_id: str,
    kind: str,
    position: Point,
    name: str,
    grid_code: str,
    class_code: str,
    department: str,
    parent_id: str,
    **attributes: str,
) -> dict[str, str]:
    lat, lon = _lat_lon(city, position)
    row = {
        "device_id": device_id,
        "kind": kind,
        "lat": _num(lat),
        "lon": _num(lon),
        "name": name,
        "grid_code": grid_code,
        "class_code": class_code,
        "department": department,
        "parent_id": parent_id,
    }
    row.update({column: attributes.get(column, "") for column in ATTRIBUTE_COLUMNS})
    return row


def write_registry_csv(city: City, path: Path) -> int:
    """Write devices.csv for `python -m hub devices import`; return the number of rows."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=[*REGISTRY_COLUMNS, *ATTRIBUTE_COLUMNS], lineterminator="\n"
        )
        writer.writeheader()
        for row in registry_rows(city):
            writer.writerow(row)
            count += 1
    return count


def _ring_coordinates(city: City, ring: Sequence[Point]) -> list[list[float]]:
    coords = [list(reversed(_lat_lon(city, p))) for p in ring]
    if coords[0] != coords[-1]:
        coords.append(coords[0])
    return coords


def _line_coordinates(city: City, path: Polyline) -> list[list[float]]:
    return [list(reversed(_lat_lon(city, p))) for p in path.points]


def _feature(geometry: dict[str, Any], properties: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"type": "Feature", "properties": properties, "geometry": geometry},
        option=orjson.OPT_SORT_KEYS,
    )


def polygon_feature(city: City, area: Area, **extra: Any) -> bytes:
    """A GeoJSON Polygon feature of an area, its id and name first among the properties."""
    properties = {"id": area.area_id, "name": area.name, **dict(area.properties), **extra}
    geometry = {"type": "Polygon", "coordinates": [_ring_coordinates(city, area.ring)]}
    return _feature(geometry, properties)


def write_feature_collection(path: Path, features: Iterable[bytes]) -> int:
    """Write a FeatureCollection, one feature per line, deterministic bytes; return the count."""
    count = 0
    with path.open("wb") as handle:
        handle.write(b'{"type":"FeatureCollection","features":[\n')
        for feature in features:
            if count:
                handle.write(b",\n")
            handle.write(feature)
            count += 1
        handle.write(b"\n]}\n")
    return count


def permit_record(city: City, permit: Permit) -> dict[str, Any]:
    """A permit as stored in permits.json (route as [lon, lat] pairs)."""
    return {
        "permit_id": permit.permit_id,
        "truck_id": permit.truck_id,
        "plate": permit.plate,
        "company": permit.company,
        "origin_site_id": permit.origin_site_id,
        "disposal_site_ids": list(permit.disposal_site_ids),
        "route": _line_coordinates(city, permit.route),
        "corridor_m": permit.corridor_m,
        "allowed_hours": permit.allowed_hours,
        "valid_from": permit.valid_from,
        "valid_to": permit.valid_to,
    }


def city_metadata(city: City, counts: dict[str, int]) -> dict[str, Any]:
    """The content of city.json: how the city was made and where it is."""
    spec = city.spec
    meta: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "seed": spec.seed,
        "centre": {"lat": spec.centre_lat, "lon": spec.centre_lon},
        "timezone": spec.timezone,
        "county_code": spec.county_code,
        "sizes": {
            "lamps": spec.lamps,
            "trucks": spec.trucks,
            "manholes": spec.manholes,
            "spots": spec.spots,
            "lamps_per_cabinet": spec.lamps_per_cabinet,
            "lamps_per_circuit": spec.lamps_per_circuit,
        },
        "modbus": {
            "host": spec.modbus_host,
            "base_port": spec.modbus_base_port,
            "units_per_port": spec.modbus_units_per_port,
        },
        "counts": counts,
    }
    if city.grid is not None:
        g = city.grid
        meta["grid"] = {
            "cell_m": g.cell_m,
            "columns": g.columns,
            "rows": g.rows,
            "community_cells": g.community_cells,
            "district_communities": g.district_communities,
        }
    return meta


# --- reading ---------------------------------------------------------------------------------


def _opt(row: dict[str, str], name: str) -> str | None:
    value = row.get(name, "")
    return value if value else None


def load_city(directory: Path) -> City:
    """Read a city written by `python -m simulators city` back into the model the simulators run."""
    meta_path = directory / CITY_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} not found; generate a city with `simulators city`")
    meta = orjson.loads(meta_path.read_bytes())
    sizes = meta["sizes"]
    spec = CitySpec(
        seed=int(meta["seed"]),
        lamps=int(sizes["lamps"]),
        trucks=int(sizes["trucks"]),
        manholes=int(sizes["manholes"]),
        spots=int(sizes["spots"]),
        lamps_per_cabinet=int(sizes["lamps_per_cabinet"]),
        lamps_per_circuit=int(sizes["lamps_per_circuit"]),
        centre_lat=float(meta["centre"]["lat"]),
        centre_lon=float(meta["centre"]["lon"]),
        timezone=str(meta["timezone"]),
        county_code=str(meta["county_code"]),
    )
    projection = LocalProjection(spec.centre_lat, spec.centre_lon)
    city = City(spec=spec, projection=projection)
    circuits_by_cabinet: dict[str, list[str]] = {}
    cabinet_rows: list[dict[str, str]] = []
    with (directory / DEVICES_FILE).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            pos = projection.to_metres(float(row["lat"]), float(row["lon"]))
            kind, device_id = row["kind"], row["device_id"]
            if kind == "lighting":
                lamp = Lamp(
                    device_id=device_id,
                    position=pos,
                    name=row["name"],
                    grid_code=row["grid_code"],
                    rated_power_w=int(row["rated_power_w"]),
                    lamp_type=row["lamp_type"],
                    cabinet_id=row["cabinet_id"],
                    circuit_id=row["circuit_id"],
                    road_class=RoadClass(row["road_class"]),
                )
                city.lamps.append(lamp)
                circuits = circuits_by_cabinet.setdefault(lamp.cabinet_id, [])
                if lamp.circuit_id not in circuits:
                    circuits.append(lamp.circuit_id)
            elif kind == "cabinet":
                cabinet_rows.append(row)
            elif kind == "truck":
                city.trucks.append(
                    Truck(
                        device_id=device_id,
                        position=pos,
                        name=row["name"],
                        grid_code=row["grid_code"],
                        plate=row["plate"],
                        company=row["company"],
                        permit_id=row["permit_id"],
                    )
                )
            elif kind == "manhole":
                city.manholes.append(
                    Manhole(
                        device_id=device_id,
                        position=pos,
                        name=row["name"],
                        grid_code=row["grid_code"],
                        class_code=row["class_code"],
                        department=row["department"],
                        cover_type=row["cover_type"],
                        baseline_tilt_deg=float(row["baseline_tilt_deg"]),
                        road_class=RoadClass(row["road_class"]),
                    )
                )
            elif kind == "parking":
                stay = _opt(row, "max_stay_min")
                city.spots.append(
                    Spot(
                        device_id=device_id,
                        position=pos,
                        name=row["name"],
                        grid_code=row["grid_code"],
                        lot_id=_opt(row, "lot_id"),
                        zone_id=_opt(row, "zone_id"),
                        max_stay_min=int(stay) if stay else None,
                    )
                )
            else:
                raise ValueError(f"{DEVICES_FILE}: unknown kind {kind!r} for {device_id}")
    for row in cabinet_rows:
        cabinet_id = row["device_id"]
        circuits = sorted(circuits_by_cabinet.get(cabinet_id, []))
        city.cabinets.append(
            Cabinet(
                device_id=cabinet_id,
                position=projection.to_metres(float(row["lat"]), float(row["lon"])),
                name=row["name"],
                grid_code=row["grid_code"],
                circuit_ids=tuple(circuits),
                modbus_host=row["modbus_host"],
                modbus_port=int(row["modbus_port"]),
                modbus_unit=int(row["modbus_unit"]),
            )
        )
    city.sites = _load_areas(directory / "sites.geojson", projection)
    city.lots = _load_areas(directory / "lots.geojson", projection)
    city.zones = _load_areas(directory / "zones.geojson", projection)
    for record in orjson.loads((directory / PERMITS_FILE).read_bytes()):
        route = Polyline(tuple(projection.to_metres(lat, lon) for lon, lat in record["route"]))
        city.permits.append(
            Permit(
                permit_id=record["permit_id"],
                truck_id=record["truck_id"],
                plate=record["plate"],
                company=record["company"],
                origin_site_id=record["origin_site_id"],
                disposal_site_ids=tuple(record["disposal_site_ids"]),
                route=route,
                corridor_m=float(record["corridor_m"]),
                allowed_hours=record["allowed_hours"],
                valid_from=record["valid_from"],
                valid_to=record["valid_to"],
            )
        )
    return city


def _load_areas(path: Path, projection: LocalProjection) -> list[Area]:
    data = orjson.loads(path.read_bytes())
    areas = []
    for feature in data["features"]:
        props = dict(feature["properties"])
        ring = feature["geometry"]["coordinates"][0][:-1]
        areas.append(
            Area(
                area_id=str(props.pop("id")),
                name=str(props.pop("name")),
                ring=tuple(projection.to_metres(lat, lon) for lon, lat in ring),
                properties=tuple(sorted(props.items())),
            )
        )
    return areas
