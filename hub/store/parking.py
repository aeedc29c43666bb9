"""Parking lots and zones (imported from GeoJSON) and the spot reports behind occupancy."""

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
import psycopg
from psycopg import sql
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
    """Newest report (parking_spot_latest) and open alarm types of each sensor."""
    if not device_ids:
        return []
    rows = conn.execute(
        "SELECT d.id, l.ts, l.received_at, l.battery_pct,"
        " coalesce((SELECT array_agg(a.alarm_type ORDER BY a.alarm_type) FROM alarms a"
        "   WHERE a.source_id = d.id AND a.state <> 'cleared'), '{}')"
        " FROM unnest(%s::text[]) AS d(id)"
        " LEFT JOIN parking_spot_latest l ON l.device_id = d.id ORDER BY d.id",
        (list(device_ids),),
    ).fetchall()
    return [
        SpotHealth(r[0], r[1], r[2], None if r[3] is None else float(r[3]), tuple(r[4]))
        for r in rows
    ]


# A spot's row moves only to a newer report; rows are locked in device order, so
# concurrent writers (cluster members) cannot deadlock on them.
_UPSERT_LATEST = (
    "INSERT INTO parking_spot_latest (device_id, ts, received_at, occupied, battery_pct) {}"
    " ON CONFLICT (device_id) DO UPDATE SET ts = excluded.ts,"
    " received_at = excluded.received_at, occupied = excluded.occupied,"
    " battery_pct = excluded.battery_pct WHERE parking_spot_latest.ts < excluded.ts"
)


def record_latest_reports(conn: Conn, stage: str) -> None:
    """Move each spot's row in parking_spot_latest to its newest report in a staged batch.

    Called by the telemetry writer after it merged the staging table `stage` into
    telemetry_parking, in the same transaction. The row copied is the one stored for that
    (device, ts), so a redelivered or duplicated report keeps the version the table kept;
    older reports arriving late leave the row alone.
    """
    conn.execute(
        sql.SQL(
            _UPSERT_LATEST.format(
                "SELECT t.device_id, t.ts, t.received_at, t.occupied, t.battery_pct"
                " FROM (SELECT device_id, max(ts) AS ts FROM {} GROUP BY device_id) s"
                " CROSS JOIN LATERAL (SELECT * FROM telemetry_parking p"
                "  WHERE p.device_id = s.device_id AND p.ts = s.ts) t"
                " ORDER BY t.device_id"
            )
        ).format(sql.Identifier(stage))
    )


def stored_reports_statement(stage: str) -> sql.Composed:
    """`record_latest_reports` for a staged batch that is stored as it is (no report in it
    was there before, none twice): its reports are the stored ones, read from the stage.
    A statement, for the telemetry writer to send with the insert from the stage."""
    return sql.SQL(
        _UPSERT_LATEST.format(
            "SELECT DISTINCT ON (device_id) device_id, ts, received_at, occupied, battery_pct"
            " FROM {} ORDER BY device_id, ts DESC"
        )
    ).format(sql.Identifier(stage))


def rebuild_latest_reports(conn: Conn) -> int:
    """Recompute parking_spot_latest from telemetry_parking (after a bulk load that bypassed
    the telemetry writer); the number of spots."""
    conn.execute("DELETE FROM parking_spot_latest")
    cursor = conn.execute(
        "INSERT INTO parking_spot_latest (device_id, ts, received_at, occupied, battery_pct)"
        " SELECT DISTINCT ON (device_id) device_id, ts, received_at, occupied, battery_pct"
        " FROM telemetry_parking ORDER BY device_id, ts DESC"
    )
    return cursor.rowcount


@dataclass(frozen=True, slots=True)
class SpotCounts:
    """An area's spots now as far as their newest reports settle them, and those they do not.

    `pending` spots were heard from within the confirmation time (or report from the
    future): their state needs their recent reports. The rest of `sensors` beyond
    `occupied`, `free` and `pending` are unknown (an open alarm of the given types, or no
    report within the look-back).
    """

    sensors: int
    occupied: int
    free: int
    pending: tuple[str, ...]

    @property
    def unknown(self) -> int:
        """Spots neither occupied, free nor pending."""
        return self.sensors - self.occupied - self.free - len(self.pending)


def fetch_occupancy_now(
    conn: Conn,
    kind: AreaKind,
    area_ids: Sequence[str],
    *,
    now: datetime,
    lookback: timedelta,
    confirm: timedelta,
    unknown_alarms: Collection[str],
) -> dict[str, SpotCounts]:
    """Spot counts per lot or zone at `now`, from each spot's newest report, in one query.

    A spot's newest report with `now - lookback <= ts <= now - confirm` is its debounced
    state at `now` judged from the reports since `now - lookback`: the run of equal reports
    it ends began no later than it, so that run stood for the confirmation time and is the
    last confirmed one. Newer reports are `pending`; a spot with an open alarm of
    `unknown_alarms` or no report since `now - lookback` is unknown. Areas without spots
    are left out.
    """
    if not area_ids:
        return {}
    key = _TABLE[kind][1]
    rows = conn.execute(
        # MATERIALIZED: one alarm look-up per spot, not one per aggregate that reads it
        "WITH spot AS MATERIALIZED ("
        f" SELECT d.attributes ->> '{key}' AS area_id, d.device_id, l.ts, l.occupied,"
        "  EXISTS (SELECT 1 FROM alarms a WHERE a.source_id = d.device_id"
        "   AND a.state <> 'cleared' AND a.alarm_type = ANY(%(alarms)s)) AS alarmed"
        "  FROM devices d LEFT JOIN parking_spot_latest l ON l.device_id = d.device_id"
        f"  WHERE d.kind = 'parking' AND d.attributes ->> '{key}' = ANY(%(areas)s))"
        " SELECT area_id, count(*),"
        "  count(*) FILTER (WHERE NOT alarmed AND ts BETWEEN %(oldest)s AND %(settled_at)s"
        "   AND occupied),"
        "  count(*) FILTER (WHERE NOT alarmed AND ts BETWEEN %(oldest)s AND %(settled_at)s"
        "   AND NOT occupied),"
        "  coalesce(array_agg(device_id ORDER BY device_id)"
        "   FILTER (WHERE NOT alarmed AND ts > %(settled_at)s), '{}')"
        " FROM spot GROUP BY area_id",
        {
            "oldest": now - lookback,
            "settled_at": now - confirm,
            "alarms": sorted(unknown_alarms),
            "areas": list(area_ids),
        },
    ).fetchall()
    return {
        r[0]: SpotCounts(sensors=r[1], occupied=r[2], free=r[3], pending=tuple(r[4])) for r in rows
    }


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
