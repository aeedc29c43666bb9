"""Stored lighting schedules: create, list, update, enable, delete, and their last firing."""

from collections.abc import Sequence
from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from hub.devices.lighting import (
    CommandAction,
    Schedule,
    SunEvent,
)

if TYPE_CHECKING:
    pass

from hub.store.lighting import Conn

_SCHEDULE_COLUMNS = (
    "schedule_id, name, target, action, params, at_local, sun_event, offset_min, enabled,"
    " last_fired_at"
)


def _schedule(row: Sequence[Any]) -> Schedule:
    return Schedule(
        schedule_id=int(row[0]),
        name=row[1],
        target=row[2],
        action=CommandAction(row[3]),
        params=dict(row[4] or {}),
        at_local=row[5],
        sun_event=None if row[6] is None else SunEvent(row[6]),
        offset_min=int(row[7]),
        enabled=bool(row[8]),
        last_fired_at=row[9],
    )


def insert_schedule(
    conn: Conn,
    *,
    name: str,
    target: str,
    action: CommandAction,
    params: dict[str, Any],
    at_local: time | None,
    sun_event: SunEvent | None,
    offset_min: int,
    enabled: bool = True,
) -> Schedule:
    """Store a schedule and return it with its id."""
    row = conn.execute(
        "INSERT INTO lighting_schedules (name, target, action, params, at_local, sun_event,"
        " offset_min, enabled) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {_SCHEDULE_COLUMNS}",
        (
            name,
            target,
            action.value,
            Jsonb(params),
            at_local,
            None if sun_event is None else sun_event.value,
            offset_min,
            enabled,
        ),
    ).fetchone()
    assert row is not None  # noqa: S101 - RETURNING of an INSERT always yields the row
    return _schedule(row)


def list_schedules(conn: Conn, *, enabled_only: bool = False) -> list[Schedule]:
    """Schedules by id."""
    clause = " WHERE enabled" if enabled_only else ""
    rows = conn.execute(
        f"SELECT {_SCHEDULE_COLUMNS} FROM lighting_schedules{clause} ORDER BY schedule_id"
    ).fetchall()
    return [_schedule(r) for r in rows]


def set_schedule_enabled(conn: Conn, schedule_id: int, enabled: bool) -> Schedule | None:
    """Switch a schedule on or off; None when there is no such schedule."""
    row = conn.execute(
        f"UPDATE lighting_schedules SET enabled = %s WHERE schedule_id = %s"
        f" RETURNING {_SCHEDULE_COLUMNS}",
        (enabled, schedule_id),
    ).fetchone()
    return None if row is None else _schedule(row)


def update_schedule(
    conn: Conn,
    schedule_id: int,
    *,
    name: str,
    target: str,
    action: CommandAction,
    params: dict[str, Any],
    at_local: time | None,
    sun_event: SunEvent | None,
    offset_min: int,
    enabled: bool,
) -> Schedule | None:
    """Replace a schedule's definition; None when there is no such schedule.

    A change of what or when it fires forgets its last firing, so the new definition is
    judged as a new schedule (it acts at once when its state should hold now).
    """
    row = conn.execute(
        "UPDATE lighting_schedules SET name = %(name)s, target = %(target)s,"
        " action = %(action)s, params = %(params)s, at_local = %(at_local)s,"
        " sun_event = %(sun_event)s, offset_min = %(offset_min)s, enabled = %(enabled)s,"
        " last_fired_at = CASE WHEN (target, action, params, at_local, sun_event, offset_min)"
        "   IS DISTINCT FROM (%(target)s, %(action)s, %(params)s, %(at_local)s::time,"
        "   %(sun_event)s, %(offset_min)s) THEN NULL ELSE last_fired_at END"
        f" WHERE schedule_id = %(id)s RETURNING {_SCHEDULE_COLUMNS}",
        {
            "id": schedule_id,
            "name": name,
            "target": target,
            "action": action.value,
            "params": Jsonb(params),
            "at_local": at_local,
            "sun_event": None if sun_event is None else sun_event.value,
            "offset_min": offset_min,
            "enabled": enabled,
        },
    ).fetchone()
    return None if row is None else _schedule(row)


def delete_schedule(conn: Conn, schedule_id: int) -> Schedule | None:
    """Remove a schedule (its fired commands stay in the history); None when there is none."""
    row = conn.execute(
        f"DELETE FROM lighting_schedules WHERE schedule_id = %s RETURNING {_SCHEDULE_COLUMNS}",
        (schedule_id,),
    ).fetchone()
    return None if row is None else _schedule(row)


def mark_schedule_fired(conn: Conn, schedule_id: int, fired_at: datetime) -> None:
    """Remember the instant a schedule fired for, so it fires once per instant."""
    conn.execute(
        "UPDATE lighting_schedules SET last_fired_at = %s WHERE schedule_id = %s",
        (fired_at, schedule_id),
    )
