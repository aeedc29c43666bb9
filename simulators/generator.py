"""Deterministic generation of a city from a seed: streets, grids, assets, sites and permits."""

import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from simulators.catalogue import (
    COVER_OWNERS,
    LAMP_MODELS,
    LED_SHARE,
    PLATE_PREFIX,
    TRUCK_COMPANIES,
    RoadClass,
)
from simulators.city import (
    CITY_FILE,
    DEVICES_FILE,
    PERMITS_FILE,
    Area,
    Cabinet,
    City,
    CitySpec,
    GridLayout,
    Lamp,
    Manhole,
    Permit,
    Spot,
    Street,
    Truck,
    city_metadata,
    permit_record,
    polygon_feature,
    write_feature_collection,
    write_registry_csv,
)
from simulators.geo import LocalProjection, Point, Polyline, distance_m

ProgressSink = Callable[[str, int, int], None]
"""Called as (phase, done, total) while generating or writing."""

BLOCK_M = 400.0
LAMP_SPACING_M = 35.0
JUNCTION_JITTER_M = 25.0
MARGIN_M = 300.0
CORRIDOR_M = 50.0
LOT_SHARE = 0.6
STREET_STAY_MIN = 120
PERMIT_VALID_FROM = "2025-01-01"
PERMIT_VALID_TO = "2030-12-31"
NIGHT_HOURS = "20:00-06:00"
DAY_HOURS = "09:00-16:00"

DISTRICT_NAMES: tuple[str, ...] = (
    "长桥街道",
    "郭巷街道",
    "越溪街道",
    "横泾街道",
    "香山街道",
    "城南街道",
    "太湖街道",
    "木渎街道",
    "胥口街道",
    "甪直街道",
    "临湖街道",
    "东山街道",
)
EAST_WEST_NAMES = "宝带 东吴 吴中 越溪 友新 苏蠡 宝丰 迎春 石湖 龙西 塔韵 郭巷"
NORTH_SOUTH_NAMES = "南环 吴东 独墅 星湖 金山 万禄 溪霞 旺山 天鹅荡 尹山湖 东方 澄湖"


def _noop_progress(phase: str, done: int, total: int) -> None:
    del phase, done, total


def _road_class(index: int) -> RoadClass:
    if index % 4 == 0:
        return RoadClass.MAIN
    if index % 2 == 0:
        return RoadClass.SECONDARY
    return RoadClass.BRANCH


def _street_name(index: int, east_west: bool) -> str:
    names = (EAST_WEST_NAMES if east_west else NORTH_SOUTH_NAMES).split()
    base = names[index % len(names)]
    round_no = index // len(names)
    suffix = "路" if east_west else "大道" if index % 4 == 0 else "街"
    return f"{base}{'' if round_no == 0 else round_no + 1}{suffix}"


def _offset(path: Polyline, along_m: float, lateral_m: float) -> Point:
    x, y, heading = path.point_at(along_m)
    rad = math.radians(heading)
    # right-hand normal of the heading (heading is a compass angle)
    return x + lateral_m * math.cos(rad), y - lateral_m * math.sin(rad)


def _rect(centre: Point, width_m: float, height_m: float) -> tuple[Point, ...]:
    cx, cy = centre
    w, h = width_m / 2, height_m / 2
    return ((cx - w, cy - h), (cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h))


def _round_point(p: Point) -> Point:
    return round(p[0], 2), round(p[1], 2)


class _Generator:
    """One generation run; holds the random stream so every draw happens in a fixed order."""

    def __init__(self, spec: CitySpec, progress: ProgressSink) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.progress = progress
        self.city = City(spec=spec, projection=LocalProjection(spec.centre_lat, spec.centre_lon))
        needed_m = max(spec.lamps, 1) * LAMP_SPACING_M
        n = 6  # at least 2 km across, so truck routes have room
        while 2 * n * (n - 1) * BLOCK_M < needed_m:
            n += 1
        self.n = n
        half = (n - 1) * BLOCK_M / 2
        self.junctions: list[list[Point]] = [
            [
                _round_point(
                    (
                        -half
                        + i * BLOCK_M
                        + self.rng.uniform(-JUNCTION_JITTER_M, JUNCTION_JITTER_M),
                        half
                        - j * BLOCK_M
                        + self.rng.uniform(-JUNCTION_JITTER_M, JUNCTION_JITTER_M),
                    )
                )
                for j in range(n)
            ]
            for i in range(n)
        ]

    # -- layout --
    def build(self) -> City:
        self._grid()
        self._streets()
        self._lamps_and_cabinets()
        self._manholes()
        self._sites_and_permits()
        self._parking()
        return self.city

    def _grid(self) -> None:
        half = (self.n - 1) * BLOCK_M / 2 + MARGIN_M
        community_m = 1000.0
        size = math.ceil(2 * half / community_m) * community_m
        cells = int(size / 100.0)
        grid = GridLayout(
            county_code=self.spec.county_code,
            x_min_m=-size / 2,
            y_max_m=size / 2,
            columns=cells,
            rows=cells,
        )
        self.city.grid = grid
        span = grid.community_cells * grid.district_communities
        per_row = grid.district_columns()
        for drow in range(-(-grid.rows // span)):
            for dcol in range(per_row):
                d = drow * per_row + dcol + 1
                name = DISTRICT_NAMES[(d - 1) % len(DISTRICT_NAMES)]
                if d > len(DISTRICT_NAMES):
                    name = f"{name[:-2]}{(d - 1) // len(DISTRICT_NAMES) + 1}街道"
                c0, r0 = dcol * span, drow * span
                c1, r1 = min(c0 + span, grid.columns), min(r0 + span, grid.rows)
                ring = (
                    grid.cell_ring(c0, r1 - 1)[0],
                    grid.cell_ring(c1 - 1, r1 - 1)[1],
                    grid.cell_ring(c1 - 1, r0)[2],
                    grid.cell_ring(c0, r0)[3],
                )
                code = f"{self.spec.county_code}{d:03d}"
                self.city.districts.append(
                    Area(code, name, ring, (("level", "street"), ("code", code)))
                )
                cc = grid.community_cells
                for crow in range(r0, r1, cc):
                    for ccol in range(c0, c1, cc):
                        _, community, _ = grid.codes_of_cell(ccol, crow)
                        ce, re_ = min(ccol + cc, grid.columns), min(crow + cc, grid.rows)
                        cring = (
                            grid.cell_ring(ccol, re_ - 1)[0],
                            grid.cell_ring(ce - 1, re_ - 1)[1],
                            grid.cell_ring(ce - 1, crow)[2],
                            grid.cell_ring(ccol, crow)[3],
                        )
                        ccode = f"{code}{community:03d}"
                        self.city.districts.append(
                            Area(
                                ccode,
                                f"{name[:-2]}第{community}社区",
                                cring,
                                (("level", "community"), ("code", ccode), ("street_code", code)),
                            )
                        )

    def _streets(self) -> None:
        n = self.n
        for j in range(n):
            path = Polyline(tuple(self.junctions[i][j] for i in range(n)))
            self.city.streets.append(
                Street(f"ST-EW-{j + 1:03d}", _street_name(j, True), _road_class(j), path)
            )
        for i in range(n):
            path = Polyline(tuple(self.junctions[i][j] for j in range(n)))
            self.city.streets.append(
                Street(f"ST-NS-{i + 1:03d}", _street_name(i, False), _road_class(i), path)
            )

    def _code(self, p: Point) -> str:
        if self.city.grid is None:
            raise RuntimeError("grid layout must be built before assets")
        return self.city.grid.code_at(p)

    def _lamps_and_cabinets(self) -> None:
        spec = self.spec
        total_m = sum(s.path.length_m for s in self.city.streets)
        spacing = max(20.0, total_m / max(spec.lamps, 1))
        placed: list[tuple[Street, Point, int]] = []
        for street in self.city.streets:
            along = spacing / 2
            k = 0
            while along < street.path.length_m and len(placed) < spec.lamps:
                side = 14.0 if k % 2 == 0 else -14.0
                placed.append((street, _round_point(_offset(street.path, along, side)), k + 1))
                along += spacing
                k += 1
        per_cabinet = max(1, spec.lamps_per_cabinet)
        width = max(6, len(str(len(placed))))
        for start in range(0, len(placed), per_cabinet):
            chunk = placed[start : start + per_cabinet]
            cab_no = start // per_cabinet
            cabinet_id = f"CAB-{cab_no + 1:05d}"
            n_circuits = max(1, math.ceil(len(chunk) / max(1, spec.lamps_per_circuit)))
            circuits = tuple(f"{cabinet_id}-{k + 1}" for k in range(n_circuits))
            mid_street, mid_point, _ = chunk[len(chunk) // 2]
            cab_pos = _round_point((mid_point[0] + 6.0, mid_point[1] + 6.0))
            units = max(1, spec.modbus_units_per_port)
            self.city.cabinets.append(
                Cabinet(
                    device_id=cabinet_id,
                    position=cab_pos,
                    name=f"{mid_street.name}路灯配电箱{cab_no + 1}",
                    grid_code=self._code(cab_pos),
                    circuit_ids=circuits,
                    modbus_host=spec.modbus_host,
                    modbus_port=spec.modbus_base_port + cab_no // units,
                    modbus_unit=cab_no % units + 1,
                )
            )
            for index, (street, pos, k) in enumerate(chunk):
                led, hps = LAMP_MODELS[street.road_class]
                model = led if self.rng.random() < LED_SHARE else hps
                number = start + index + 1
                self.city.lamps.append(
                    Lamp(
                        device_id=f"LMP-{number:0{width}d}",
                        position=pos,
                        name=f"{street.name}路灯{k:03d}",
                        grid_code=self._code(pos),
                        rated_power_w=model.rated_power_w,
                        lamp_type=model.lamp_type,
                        cabinet_id=cabinet_id,
                        circuit_id=circuits[index * n_circuits // len(chunk)],
                        road_class=street.road_class,
                    )
                )
            self.progress("lamps", min(start + per_cabinet, len(placed)), len(placed))

    def _manholes(self) -> None:
        owners = COVER_OWNERS
        weights = [o.weight for o in owners]
        streets = self.city.streets
        lengths = [s.path.length_m for s in streets]
        width = max(6, len(str(self.spec.manholes)))
        for index in range(self.spec.manholes):
            street = self.rng.choices(streets, weights=lengths)[0]
            along = self.rng.uniform(0, street.path.length_m)
            pos = _round_point(_offset(street.path, along, self.rng.uniform(-6.0, 6.0)))
            owner = self.rng.choices(owners, weights=weights)[0]
            self.city.manholes.append(
                Manhole(
                    device_id=f"MH-{index + 1:0{width}d}",
                    position=pos,
                    name=f"{street.name}{owner.name_zh}",
                    grid_code=self._code(pos),
                    class_code=owner.class_code,
                    department=owner.department.value,
                    cover_type=owner.cover_type,
                    baseline_tilt_deg=round(self.rng.uniform(0.3, 3.0), 1),
                    road_class=street.road_class,
                )
            )
            if index % 1000 == 999 or index + 1 == self.spec.manholes:
                self.progress("manholes", index + 1, self.spec.manholes)

    def _sites_and_permits(self) -> None:
        spec, n = self.spec, self.n
        if spec.trucks == 0:
            return
        inner = [(i, j) for i in range(1, n - 1) for j in range(1, n - 1)]
        edge = [(i, j) for i in range(n) for j in range(n) if i in (0, n - 1) or j in (0, n - 1)]
        n_construction = min(len(inner), max(1, math.ceil(spec.trucks / 4)))
        n_disposal = min(len(edge), max(2, min(8, math.ceil(spec.trucks / 25) + 1)))
        construction_at = self.rng.sample(inner, n_construction)
        disposal_at = self.rng.sample(edge, n_disposal)
        construction: list[tuple[Area, tuple[int, int]]] = []
        for k, (i, j) in enumerate(construction_at):
            jx, jy = self.junctions[i][j]
            centre = _round_point((jx + 70.0, jy - 70.0))
            area = Area(
                f"CS-{k + 1:04d}",
                f"建设工地{k + 1}号",
                tuple(_round_point(p) for p in _rect(centre, 120.0, 80.0)),
                (("site_type", "construction"), ("grid_code", self._code(centre))),
            )
            construction.append((area, (i, j)))
        disposal: list[tuple[Area, tuple[int, int]]] = []
        for k, (i, j) in enumerate(disposal_at):
            jx, jy = self.junctions[i][j]
            dx = -250.0 if i == 0 else 250.0 if i == n - 1 else 0.0
            dy = 250.0 if j == 0 else -250.0 if j == n - 1 else 0.0
            centre = _round_point((jx + dx, jy + dy))
            area = Area(
                f"DS-{k + 1:04d}",
                f"渣土消纳场{k + 1}号",
                tuple(_round_point(p) for p in _rect(centre, 300.0, 200.0)),
                (("site_type", "disposal"), ("grid_code", self._code(centre))),
            )
            disposal.append((area, (i, j)))
        self.city.sites = [a for a, _ in construction] + [a for a, _ in disposal]
        width = max(4, len(str(spec.trucks)))
        for t in range(spec.trucks):
            origin, (i1, j1) = construction[t % len(construction)]
            k = 1 if len(disposal) == 2 or self.rng.random() < 0.6 else 2
            # permits favour distant sites (city edge), so every route has driving to it
            centre = origin.centre
            distances = [round(distance_m(centre, d.centre)) for d, _ in disposal]
            by_distance = sorted(range(len(disposal)), key=lambda d: (-distances[d], d))
            pool = by_distance[: max(k, math.ceil(len(disposal) / 2))]
            chosen = sorted(self.rng.sample(pool, k), key=by_distance.index)
            target, (i2, j2) = disposal[chosen[0]]
            route = self._route(origin.centre, (i1, j1), (i2, j2), target.centre)
            truck_id = f"TRK-{t + 1:0{width}d}"
            letter = chr(ord("A") + self.rng.randrange(8))
            plate = f"{PLATE_PREFIX}{letter}{self.rng.randrange(10000):04d}"
            company = TRUCK_COMPANIES[self.rng.randrange(len(TRUCK_COMPANIES))]
            permit = Permit(
                permit_id=f"PMT-{t + 1:0{width}d}",
                truck_id=truck_id,
                plate=plate,
                company=company,
                origin_site_id=origin.area_id,
                disposal_site_ids=tuple(sorted(disposal[c][0].area_id for c in chosen)),
                route=route,
                corridor_m=CORRIDOR_M,
                allowed_hours=NIGHT_HOURS if self.rng.random() < 0.7 else DAY_HOURS,
                valid_from=PERMIT_VALID_FROM,
                valid_to=PERMIT_VALID_TO,
            )
            self.city.permits.append(permit)
            home = route.points[0]
            self.city.trucks.append(
                Truck(
                    device_id=truck_id,
                    position=home,
                    name=plate,
                    grid_code=self._code(home),
                    plate=plate,
                    company=company,
                    permit_id=permit.permit_id,
                )
            )
        self.progress("trucks", spec.trucks, spec.trucks)

    def _route(
        self, start: Point, first: tuple[int, int], last: tuple[int, int], end: Point
    ) -> Polyline:
        (i1, j1), (i2, j2) = first, last
        points: list[Point] = [start]
        step_i = 1 if i2 >= i1 else -1
        points.extend(self.junctions[i][j1] for i in range(i1, i2 + step_i, step_i))
        step_j = 1 if j2 >= j1 else -1
        points.extend(self.junctions[i2][j] for j in range(j1 + step_j, j2 + step_j, step_j))
        points.append(end)
        deduped = [points[0]]
        for p in points[1:]:
            if p != deduped[-1]:
                deduped.append(p)
        return Polyline(tuple(deduped))

    def _parking(self) -> None:
        spec, n = self.spec, self.n
        lot_spots = round(spec.spots * LOT_SHARE)
        street_spots = spec.spots - lot_spots
        width = max(6, len(str(spec.spots)))
        number = 0

        def next_id() -> str:
            nonlocal number
            number += 1
            return f"PS-{number:0{width}d}"

        lot_no = 0
        remaining = lot_spots
        while remaining > 0:
            capacity = min(remaining, self.rng.randint(30, 120))
            remaining -= capacity
            lot_no += 1
            i, j = self.rng.randrange(n - 1), self.rng.randrange(n - 1)
            jx, jy = self.junctions[i][j]
            centre = _round_point(
                (jx + self.rng.uniform(120, 280), jy - self.rng.uniform(120, 280))
            )
            per_row = 20
            rows = math.ceil(capacity / per_row)
            ring = tuple(_round_point(p) for p in _rect(centre, per_row * 2.5 + 6, rows * 6.0 + 6))
            lot_id = f"LOT-{lot_no:04d}"
            self.city.lots.append(
                Area(
                    lot_id,
                    f"公共停车场{lot_no}号",
                    ring,
                    (("capacity", capacity), ("grid_code", self._code(centre))),
                )
            )
            x0, y0 = ring[0][0] + 3 + 1.25, ring[0][1] + 3 + 3.0
            for s in range(capacity):
                pos = _round_point((x0 + (s % per_row) * 2.5, y0 + (s // per_row) * 6.0))
                self.city.spots.append(
                    Spot(
                        next_id(),
                        pos,
                        f"{lot_id} {s + 1:03d}号车位",
                        self._code(pos),
                        lot_id,
                        None,
                        None,
                    )
                )
        zone_no = 0
        remaining = street_spots
        while remaining > 0:
            capacity = min(remaining, self.rng.randint(10, 30))
            remaining -= capacity
            zone_no += 1
            street = self.rng.choice(self.city.streets)
            segment = self.rng.randrange(n - 1)
            base = street.path.cumulative_m[segment] + 30.0
            zone_id = f"PZ-{zone_no:04d}"
            spot_points = [
                _round_point(_offset(street.path, base + s * 6.0 + 3.0, 10.0))
                for s in range(capacity)
            ]
            inner_a = _offset(street.path, base, 7.0)
            inner_b = _offset(street.path, base + capacity * 6.0, 7.0)
            outer_b = _offset(street.path, base + capacity * 6.0, 13.0)
            outer_a = _offset(street.path, base, 13.0)
            ring = tuple(_round_point(p) for p in (inner_a, inner_b, outer_b, outer_a))
            self.city.zones.append(
                Area(
                    zone_id,
                    f"{street.name}路内泊位{zone_no}号",
                    ring,
                    (
                        ("capacity", capacity),
                        ("street", street.name),
                        ("max_stay_min", STREET_STAY_MIN),
                        ("grid_code", self._code(spot_points[0])),
                    ),
                )
            )
            for s, pos in enumerate(spot_points):
                self.city.spots.append(
                    Spot(
                        next_id(),
                        pos,
                        f"{street.name} {zone_id} {s + 1:02d}号泊位",
                        self._code(pos),
                        None,
                        zone_id,
                        STREET_STAY_MIN,
                    )
                )
        self.progress("parking", spec.spots, spec.spots)


def generate_city(spec: CitySpec, progress: ProgressSink | None = None) -> City:
    """Build a city from the spec; the same spec always gives the same city."""
    return _Generator(spec, progress or _noop_progress).build()


def write_city(city: City, directory: Path, progress: ProgressSink | None = None) -> dict[str, int]:
    """Write the registry CSV, GeoJSON layers, permits.json and city.json; return row counts."""
    report = progress or _noop_progress
    directory.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    counts[DEVICES_FILE] = write_registry_csv(city, directory / DEVICES_FILE)
    report("devices.csv", counts[DEVICES_FILE], counts[DEVICES_FILE])
    counts["streets.geojson"] = write_feature_collection(
        directory / "streets.geojson",
        (
            orjson.dumps(
                {
                    "type": "Feature",
                    "properties": {
                        "id": s.street_id,
                        "name": s.name,
                        "road_class": s.road_class.value,
                        "length_m": round(s.path.length_m, 1),
                    },
                    "geometry": {
                        "type": "LineString",
                        "coordinates": [
                            [round(lon, 7), round(lat, 7)]
                            for lat, lon in (city.projection.to_lat_lon(*p) for p in s.path.points)
                        ],
                    },
                },
                option=orjson.OPT_SORT_KEYS,
            )
            for s in city.streets
        ),
    )
    counts["districts.geojson"] = write_feature_collection(
        directory / "districts.geojson", (polygon_feature(city, a) for a in city.districts)
    )
    counts["grids.geojson"] = _write_grids(city, directory / "grids.geojson", report)
    counts["sites.geojson"] = write_feature_collection(
        directory / "sites.geojson", (polygon_feature(city, a) for a in city.sites)
    )
    counts["lots.geojson"] = write_feature_collection(
        directory / "lots.geojson", (polygon_feature(city, a) for a in city.lots)
    )
    counts["zones.geojson"] = write_feature_collection(
        directory / "zones.geojson", (polygon_feature(city, a) for a in city.zones)
    )
    records = [permit_record(city, p) for p in city.permits]
    counts["permits.geojson"] = write_feature_collection(
        directory / "permits.geojson",
        (
            orjson.dumps(
                {
                    "type": "Feature",
                    "properties": {k: v for k, v in r.items() if k != "route"},
                    "geometry": {"type": "LineString", "coordinates": r["route"]},
                },
                option=orjson.OPT_SORT_KEYS,
            )
            for r in records
        ),
    )
    (directory / PERMITS_FILE).write_bytes(
        orjson.dumps(records, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    counts[PERMITS_FILE] = len(records)
    (directory / CITY_FILE).write_bytes(
        orjson.dumps(city_metadata(city, counts), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        + b"\n"
    )
    return counts


def _write_grids(city: City, path: Path, report: ProgressSink) -> int:
    grid = city.grid
    if grid is None:
        return write_feature_collection(path, ())
    total = grid.columns * grid.rows

    def features() -> Iterator[bytes]:
        for row in range(grid.rows):
            for col in range(grid.columns):
                code = grid.code_of_cell(col, row)
                area = Area(
                    code,
                    code,
                    grid.cell_ring(col, row),
                    (
                        ("street_code", code[:9]),
                        ("community_code", code[:12]),
                        ("area_m2", int(grid.cell_m * grid.cell_m)),
                    ),
                )
                yield polygon_feature(city, area, grid_code=code)  # the hub's grid format
            report("grids.geojson", (row + 1) * grid.columns, total)

    return write_feature_collection(path, features())
