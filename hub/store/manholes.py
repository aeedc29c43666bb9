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
    """A baseline the cover was given (at install) or asked to take (a recalibrate command)."""

    device_id: str
    baseline_tilt_deg: float
    previous_tilt_deg: float | None
    source: str
    reading_ts: datetime | None
    actor_id: str | None
    calibrated_at: datetime
    command_id: str | None = None
    state: str = "applied"
    attempts: int = 0
    sent_at: datetime | None = None
    expires_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class PendingRecalibration:
    """A recalibrate command not settled yet, with the cover's newest answer to it."""

    command_id: str
    device_id: str
    baseline_tilt_deg: float
    attempts: int
    sent_at: datetime | None
    expires_at: datetime
    ack_result: str | None
    ack_detail: str | None


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


def request_recalibration(
    conn: Conn,
    device_id: str,
    *,
    command_id: str,
    expires_at: datetime,
    baseline_tilt_deg: float | None = None,
    actor_id: str | None = None,
) -> Calibration | None:
    """Record a recalibrate command (baseline given, or the newest reported tilt); None if
    not a cover.

    The baseline is not changed yet: the command is sent to the cover and the baseline
    becomes the registry attribute the tilt rule reads once the cover acknowledges it.
    """
    row = conn.execute(
        "SELECT (attributes ->> 'baseline_tilt_deg')::double precision FROM devices"
        " WHERE device_id = %s AND kind = 'manhole'",
        (device_id,),
    ).fetchone()
    if row is None:
        return None
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
    saved = conn.execute(
        "INSERT INTO manhole_calibrations (device_id, baseline_tilt_deg, previous_tilt_deg,"
        " source, reading_ts, actor_id, command_id, state, expires_at)"
        " VALUES (%s, %s, %s, 'recalibrate', %s, %s, %s, 'pending', %s)"
        f" RETURNING {_CALIBRATION_COLUMNS}",
        (
            device_id,
            round(float(baseline_tilt_deg), 2),
            row[0],
            reading_ts,
            actor_id,
            command_id,
            expires_at,
        ),
    ).fetchone()
    if saved is None:
        raise RuntimeError("INSERT … RETURNING gave no row")
    return _calibration(saved)


def fetch_pending_recalibrations(conn: Conn, limit: int = 500) -> list[PendingRecalibration]:
    """Recalibrate commands still pending, oldest first, with the cover's newest ack."""
    rows = conn.execute(
        "SELECT c.command_id, c.device_id, c.baseline_tilt_deg, c.attempts, c.sent_at,"
        " c.expires_at, k.result, k.detail FROM manhole_calibrations c"
        " LEFT JOIN LATERAL (SELECT result, detail FROM command_acks k"
        "   WHERE k.device_id = c.device_id AND k.command_id = c.command_id"
        "   ORDER BY k.ts DESC LIMIT 1) k ON true"
        " WHERE c.state = 'pending' ORDER BY c.calibrated_at, c.id LIMIT %s",
        (limit,),
    ).fetchall()
    return [
        PendingRecalibration(r[0], r[1], float(r[2]), int(r[3]), r[4], r[5], r[6], r[7])
        for r in rows
    ]


def mark_recalibration_sent(conn: Conn, command_id: str, now: datetime) -> None:
    """Count one more delivery of the command to the cover."""
    conn.execute(
        "UPDATE manhole_calibrations SET attempts = attempts + 1, sent_at = %s"
        " WHERE command_id = %s AND state = 'pending'",
        (now, command_id),
    )


def apply_recalibration(conn: Conn, command_id: str, now: datetime) -> bool:
    """The cover acknowledged: its baseline becomes the registry attribute; False if settled."""
    row = conn.execute(
        "UPDATE manhole_calibrations SET state = 'applied', finished_at = %s"
        " WHERE command_id = %s AND state = 'pending' RETURNING device_id, baseline_tilt_deg",
        (now, command_id),
    ).fetchone()
    if row is None:
        return False
    conn.execute(
        "UPDATE devices SET attributes = attributes || %s, updated_at = now() WHERE device_id = %s",
        (Jsonb({"baseline_tilt_deg": round(float(row[1]), 2)}), row[0]),
    )
    return True


def finish_recalibration(
    conn: Conn, command_id: str, state: str, now: datetime, detail: str | None
) -> None:
    """Close a command that will not change the baseline: `failed` or `expired`."""
    if state not in ("failed", "expired"):
        raise ValueError(f"not a final state without a baseline change: {state}")
    conn.execute(
        "UPDATE manhole_calibrations SET state = %s, finished_at = %s, detail = %s"
        " WHERE command_id = %s AND state = 'pending'",
        (state, now, detail, command_id),
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


_CALIBRATION_COLUMNS = (
    "device_id, baseline_tilt_deg, previous_tilt_deg, source, reading_ts, actor_id,"
    " calibrated_at, command_id, state, attempts, sent_at, expires_at, finished_at, detail"
)


def _calibration(r: tuple[Any, ...]) -> Calibration:
    return Calibration(
        r[0],
        float(r[1]),
        None if r[2] is None else float(r[2]),
        r[3],
        r[4],
        r[5],
        r[6],
        r[7],
        r[8],
        int(r[9]),
        r[10],
        r[11],
        r[12],
        r[13],
    )


def list_calibrations(conn: Conn, device_id: str) -> list[Calibration]:
    """A cover's baselines and recalibrate commands, newest first."""
    rows = conn.execute(
        f"SELECT {_CALIBRATION_COLUMNS} FROM manhole_calibrations WHERE device_id = %s"
        " ORDER BY calibrated_at DESC, id DESC",
        (device_id,),
    ).fetchall()
    return [_calibration(r) for r in rows]
