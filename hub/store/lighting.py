"""Street lighting storage: the lamps and cabinets under control, open faults with their
place, and the operators' intent (commanded off, maintenance lockouts) the rules read.

Commands live in hub/store/lighting_commands.py, schedules in lighting_schedules.py,
亮灯率, energy and lamp life in lighting_energy.py.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from hub.devices.kinds import Kind
from hub.devices.lighting import (
    CommandAction,
    ControlledDevice,
    expand_target,
)
from hub.rules.alarm_changes import AlarmRecord
from hub.rules.crew_alerts import (
    ASSET_ATTRIBUTES,
    LIGHTING_ALARM_TYPES,
    AlertLocation,
    CaseAssignment,
)
from hub.rules.lighting_context import IntentWindow, LightingIntent
from hub.store.alarms import COLUMNS as ALARM_COLUMNS
from hub.store.alarms import record_from_row

if TYPE_CHECKING:
    from hub.store.database import Database


Conn = psycopg.Connection[tuple[Any, ...]]

CABINET_OF_SQL = "coalesce(d.parent_id, d.attributes ->> 'cabinet_id')"
"""A lamp's cabinet: its registry parent, else its `cabinet_id` attribute."""


def fetch_controlled_devices(conn: Conn) -> list[ControlledDevice]:
    """Every lamp and cabinet with its cabinet, circuit and group."""
    rows = conn.execute(
        f"SELECT d.device_id, d.kind, {CABINET_OF_SQL}, d.attributes ->> 'circuit_id',"
        " d.attributes ->> 'group', d.lat, d.lon FROM devices d"
        " WHERE d.kind IN ('lighting', 'cabinet') ORDER BY d.device_id"
    ).fetchall()
    return [
        ControlledDevice(r[0], Kind(r[1]), r[2], r[3], r[4], float(r[5]), float(r[6])) for r in rows
    ]


def fetch_location(conn: Conn, device_id: str) -> AlertLocation | None:
    """A device's place, names and asset record (ASSET_ATTRIBUTES it has) for a crew alert."""
    row = conn.execute(
        f"SELECT d.kind, d.lat, d.lon, d.name, d.grid_code, {CABINET_OF_SQL},"
        " d.attributes ->> 'circuit_id', d.attributes FROM devices d WHERE d.device_id = %s",
        (device_id,),
    ).fetchone()
    if row is None:
        return None
    return AlertLocation(
        Kind(row[0]), float(row[1]), float(row[2]), row[3], row[4], row[5], row[6], _asset(row[7])
    )


def _asset(attributes: dict[str, Any] | None) -> dict[str, object]:
    found = attributes or {}
    return {key: found[key] for key in ASSET_ATTRIBUTES if found.get(key) not in (None, "")}


# -- faults -----------------------------------------------------------------------------


def fetch_case_assignments(
    conn: Conn, after: datetime, until: datetime, limit: int = 500
) -> list[tuple[AlarmRecord, CaseAssignment]]:
    """Lighting alarms whose case was dispatched in (after, until], oldest dispatch first."""
    prefixed = ", ".join(f"a.{c.strip()}" for c in ALARM_COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT {prefixed}, c.id, c.case_number, c.status, c.department, c.dispatched_at"
        " FROM cases c JOIN alarms a ON a.case_id = c.id"
        " LEFT JOIN devices d ON d.device_id = a.source_id"
        " WHERE c.dispatched_at > %s AND c.dispatched_at <= %s AND (a.alarm_type = ANY(%s)"
        "   OR (a.alarm_type = 'offline' AND d.kind IN ('lighting', 'cabinet')))"
        " ORDER BY c.dispatched_at, a.id LIMIT %s",
        (after, until, [t.value for t in LIGHTING_ALARM_TYPES], limit),
    ).fetchall()
    width = len(ALARM_COLUMNS.split(","))
    return [
        (record_from_row(r[:width]), CaseAssignment(int(r[width]), *r[width + 1 : width + 5]))
        for r in rows
    ]


def open_lighting_faults(conn: Conn) -> list[tuple[AlarmRecord, AlertLocation | None]]:
    """Open lighting alarms (and offline lamps and cabinets) with their source's location."""
    prefixed = ", ".join(f"a.{c.strip()}" for c in ALARM_COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT {prefixed}, d.kind, d.lat, d.lon, d.name, d.grid_code, {CABINET_OF_SQL},"
        " d.attributes ->> 'circuit_id', d.attributes"
        " FROM alarms a LEFT JOIN devices d ON d.device_id = a.source_id"
        " WHERE a.state <> 'cleared' AND (a.alarm_type = ANY(%s)"
        "   OR (a.alarm_type = 'offline' AND d.kind IN ('lighting', 'cabinet')))",
        ([t.value for t in LIGHTING_ALARM_TYPES],),
    ).fetchall()
    width = len(ALARM_COLUMNS.split(","))
    out: list[tuple[AlarmRecord, AlertLocation | None]] = []
    for row in rows:
        alarm = record_from_row(row[:width])
        loc = row[width:]
        location = (
            None
            if loc[0] is None
            else AlertLocation(
                Kind(loc[0]),
                float(loc[1]),
                float(loc[2]),
                loc[3],
                loc[4],
                loc[5],
                loc[6],
                _asset(loc[7]),
            )
        )
        out.append((alarm, location))
    return out


# -- intent: commanded off and maintenance lockouts ---------------------------------------


INTENT_LOOKBACK = timedelta(days=2)
"""How far back commanded-off windows are loaded (an off older than this has been followed by
a newer command, or by the dusk/dawn switching, in practice)."""


def load_intent(conn: Conn, now: datetime) -> dict[str, tuple[IntentWindow, ...]]:
    """Per device: windows it is meant to be dark (an off until the next command; lockouts)."""
    windows: dict[str, list[IntentWindow]] = {}
    rows = conn.execute(
        "SELECT device_id, command_id, created_at, next_at FROM ("
        "  SELECT device_id, command_id, action, params, created_at,"
        "   lead(created_at) OVER (PARTITION BY device_id ORDER BY created_at) AS next_at"
        "  FROM lighting_commands WHERE created_at > %s"
        "   AND state NOT IN ('cancelled', 'superseded', 'failed', 'expired')) c"
        " WHERE action = 'off' OR (action = 'dim' AND (params ->> 'dim_pct')::float <= 0)",
        (now - INTENT_LOOKBACK,),
    ).fetchall()
    for device_id, command_id, starts_at, ends_at in rows:
        windows.setdefault(device_id, []).append(
            IntentWindow(starts_at, ends_at, f"command {command_id}")
        )
    rows = conn.execute(
        "SELECT lockout_id, device_ids, starts_at, least(ends_at, coalesce(cancelled_at, ends_at))"
        " FROM lighting_lockouts WHERE ends_at > %s",
        (now - INTENT_LOOKBACK,),
    ).fetchall()
    for lockout_id, device_ids, starts_at, ends_at in rows:
        for device_id in device_ids:
            windows.setdefault(device_id, []).append(
                IntentWindow(starts_at, ends_at, f"lockout {lockout_id}")
            )
    return {device_id: tuple(found) for device_id, found in windows.items()}


def intent_by_cabinet(
    conn: Conn, windows: dict[str, tuple[IntentWindow, ...]]
) -> dict[str, tuple[IntentWindow, ...]]:
    """Per cabinet, the windows of its lamps (a circuit locked out or commanded off)."""
    if not windows:
        return {}
    rows = conn.execute(
        f"SELECT d.device_id, {CABINET_OF_SQL} FROM devices d"
        " WHERE d.kind = 'lighting' AND d.device_id = ANY(%s)",
        (list(windows),),
    ).fetchall()
    inside: dict[str, list[IntentWindow]] = {}
    for lamp, cabinet in rows:
        if cabinet is not None:
            inside.setdefault(cabinet, []).extend(windows[lamp])
    return {cabinet: tuple(found) for cabinet, found in inside.items()}


class LightingIntentRefresher:
    """Reloads the rules' intent windows (called on the rules thread with the registry)."""

    def __init__(self, db: "Database", intent: LightingIntent) -> None:
        self._db = db
        self._intent = intent

    def refresh(self) -> int:
        """Swap in the current windows; how many devices have one."""
        with self._db.connection() as conn:
            windows = load_intent(conn, datetime.now(UTC))
            inside = intent_by_cabinet(conn, windows)
        self._intent.replace(windows, inside)
        return len(windows)


@dataclass(frozen=True, slots=True)
class Lockout:
    """A crew's maintenance lockout on a lamp, circuit, cabinet or group for a time window."""

    lockout_id: int
    target: str
    device_ids: list[str]
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_at: datetime
    cancelled_at: datetime | None


_LOCKOUT_COLUMNS = (
    "lockout_id, target, device_ids, starts_at, ends_at, reason, created_at, cancelled_at"
)


def insert_lockout(
    conn: Conn, *, target: str, starts_at: datetime, ends_at: datetime, reason: str, now: datetime
) -> Lockout:
    """Lock out the target's devices (a cabinet: itself and its lamps); UnknownTargetError."""
    devices = fetch_controlled_devices(conn)
    chosen = {d.device_id for d in expand_target(target, CommandAction.OFF, devices)}
    chosen |= {d.device_id for d in devices if d.cabinet_id in chosen}
    row = conn.execute(
        "INSERT INTO lighting_lockouts (target, device_ids, starts_at, ends_at, reason, created_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_LOCKOUT_COLUMNS}",
        (target, sorted(chosen), starts_at, ends_at, reason, now),
    ).fetchone()
    assert row is not None  # noqa: S101 - RETURNING of an INSERT always yields the row
    return Lockout(*row)


def list_lockouts(conn: Conn, *, current_at: datetime | None = None) -> list[Lockout]:
    """Lockouts newest first; with `current_at`, only those holding or still to come."""
    clause = ""
    params: tuple[Any, ...] = ()
    if current_at is not None:
        clause = " WHERE cancelled_at IS NULL AND ends_at > %s"
        params = (current_at,)
    rows = conn.execute(
        f"SELECT {_LOCKOUT_COLUMNS} FROM lighting_lockouts{clause} ORDER BY lockout_id DESC",
        params,
    ).fetchall()
    return [Lockout(*r) for r in rows]


def cancel_lockout(conn: Conn, lockout_id: int, now: datetime) -> Lockout | None:
    """End a lockout now; None when there is no such lockout."""
    row = conn.execute(
        "UPDATE lighting_lockouts SET cancelled_at = coalesce(cancelled_at, %s)"
        f" WHERE lockout_id = %s RETURNING {_LOCKOUT_COLUMNS}",
        (now, lockout_id),
    ).fetchone()
    return None if row is None else Lockout(*row)
