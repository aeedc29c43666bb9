"""Parking lots and zones (imported from GeoJSON) and the spot reports behind occupancy."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[tuple[Any, ...]]


class AreaKind(StrEnum):
    """Off-street lot or on-street zone."""

    LOT = "lot"
    ZONE = "zone"


_TABLE = {AreaKind.LOT: ("parking_lots", "lot_id"), AreaKind.ZONE: ("parking_zones", "zone_id")}


@dataclass(frozen=True, slots=True)
class ParkingArea:
    """A lot or zone: capacity, the zone's maximum stay, centre point and polygon."""

    area_id: str
    kind: AreaKind
    name: str
    capacity: int
    lat: float
    lon: float
    geometry: dict[str, Any]
    grid_code: str | None = None
    street: str | None = None
    max_stay_min: int | None = None


@dataclass(frozen=True, slots=True)
class SpotRecord:
    """A registered parking sensor and the area it belongs to."""

    device_id: str
    area_id: str
    kind: AreaKind
    lat: float
    lon: float


class AreaImportError(ValueError):
    """A GeoJSON feature that cannot be imported; the message names it."""


def _ring_centre(geometry: dict[str, Any]) -> tuple[float, float]:
    coords = geometry.get("coordinates")
    if geometry.get("type") != "Polygon" or not isinstance(coords, list) or not coords:
        raise AreaImportError("geometry must be a Polygon")
    ring = coords[0]
    points = ring[:-1] if len(ring) > 1 and ring[0] == ring[-1] else ring
    if not points:
        raise AreaImportError("polygon has no points")
    lon = sum(float(p[0]) for p in points) / len(points)
    lat = sum(float(p[1]) for p in points) / len(points)
    return lat, lon


def parse_areas_geojson(data: bytes, kind: AreaKind) -> list[ParkingArea]:
    """Lots or zones from a FeatureCollection or one GeoJSON feature per line (simulators)."""
    text = data.strip()
    if not text:
        return []
    try:
        if text.startswith(b"{") and b'"FeatureCollection"' in text[:200]:
            features = orjson.loads(text)["features"]
        else:
            features = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except (orjson.JSONDecodeError, KeyError, TypeError) as err:
        raise AreaImportError(f"not GeoJSON: {err}") from err
    areas = []
    for number, feature in enumerate(features, start=1):
        props = feature.get("properties") or {}
        area_id = str(feature.get("id") or props.get("id") or "")
        where = f"feature {number} ({area_id or 'no id'})"
        try:
            lat, lon = _ring_centre(feature.get("geometry") or {})
            stay = props.get("max_stay_min")
            areas.append(
                ParkingArea(
                    area_id=area_id,
                    kind=kind,
                    name=str(props.get("name") or area_id),
                    capacity=int(props["capacity"]),
                    lat=round(lat, 7),
                    lon=round(lon, 7),
                    geometry=feature["geometry"],
                    grid_code=props.get("grid_code") or None,
                    street=props.get("street") or None,
                    max_stay_min=int(stay) if stay not in (None, "") else None,
                )
            )
        except (AreaImportError, KeyError, TypeError, ValueError) as err:
            raise AreaImportError(f"{where}: {err}") from err
        if not area_id:
            raise AreaImportError(f"{where}: no id")
    return areas


def upsert_areas(conn: Conn, areas: Sequence[ParkingArea]) -> int:
    """Create or update lots and zones; the number written."""
    for area in areas:
        if area.kind is AreaKind.LOT:
            conn.execute(
                "INSERT INTO parking_lots (lot_id, name, capacity, grid_code, lat, lon, geometry)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (lot_id) DO UPDATE SET"
                " name = excluded.name, capacity = excluded.capacity,"
                " grid_code = excluded.grid_code, lat = excluded.lat, lon = excluded.lon,"
                " geometry = excluded.geometry, updated_at = now()",
                (
                    area.area_id,
                    area.name,
                    area.capacity,
                    area.grid_code,
                    area.lat,
                    area.lon,
                    Jsonb(area.geometry),
                ),
            )
        else:
            conn.execute(
                "INSERT INTO parking_zones (zone_id, name, capacity, street, max_stay_min,"
                " grid_code, lat, lon, geometry) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (zone_id) DO UPDATE SET name = excluded.name,"
                " capacity = excluded.capacity, street = excluded.street,"
                " max_stay_min = excluded.max_stay_min, grid_code = excluded.grid_code,"
                " lat = excluded.lat, lon = excluded.lon, geometry = excluded.geometry,"
                " updated_at = now()",
                (
                    area.area_id,
                    area.name,
                    area.capacity,
                    area.street,
                    area.max_stay_min,
                    area.grid_code,
                    area.lat,
                    area.lon,
                    Jsonb(area.geometry),
                ),
            )
    return len(areas)


def apply_zone_max_stay(conn: Conn) -> int:
    """Copy each zone's maximum stay onto its spots' registry attributes (the overstay rule)."""
    cursor = conn.execute(
        "UPDATE devices d SET attributes = d.attributes || jsonb_build_object("
        " 'max_stay_min', z.max_stay_min), updated_at = now()"
        " FROM parking_zones z WHERE d.kind = 'parking'"
        " AND d.attributes ->> 'zone_id' = z.zone_id AND z.max_stay_min IS NOT NULL"
        " AND (d.attributes -> 'max_stay_min') IS DISTINCT FROM to_jsonb(z.max_stay_min)"
    )
    return cursor.rowcount


def list_areas(conn: Conn, kind: AreaKind, area_id: str | None = None) -> list[ParkingArea]:
    """Lots or zones by id (one when `area_id` is given)."""
    if kind is AreaKind.LOT:
        query = (
            "SELECT lot_id, name, capacity, lat, lon, geometry, grid_code, NULL, NULL"
            " FROM parking_lots"
        )
        key = "lot_id"
    else:
        query = (
            "SELECT zone_id, name, capacity, lat, lon, geometry, grid_code, street, max_stay_min"
            " FROM parking_zones"
        )
        key = "zone_id"
    params: tuple[Any, ...] = ()
    if area_id is not None:
        query += f" WHERE {key} = %s"
        params = (area_id,)
    rows = conn.execute(query + f" ORDER BY {key}", params).fetchall()
    return [
        ParkingArea(
            area_id=r[0],
            kind=kind,
            name=r[1],
            capacity=int(r[2]),
            lat=float(r[3]),
            lon=float(r[4]),
            geometry=r[5],
            grid_code=r[6],
            street=r[7],
            max_stay_min=r[8],
        )
        for r in rows
    ]


def list_spots(
    conn: Conn, kind: AreaKind, area_ids: Iterable[str] | None = None
) -> list[SpotRecord]:
    """Registered sensors of lots or zones (of the given ones when listed)."""
    key = "lot_id" if kind is AreaKind.LOT else "zone_id"
    query = (
        f"SELECT device_id, attributes ->> '{key}', lat, lon FROM devices"
        f" WHERE kind = 'parking' AND coalesce(attributes ->> '{key}', '') <> ''"
    )
    params: tuple[Any, ...] = ()
    if area_ids is not None:
        query += f" AND attributes ->> '{key}' = ANY(%s)"
        params = (list(area_ids),)
    rows = conn.execute(query + " ORDER BY device_id", params).fetchall()
    return [SpotRecord(r[0], r[1], kind, float(r[2]), float(r[3])) for r in rows]


def fetch_spot_reports(
    conn: Conn, device_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, bool]]]:
    """Each spot's reports (ts, occupied) in [start, end], oldest first."""
    reports: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)
    if not device_ids:
        return reports
    rows = conn.execute(
        "SELECT device_id, ts, occupied FROM telemetry_parking"
        " WHERE device_id = ANY(%s) AND ts >= %s AND ts <= %s ORDER BY device_id, ts",
        (list(device_ids), start, end),
    )
    for device_id, ts, occupied in rows:
        reports[device_id].append((ts, bool(occupied)))
    return reports


@dataclass(frozen=True, slots=True)
class SpotHealth:
    """What the store knows about one sensor's health: last report, battery, open alarms."""

    device_id: str
    last_ts: datetime | None
    last_received_at: datetime | None
    battery_pct: float | None
    open_alarms: tuple[str, ...]


def fetch_spot_health(conn: Conn, device_ids: Sequence[str]) -> list[SpotHealth]:
    """Newest report and open alarm types of each sensor."""
    if not device_ids:
        return []
    rows = conn.execute(
        "SELECT d.id, t.ts, t.received_at, t.battery_pct,"
        " coalesce((SELECT array_agg(a.alarm_type ORDER BY a.alarm_type) FROM alarms a"
        "   WHERE a.source_id = d.id AND a.state <> 'cleared'), '{}')"
        " FROM unnest(%s::text[]) AS d(id)"
        " LEFT JOIN LATERAL (SELECT ts, received_at, battery_pct FROM telemetry_parking p"
        "   WHERE p.device_id = d.id ORDER BY ts DESC LIMIT 1) t ON true ORDER BY d.id",
        (list(device_ids),),
    ).fetchall()
    return [
        SpotHealth(r[0], r[1], r[2], None if r[3] is None else float(r[3]), tuple(r[4]))
        for r in rows
    ]


def fetch_overstays(conn: Conn, device_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Open overstay alarms with their spot's zone or lot."""
    query = (
        "SELECT a.id, a.source_id, a.raised_at, a.last_seen_at, a.message, a.details,"
        " d.attributes ->> 'zone_id', d.attributes ->> 'lot_id', d.attributes -> 'max_stay_min'"
        " FROM alarms a JOIN devices d ON d.device_id = a.source_id"
        " WHERE a.alarm_type = 'overstay' AND a.state <> 'cleared'"
    )
    params: tuple[Any, ...] = ()
    if device_ids is not None:
        query += " AND a.source_id = ANY(%s)"
        params = (list(device_ids),)
    rows = conn.execute(query + " ORDER BY a.raised_at", params).fetchall()
    return [
        {
            "alarm_id": r[0],
            "device_id": r[1],
            "raised_at": r[2],
            "last_seen_at": r[3],
            "message": r[4],
            "zone_id": r[6],
            "lot_id": r[7],
            "max_stay_min": r[8],
        }
        for r in rows
    ]
