"""Manhole covers: status (newest reading, baseline, open alarms) and tilt baseline calibration."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class CoverStatus:
    """One cover as an operator sees it: where, whose, baseline, newest reading, open alarms."""

    device_id: str
    lat: float
    lon: float
    grid_code: str | None
    class_code: str | None
    department: str | None
    cover_type: str | None
    road_class: str | None
    baseline_tilt_deg: float | None
    last_ts: datetime | None
    tilt_deg: float | None
    cover_open: bool | None
    water_level_cm: float | None
    battery_pct: float | None
    rssi_dbm: float | None
    open_alarms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Calibration:
    """A baseline the cover was given: at install or by a recalibration."""

    device_id: str
    baseline_tilt_deg: float
    previous_tilt_deg: float | None
    source: str
    reading_ts: datetime | None
    actor_id: str | None
    calibrated_at: datetime


class NoReadingError(LookupError):
    """A recalibration from the newest reading, but the cover has never reported."""


def list_covers(
    conn: Conn,
    *,
    device_id: str | None = None,
    alarm_type: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[CoverStatus]:
    """Covers by id with their newest reading and open alarm types (optionally with one open)."""
    query = (
        "SELECT d.device_id, d.lat, d.lon, d.grid_code, d.class_code, d.department,"
        " d.attributes ->> 'cover_type', d.attributes ->> 'road_class',"
        " (d.attributes ->> 'baseline_tilt_deg')::double precision,"
        " t.ts, t.tilt_deg, t.cover_open, t.water_level_cm, t.battery_pct, t.rssi_dbm,"
        " coalesce(a.types, '{}')"
        " FROM devices d"
        " LEFT JOIN LATERAL (SELECT ts, tilt_deg, cover_open, water_level_cm, battery_pct,"
        "   rssi_dbm FROM telemetry_manhole m WHERE m.device_id = d.device_id"
        "   ORDER BY ts DESC LIMIT 1) t ON true"
        " LEFT JOIN LATERAL (SELECT array_agg(alarm_type ORDER BY alarm_type) AS types"
        "   FROM alarms WHERE source_id = d.device_id AND state <> 'cleared') a ON true"
        " WHERE d.kind = 'manhole'"
    )
    params: list[Any] = []
    if device_id is not None:
        query += " AND d.device_id = %s"
        params.append(device_id)
    if alarm_type is not None:
        query += " AND %s = ANY(a.types)"
        params.append(alarm_type)
    query += " ORDER BY d.device_id LIMIT %s OFFSET %s"
    params.extend((limit, offset))
    return [
        CoverStatus(
            device_id=r[0],
            lat=float(r[1]),
            lon=float(r[2]),
            grid_code=r[3],
            class_code=r[4],
            department=r[5],
            cover_type=r[6],
            road_class=r[7],
            baseline_tilt_deg=r[8],
            last_ts=r[9],
            tilt_deg=r[10],
            cover_open=r[11],
            water_level_cm=r[12],
            battery_pct=r[13],
            rssi_dbm=r[14],
            open_alarms=tuple(r[15]),
        )
        for r in conn.execute(query, params).fetchall()
    ]


def recalibrate(
    conn: Conn,
    device_id: str,
    *,
    baseline_tilt_deg: float | None = None,
    actor_id: str | None = None,
) -> Calibration | None:
    """Set a cover's tilt baseline (given, or its newest reading's tilt); None if not a cover.

    The registry attribute is what the tilt rule reads; the hub picks the change up with its
    next registry refresh. Every baseline is kept in `manhole_calibrations`.
    """
    row = conn.execute(
        "SELECT (attributes ->> 'baseline_tilt_deg')::double precision FROM devices"
        " WHERE device_id = %s AND kind = 'manhole' FOR UPDATE",
        (device_id,),
    ).fetchone()
    if row is None:
        return None
    previous = row[0]
    reading_ts: datetime | None = None
    if baseline_tilt_deg is None:
        latest = conn.execute(
            "SELECT tilt_deg, ts FROM telemetry_manhole WHERE device_id = %s"
            " ORDER BY ts DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        if latest is None:
            raise NoReadingError(f"cover {device_id} has not reported a tilt yet")
        baseline_tilt_deg, reading_ts = float(latest[0]), latest[1]
    baseline = round(float(baseline_tilt_deg), 2)
    conn.execute(
        "UPDATE devices SET attributes = attributes || %s, updated_at = now() WHERE device_id = %s",
        (Jsonb({"baseline_tilt_deg": baseline}), device_id),
    )
    saved = conn.execute(
        "INSERT INTO manhole_calibrations (device_id, baseline_tilt_deg, previous_tilt_deg,"
        " source, reading_ts, actor_id) VALUES (%s, %s, %s, 'recalibrate', %s, %s)"
        " RETURNING calibrated_at",
        (device_id, baseline, previous, reading_ts, actor_id),
    ).fetchone()
    calibrated_at = saved[0] if saved is not None else None
    if calibrated_at is None:
        raise RuntimeError("INSERT … RETURNING gave no row")
    return Calibration(
        device_id, baseline, previous, "recalibrate", reading_ts, actor_id, calibrated_at
    )


def record_install_baselines(conn: Conn) -> int:
    """Record the imported baseline of every cover that has no calibration yet (at install)."""
    cursor = conn.execute(
        "INSERT INTO manhole_calibrations (device_id, baseline_tilt_deg, source)"
        " SELECT device_id, (attributes ->> 'baseline_tilt_deg')::real, 'install' FROM devices d"
        " WHERE kind = 'manhole' AND attributes ? 'baseline_tilt_deg'"
        " AND NOT EXISTS (SELECT 1 FROM manhole_calibrations c WHERE c.device_id = d.device_id)"
    )
    return cursor.rowcount


def list_calibrations(conn: Conn, device_id: str) -> list[Calibration]:
    """A cover's baselines, newest first."""
    rows = conn.execute(
        "SELECT device_id, baseline_tilt_deg, previous_tilt_deg, source, reading_ts, actor_id,"
        " calibrated_at FROM manhole_calibrations WHERE device_id = %s"
        " ORDER BY calibrated_at DESC, id DESC",
        (device_id,),
    ).fetchall()
    return [
        Calibration(
            r[0], float(r[1]), None if r[2] is None else float(r[2]), r[3], r[4], r[5], r[6]
        )
        for r in rows
    ]
