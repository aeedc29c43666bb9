"""The device registry table: upserts from imports and the API, lookups for ingest.

Device ids (and parent ids) read from it are interned: the ingest index, the rules and
the cluster's owner table each hold every id, and as one string per id they take ~60
bytes per device once instead of once per holder.
"""

import sys
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord

_COLUMNS = (
    "device_id",
    "kind",
    "name",
    "lat",
    "lon",
    "grid_code",
    "class_code",
    "department",
    "parent_id",
    "attributes",
)
Conn = psycopg.Connection[tuple[Any, ...]]


_WRITTEN = (
    "device_id, kind, name, lat, lon, grid_code, class_code, department, parent_id, attributes"
)


def _row(r: DeviceRecord) -> tuple[object, ...]:
    """A record as the values of the `_WRITTEN` columns."""
    return (
        r.device_id,
        r.kind.value,
        r.name,
        r.lat,
        r.lon,
        r.grid_code,
        r.class_code,
        r.department,
        r.parent_id,
        Jsonb(r.attributes),
    )


def copy_new_devices(conn: Conn, records: Iterable[DeviceRecord]) -> None:
    """Register devices not yet in the registry with one COPY (a bulk load; no upsert)."""
    with conn.cursor().copy(f"COPY devices ({_WRITTEN}) FROM STDIN") as copy:
        for record in records:
            copy.write_row(_row(record))


def upsert_devices(conn: Conn, records: Sequence[DeviceRecord]) -> tuple[int, int]:
    """Insert new devices and update existing ones; return (created, updated)."""
    if not records:
        return (0, 0)
    created = updated = 0
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO devices ({_WRITTEN}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET kind = excluded.kind, name = excluded.name,"
            " lat = excluded.lat, lon = excluded.lon, grid_code = excluded.grid_code,"
            " class_code = excluded.class_code, department = excluded.department,"
            " parent_id = excluded.parent_id, attributes = excluded.attributes,"
            " updated_at = now()"
            " RETURNING (xmax = 0) AS created",
            [_row(r) for r in records],
            returning=True,
        )
        while True:
            row = cursor.fetchone()
            if row is not None:
                if row[0]:
                    created += 1
                else:
                    updated += 1
            if not cursor.nextset():
                break
    return (created, updated)


def _record(row: Sequence[Any]) -> DeviceRecord:
    record = dict(zip(_COLUMNS, row, strict=True))
    record["device_id"] = sys.intern(record["device_id"])
    if record["parent_id"] is not None:
        record["parent_id"] = sys.intern(record["parent_id"])
    return DeviceRecord.model_validate(record)


def list_devices(
    conn: Conn, *, kind: Kind | None = None, limit: int = 1000, offset: int = 0
) -> list[DeviceRecord]:
    """Registered devices ordered by id, optionally of one kind."""
    rows = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM devices"
        " WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " ORDER BY device_id LIMIT %(limit)s OFFSET %(offset)s",
        {"kind": kind.value if kind else None, "limit": limit, "offset": offset},
    ).fetchall()
    return [_record(r) for r in rows]


def get_device(conn: Conn, device_id: str) -> DeviceRecord | None:
    """One device by id."""
    row = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM devices WHERE device_id = %s", (device_id,)
    ).fetchone()
    return _record(row) if row else None


def get_devices(conn: Conn, device_ids: Collection[str]) -> dict[str, DeviceRecord]:
    """The registered ones of some devices, by id."""
    if not device_ids:
        return {}
    rows = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM devices WHERE device_id = ANY(%s)", (list(device_ids),)
    ).fetchall()
    records = (_record(row) for row in rows)
    return {record.device_id: record for record in records}


def delete_device(conn: Conn, device_id: str) -> bool:
    """Remove a device from the registry (its stored telemetry stays); True if it existed."""
    cursor = conn.execute("DELETE FROM devices WHERE device_id = %s", (device_id,))
    return cursor.rowcount > 0


def count_devices(conn: Conn) -> dict[str, int]:
    """Registered devices per kind."""
    rows = conn.execute("SELECT kind, count(*) FROM devices GROUP BY kind").fetchall()
    return {str(kind): int(n) for kind, n in rows}


def fetch_kind_index(
    conn: Conn, changed_since: datetime | None
) -> tuple[dict[str, Kind], datetime | None]:
    """Device id → kind for devices changed since a time (all when None), and the newest change."""
    rows = conn.execute(
        "SELECT device_id, kind, updated_at FROM devices"
        " WHERE %(since)s::timestamptz IS NULL OR updated_at > %(since)s",
        {"since": changed_since},
    ).fetchall()
    newest = max((r[2] for r in rows), default=changed_since)
    return {sys.intern(r[0]): Kind(r[1]) for r in rows}, newest


def fetch_all_ids(conn: Conn) -> set[str]:
    """Every registered device id (to notice deletions)."""
    return {sys.intern(r[0]) for r in conn.execute("SELECT device_id FROM devices")}


def fetch_devices_changed_since(
    conn: Conn,
    changed_since: datetime | None,
    *,
    after_id: str | None = None,
    limit: int | None = None,
) -> tuple[list[DeviceRecord], datetime | None]:
    """Full records of devices changed since a time (all when None), and the newest change.

    Pages by device id: `after_id` the last id of the previous page, `limit` its size.
    """
    rows = conn.execute(
        f"SELECT {', '.join(_COLUMNS)}, updated_at FROM devices"
        " WHERE (%(since)s::timestamptz IS NULL OR updated_at > %(since)s)"
        " AND (%(after)s::text IS NULL OR device_id > %(after)s)"
        " ORDER BY device_id LIMIT %(limit)s",
        {"since": changed_since, "after": after_id, "limit": limit},
    ).fetchall()
    newest = max((r[-1] for r in rows), default=changed_since)
    return [_record(r[:-1]) for r in rows], newest
