"""Muck-truck sites, permits and zones: validated records and their GeoJSON/JSON import.

The simulators' `sites.geojson`, `permits.json` / `permits.geojson` and any zones GeoJSON
parse into these records; the store keeps them, the API edits them and the truck rules
read them as a `TruckContext`. Coordinates are WGS-84 `[lon, lat]`.
"""

import re
from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Self, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

_M = TypeVar("_M", bound=BaseModel)

HOURS_PATTERN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")

LonLat = tuple[
    Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)],
    Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)],
]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class SiteType(StrEnum):
    """Construction site (approved origin), approved disposal site (消纳场), known illegal site."""

    CONSTRUCTION = "construction"
    DISPOSAL = "disposal"
    ILLEGAL = "illegal"


class ZoneType(StrEnum):
    """A zone trucks may not enter (in its hours), or one with its own speed limit."""

    RESTRICTED = "restricted"
    SPEED = "speed"


def _check_hours(value: str | None) -> str | None:
    if value is not None and not HOURS_PATTERN.match(value):
        raise ValueError("hours must be HH:MM-HH:MM (local time; wraps midnight when end < start)")
    return value


def hours_minutes(hours: str) -> tuple[int, int]:
    """Start and end minute of the day of an `HH:MM-HH:MM` window."""
    match = HOURS_PATTERN.match(hours)
    if match is None:
        raise ValueError(f"bad hours {hours!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return h1 * 60 + m1, h2 * 60 + m2


def minute_in_window(minute_of_day: int, window: tuple[int, int]) -> bool:
    """Whether a local minute of the day lies in [start, end), wrapping midnight."""
    start, end = window
    if start == end:
        return True
    if start < end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end


class Site(BaseModel):
    """A construction or disposal site, or a known illegal dumping site, as a polygon."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_id: Identifier
    name: str = ""
    site_type: SiteType
    ring: list[LonLat] = Field(min_length=3)
    grid_code: str | None = None
    approved: bool = True


class Permit(BaseModel):
    """A transport permit: truck, origin, disposal sites, route and corridor, dates, hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    permit_id: Identifier
    truck_id: Identifier
    plate: str = ""
    company: str = ""
    origin_site_id: str | None = None
    disposal_site_ids: list[str] = Field(default_factory=list)
    route: list[LonLat] = Field(min_length=2)
    corridor_m: float = Field(default=50.0, gt=0, le=5000)
    allowed_hours: str = "00:00-24:00"
    valid_from: date
    valid_to: date

    _hours = field_validator("allowed_hours")(_check_hours)

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.valid_from > self.valid_to:
            raise ValueError(f"valid_from ({self.valid_from}) is after valid_to ({self.valid_to})")
        return self


class Zone(BaseModel):
    """A restricted zone (no entry in its hours) or a speed zone (its own limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zone_id: Identifier
    name: str = ""
    zone_type: ZoneType
    ring: list[LonLat] = Field(min_length=3)
    speed_limit_kmh: float | None = Field(default=None, gt=0, le=200)
    hours: str | None = None

    _hours = field_validator("hours")(_check_hours)

    @model_validator(mode="after")
    def _speed_zone_has_limit(self) -> Self:
        if self.zone_type is ZoneType.SPEED and self.speed_limit_kmh is None:
            raise ValueError("a speed zone needs speed_limit_kmh")
        return self


class RecordImportError(ValueError):
    """A file that cannot be imported; the message names the feature and field."""


def _features(data: object, what: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise RecordImportError(f"{what}: expected a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list):
        raise RecordImportError(f"{what}: features must be a list")
    return [f for f in features if isinstance(f, dict)]


def _outer_ring(geometry: object, where: str) -> list[Any]:
    if not isinstance(geometry, dict):
        raise RecordImportError(f"{where}: missing geometry")
    coords = geometry.get("coordinates")
    if geometry.get("type") == "Polygon" and isinstance(coords, list) and coords:
        return list(coords[0])
    if geometry.get("type") == "MultiPolygon" and isinstance(coords, list) and coords:
        return list(coords[0][0])
    raise RecordImportError(f"{where}: geometry must be a Polygon")


def _validate(model: type[_M], raw: dict[str, Any], where: str) -> _M:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise RecordImportError(f"{where}: {loc}: {first['msg']}") from err


def parse_sites(text: bytes | str) -> list[Site]:
    """Sites from a GeoJSON FeatureCollection of polygons (`id`, `name`, `site_type`, ...)."""
    sites = []
    for index, feature in enumerate(_features(orjson.loads(text), "sites")):
        props = dict(feature.get("properties") or {})
        where = f"sites feature {index} ({props.get('id', '?')})"
        raw = {
            "site_id": props.pop("id", props.pop("site_id", None)),
            "name": props.get("name", ""),
            "site_type": props.get("site_type"),
            "ring": _outer_ring(feature.get("geometry"), where),
            "grid_code": props.get("grid_code"),
            "approved": props.get("approved", True),
        }
        sites.append(_validate(Site, raw, where))
    return sites


def parse_zones(text: bytes | str) -> list[Zone]:
    """Zones from a GeoJSON FeatureCollection (`id`, `zone_type`, `speed_limit_kmh`, `hours`)."""
    zones = []
    for index, feature in enumerate(_features(orjson.loads(text), "zones")):
        props = dict(feature.get("properties") or {})
        where = f"zones feature {index} ({props.get('id', '?')})"
        raw = {
            "zone_id": props.get("id", props.get("zone_id")),
            "name": props.get("name", ""),
            "zone_type": props.get("zone_type"),
            "ring": _outer_ring(feature.get("geometry"), where),
            "speed_limit_kmh": props.get("speed_limit_kmh"),
            "hours": props.get("hours"),
        }
        zones.append(_validate(Zone, raw, where))
    return zones


def parse_permits(text: bytes | str) -> list[Permit]:
    """Permits from a JSON array (`permits.json`) or a GeoJSON of route LineStrings."""
    data = orjson.loads(text)
    raws: list[tuple[str, dict[str, Any]]] = []
    if isinstance(data, list):
        raws = [(f"permit {i}", dict(p)) for i, p in enumerate(data) if isinstance(p, dict)]
    else:
        for index, feature in enumerate(_features(data, "permits")):
            props = dict(feature.get("properties") or {})
            geometry = feature.get("geometry") or {}
            if geometry.get("type") != "LineString":
                raise RecordImportError(f"permits feature {index}: geometry must be a LineString")
            props["route"] = geometry.get("coordinates")
            raws.append((f"permits feature {index}", props))
    return [_validate(Permit, raw, f"{where} ({raw.get('permit_id', '?')})") for where, raw in raws]


def feature_collection(features: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection document."""
    return {"type": "FeatureCollection", "features": list(features)}


def site_feature(site: Site) -> dict[str, Any]:
    """A site as a GeoJSON feature (the import format)."""
    props = site.model_dump(mode="json", exclude={"ring", "site_id"})
    return {
        "type": "Feature",
        "id": site.site_id,
        "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in site.ring]]},
        "properties": {"id": site.site_id, **props},
    }


def zone_feature(zone: Zone) -> dict[str, Any]:
    """A zone as a GeoJSON feature (the import format)."""
    props = zone.model_dump(mode="json", exclude={"ring", "zone_id"})
    return {
        "type": "Feature",
        "id": zone.zone_id,
        "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in zone.ring]]},
        "properties": {"id": zone.zone_id, **props},
    }
