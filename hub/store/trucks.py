"""Truck tables: sites, permits, zones (import, CRUD), live positions, tracks, the rules' context.

Every change bumps `truck_context_version` in the same transaction, so the hub process
reloads the rules' `TruckContext` after an edit or a deletion within a refresh period.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from hub.devices.kinds import Load
from hub.rules.truck_context import TruckContext, TruckContextSource
from hub.rules.truck_records import Permit, Site, Zone
from hub.rules.truck_tracks import TrackPoint
from hub.store.database import Database

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]

_SITE_COLUMNS = "site_id, name, site_type, ring, grid_code, approved"
_PERMIT_COLUMNS = (
    "permit_id, truck_id, plate, company, origin_site_id, disposal_site_ids, route, corridor_m,"
    " allowed_hours, valid_from, valid_to"
)
_ZONE_COLUMNS = "zone_id, name, zone_type, ring, speed_limit_kmh, hours"
_BUMP = "UPDATE truck_context_version SET changed_at = clock_timestamp()"


@dataclass(frozen=True, slots=True)
class TrackLine:
    """A truck's positions as columns, oldest first: what drawing a track needs."""

    times: list[datetime]
    lat: list[float]
    lon: list[float]
    speeds_kmh: list[float]


def _site(row: dict[str, Any]) -> Site:
    return Site.model_validate(row)


def _permit(row: dict[str, Any]) -> Permit:
    return Permit.model_validate(row)


def _zone(row: dict[str, Any]) -> Zone:
    return Zone.model_validate(row)


def _created_updated(cursor: psycopg.Cursor[tuple[Any, ...]]) -> tuple[int, int]:
    created = updated = 0
    while True:
        row = cursor.fetchone()
        if row is not None:
            if row[0]:
                created += 1
            else:
                updated += 1
        if not cursor.nextset():
            break
    return created, updated


class TruckStore:
    """Queries of the truck domain over the hub's pool."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # sites

    def upsert_sites(self, sites: Sequence[Site]) -> tuple[int, int]:
        """Insert or update sites; return (created, updated)."""
        if not sites:
            return (0, 0)
        with self._db.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO truck_sites ({_SITE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (site_id) DO UPDATE SET name = excluded.name,"
                " site_type = excluded.site_type, ring = excluded.ring,"
                " grid_code = excluded.grid_code, approved = excluded.approved,"
                " updated_at = now() RETURNING (xmax = 0)",
                [
                    (
                        s.site_id,
                        s.name,
                        s.site_type.value,
                        Jsonb([list(p) for p in s.ring]),
                        s.grid_code,
                        s.approved,
                    )
                    for s in sites
                ],
                returning=True,
            )
            counts = _created_updated(cursor)
            cursor.execute(_BUMP)
        return counts

    def list_sites(self, site_type: str | None = None) -> list[Site]:
        """Sites by id, optionally of one type."""
        with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                f"SELECT {_SITE_COLUMNS} FROM truck_sites"
                " WHERE %(t)s::text IS NULL OR site_type = %(t)s ORDER BY site_id",
                {"t": site_type},
            )
            return [_site(r) for r in cursor.fetchall()]

    def get_site(self, site_id: str) -> Site | None:
        """One site."""
        with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                f"SELECT {_SITE_COLUMNS} FROM truck_sites WHERE site_id = %s", (site_id,)
            )
            row = cursor.fetchone()
        return None if row is None else _site(row)

    def delete_site(self, site_id: str) -> bool:
        """Delete a site; False when there was none."""
        return self._delete("truck_sites", "site_id", site_id)

    # permits

    def upsert_permits(self, permits: Sequence[Permit]) -> tuple[int, int]:
        """Insert or update permits; return (created, updated)."""
        if not permits:
            return (0, 0)
        with self._db.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO truck_permits ({_PERMIT_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (permit_id) DO UPDATE SET truck_id = excluded.truck_id,"
                " plate = excluded.plate, company = excluded.company,"
                " origin_site_id = excluded.origin_site_id,"
                " disposal_site_ids = excluded.disposal_site_ids, route = excluded.route,"
                " corridor_m = excluded.corridor_m, allowed_hours = excluded.allowed_hours,"
                " valid_from = excluded.valid_from, valid_to = excluded.valid_to,"
                " updated_at = now() RETURNING (xmax = 0)",
                [
                    (
                        p.permit_id,
                        p.truck_id,
                        p.plate,
                        p.company,
                        p.origin_site_id,
                        list(p.disposal_site_ids),
                        Jsonb([list(c) for c in p.route]),
                        p.corridor_m,
                        p.allowed_hours,
                        p.valid_from,
                        p.valid_to,
                    )
                    for p in permits
                ],
                returning=True,
            )
            counts = _created_updated(cursor)
            cursor.execute(_BUMP)
        return counts

    def list_permits(self, company: str | None = None, truck_id: str | None = None) -> list[Permit]:
        """Permits by id, optionally of one company or truck."""
        with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                f"SELECT {_PERMIT_COLUMNS} FROM truck_permits"
                " WHERE (%(c)s::text IS NULL OR company = %(c)s)"
                " AND (%(t)s::text IS NULL OR truck_id = %(t)s) ORDER BY permit_id",
                {"c": company, "t": truck_id},
            )
            return [_permit(r) for r in cursor.fetchall()]

    def get_permit(self, permit_id: str) -> Permit | None:
        """One permit."""
        with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                f"SELECT {_PERMIT_COLUMNS} FROM truck_permits WHERE permit_id = %s", (permit_id,)
            )
            row = cursor.fetchone()
        return None if row is None else _permit(row)

    def delete_permit(self, permit_id: str) -> bool:
        """Delete a permit; False when there was none."""
        return self._delete("truck_permits", "permit_id", permit_id)

    # zones

    def upsert_zones(self, zones: Sequence[Zone]) -> tuple[int, int]:
        """Insert or update zones; return (created, updated)."""
        if not zones:
            return (0, 0)
        with self._db.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO truck_zones ({_ZONE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (zone_id) DO UPDATE SET name = excluded.name,"
                " zone_type = excluded.zone_type, ring = excluded.ring,"
                " speed_limit_kmh = excluded.speed_limit_kmh, hours = excluded.hours,"
                " updated_at = now() RETURNING (xmax = 0)",
                [
                    (
                        z.zone_id,
                        z.name,
                        z.zone_type.value,
                        Jsonb([list(p) for p in z.ring]),
                        z.speed_limit_kmh,
                        z.hours,
                    )
                    for z in zones
                ],
                returning=True,
            )
            counts = _created_updated(cursor)
            cursor.execute(_BUMP)
        return counts

    def list_zones(self) -> list[Zone]:
        """Zones by id."""
        with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(f"SELECT {_ZONE_COLUMNS} FROM truck_zones ORDER BY zone_id")
            return [_zone(r) for r in cursor.fetchall()]

    def get_zone(self, zone_id: str) -> Zone | None:
        """One zone."""
        with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                f"SELECT {_ZONE_COLUMNS} FROM truck_zones WHERE zone_id = %s", (zone_id,)
            )
            row = cursor.fetchone()
        return None if row is None else _zone(row)

    def delete_zone(self, zone_id: str) -> bool:
        """Delete a zone; False when there was none."""
        return self._delete("truck_zones", "zone_id", zone_id)

    def _delete(self, table: str, key: str, value: str) -> bool:
        with self._db.connection() as conn:
            cursor = conn.execute(f"DELETE FROM {table} WHERE {key} = %s", (value,))
            deleted = cursor.rowcount > 0
            if deleted:
                conn.execute(_BUMP)
        return deleted

    # the rules' context

    def context_version(self) -> datetime | None:
        """When sites, permits or zones last changed."""
        with self._db.connection() as conn:
            row = conn.execute("SELECT changed_at FROM truck_context_version").fetchone()
        return None if row is None else row[0]

    def load_context(self) -> TruckContext:
        """A fresh context from every site, permit and zone."""
        return TruckContext.build(self.list_sites(), self.list_permits(), self.list_zones())

    # positions and tracks

    def live_positions(
        self, company: str | None = None, permit_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Each registered truck with its newest reading (trucks never heard of are left out)."""
        with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                "SELECT d.device_id, d.name, d.attributes, t.ts, t.lat, t.lon, t.speed_kmh,"
                " t.heading_deg, t.acc_on, t.body_lifted, t.cover_closed, t.load"
                " FROM devices d CROSS JOIN LATERAL (SELECT * FROM telemetry_truck t"
                "  WHERE t.device_id = d.device_id ORDER BY t.ts DESC LIMIT 1) t"
                " WHERE d.kind = 'truck'"
                " AND (%(c)s::text IS NULL OR d.attributes->>'company' = %(c)s"
                "  OR EXISTS (SELECT 1 FROM truck_permits p WHERE p.truck_id = d.device_id"
                "   AND p.company = %(c)s))"
                " AND (%(p)s::text IS NULL OR d.attributes->>'permit_id' = %(p)s"
                "  OR EXISTS (SELECT 1 FROM truck_permits p WHERE p.truck_id = d.device_id"
                "   AND p.permit_id = %(p)s))"
                " ORDER BY d.device_id",
                {"c": company, "p": permit_id},
            )
            return list(cursor.fetchall())

    def track(
        self, device_id: str, start: datetime, end: datetime, limit: int = 100_000
    ) -> list[TrackPoint]:
        """A truck's positions in [start, end), oldest first."""
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT ts, lat, lon, speed_kmh, acc_on, body_lifted, load FROM telemetry_truck"
                " WHERE device_id = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s",
                (device_id, start, end, limit),
            ).fetchall()
        return [
            TrackPoint(
                r[0], float(r[1]), float(r[2]), float(r[3]), bool(r[4]), bool(r[5]), Load(r[6])
            )
            for r in rows
        ]

    def track_line(
        self, device_id: str, start: datetime, end: datetime, limit: int = 100_000
    ) -> TrackLine:
        """A truck's positions in [start, end) as columns, without a TrackPoint per fix.

        Read in binary, which loads timestamps several times faster than text; the speed
        comes as text so it parses to the same float as `track` gives (float4's shortest
        decimal, not its exact binary value).
        """
        with self._db.connection() as conn, conn.cursor(binary=True) as cursor:
            rows = cursor.execute(
                "SELECT ts, lat, lon, speed_kmh::text FROM telemetry_truck"
                " WHERE device_id = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s",
                (device_id, start, end, limit),
            ).fetchall()
        return TrackLine(
            times=[r[0] for r in rows],
            lat=[r[1] for r in rows],
            lon=[r[2] for r in rows],
            speeds_kmh=[float(r[3]) for r in rows],
        )


class TruckContextRefresher:
    """Reloads the rules' context when the truck tables changed (called on the rules thread)."""

    def __init__(self, store: TruckStore, source: TruckContextSource) -> None:
        self._store = store
        self._source = source
        self._version: datetime | None = None

    def refresh(self) -> bool:
        """Swap in a new context if sites, permits or zones changed; True when it did."""
        version = self._store.context_version()
        if version is not None and version == self._version:
            return False
        context = self._store.load_context()
        self._source.replace(context)
        self._version = version
        log.info(
            "truck context: %d sites, %d permits, %d zones",
            len(context.sites),
            len(context.permits_by_id),
            len(context.zones),
        )
        return True
