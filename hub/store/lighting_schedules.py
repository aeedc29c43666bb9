"""Stored lighting schedules (with their day rules and scene), calendars and scenes: create,
list, update, enable, delete, and a schedule's last firing.

A schedule row names its calendar and scene; they are resolved here, when schedules are
loaded, so the pure schedule functions see whole calendars and scenes.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from psycopg.types.json import Jsonb

from hub.devices.lighting import (
    CommandAction,
    Schedule,
    SunEvent,
)
from hub.devices.lighting_calendar import (
    Calendar,
    CalendarMode,
    CalendarSpec,
    DayRules,
    Scene,
    SceneSpec,
)
from hub.store.lighting import Conn

_SCHEDULE_COLUMNS = (
    "schedule_id, name, target, action, params, at_local, sun_event, offset_min, enabled,"
    " last_fired_at, weekdays, calendar, calendar_mode, scene"
)


class UnknownNameError(LookupError):
    """A schedule names a calendar or scene that does not exist."""


@dataclass(frozen=True, slots=True)
class DayRuleNames:
    """A schedule's day rules and scene as stored: by name."""

    weekdays: frozenset[int] = frozenset()
    calendar: str | None = None
    calendar_mode: CalendarMode = CalendarMode.ONLY
    scene: str | None = None


def list_calendars(conn: Conn) -> list[CalendarSpec]:
    """Every calendar by name."""
    rows = conn.execute("SELECT spec FROM lighting_calendars ORDER BY name").fetchall()
    return [CalendarSpec.model_validate(r[0]) for r in rows]


def list_scenes(conn: Conn) -> list[SceneSpec]:
    """Every scene by name."""
    rows = conn.execute("SELECT spec FROM lighting_scenes ORDER BY name").fetchall()
    return [SceneSpec.model_validate(r[0]) for r in rows]


def save_calendar(conn: Conn, spec: CalendarSpec) -> CalendarSpec:
    """Create or replace a calendar (schedules that use it follow the new days)."""
    conn.execute(
        "INSERT INTO lighting_calendars (name, spec) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec",
        (spec.name, Jsonb(spec.model_dump(mode="json"))),
    )
    return spec


def save_scene(conn: Conn, spec: SceneSpec) -> SceneSpec:
    """Create or replace a scene (schedules that apply it follow the new steps)."""
    conn.execute(
        "INSERT INTO lighting_scenes (name, spec) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec",
        (spec.name, Jsonb(spec.model_dump(mode="json"))),
    )
    return spec


def delete_calendar(conn: Conn, name: str) -> bool | None:
    """Remove a calendar: True, None when there is none, False while a schedule uses it."""
    return _delete_named(conn, "lighting_calendars", "calendar", name)


def delete_scene(conn: Conn, name: str) -> bool | None:
    """Remove a scene: True, None when there is none, False while a schedule applies it."""
    return _delete_named(conn, "lighting_scenes", "scene", name)


def _delete_named(conn: Conn, table: str, column: str, name: str) -> bool | None:
    used = conn.execute(
        f"SELECT 1 FROM lighting_schedules WHERE {column} = %s LIMIT 1",
        (name,),
    ).fetchone()
    if used is not None:
        return False
    row = conn.execute(
        f"DELETE FROM {table} WHERE name = %s RETURNING name",
        (name,),
    ).fetchone()
    return None if row is None else True


def _resolver(conn: Conn) -> "_Resolver":
    return _Resolver(
        {c.name: c.calendar() for c in list_calendars(conn)},
        {s.name: s.scene() for s in list_scenes(conn)},
    )


@dataclass(frozen=True, slots=True)
class _Resolver:
    calendars: dict[str, Calendar]
    scenes: dict[str, Scene]

    def check(self, names: DayRuleNames) -> None:
        """Raise UnknownNameError for a calendar or scene that does not exist."""
        if names.calendar is not None and names.calendar not in self.calendars:
            raise UnknownNameError(f"no calendar {names.calendar!r}")
        if names.scene is not None and names.scene not in self.scenes:
            raise UnknownNameError(f"no scene {names.scene!r}")

    def schedule(self, row: Sequence[Any]) -> Schedule:
        return _schedule(row, self)


def check_names(conn: Conn, names: DayRuleNames) -> None:
    """Raise UnknownNameError when the calendar or scene named does not exist."""
    _resolver(conn).check(names)


def day_rule_names(schedule: Schedule) -> DayRuleNames:
    """A loaded schedule's day rules and scene by name."""
    calendar = schedule.days.calendar
    return DayRuleNames(
        weekdays=schedule.days.weekdays,
        calendar=None if calendar is None else calendar.name,
        calendar_mode=schedule.days.mode,
        scene=None if schedule.scene is None else schedule.scene.name,
    )


def _schedule(row: Sequence[Any], names: _Resolver) -> Schedule:
    calendar = None if row[11] is None else names.calendars.get(row[11])
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
        days=DayRules(frozenset(row[10] or ()), calendar, CalendarMode(row[12])),
        scene=None if row[13] is None else names.scenes.get(row[13]),
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
    rules: DayRuleNames = DayRuleNames(),
) -> Schedule:
    """Store a schedule and return it with its id; UnknownNameError for a calendar or scene
    that does not exist."""
    names = _resolver(conn)
    names.check(rules)
    row = conn.execute(
        "INSERT INTO lighting_schedules (name, target, action, params, at_local, sun_event,"
        " offset_min, enabled, weekdays, calendar, calendar_mode, scene)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
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
            sorted(rules.weekdays),
            rules.calendar,
            rules.calendar_mode.value,
            rules.scene,
        ),
    ).fetchone()
    assert row is not None  # noqa: S101 - RETURNING of an INSERT always yields the row
    return names.schedule(row)


def list_schedules(conn: Conn, *, enabled_only: bool = False) -> list[Schedule]:
    """Schedules by id."""
    clause = " WHERE enabled" if enabled_only else ""
    rows = conn.execute(
        f"SELECT {_SCHEDULE_COLUMNS} FROM lighting_schedules{clause} ORDER BY schedule_id"
    ).fetchall()
    names = _resolver(conn) if rows else _Resolver({}, {})
    return [names.schedule(r) for r in rows]


def set_schedule_enabled(conn: Conn, schedule_id: int, enabled: bool) -> Schedule | None:
    """Switch a schedule on or off; None when there is no such schedule."""
    row = conn.execute(
        f"UPDATE lighting_schedules SET enabled = %s WHERE schedule_id = %s"
        f" RETURNING {_SCHEDULE_COLUMNS}",
        (enabled, schedule_id),
    ).fetchone()
    return None if row is None else _resolver(conn).schedule(row)


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
    rules: DayRuleNames = DayRuleNames(),
) -> Schedule | None:
    """Replace a schedule's definition; None when there is no such schedule, UnknownNameError
    for a calendar or scene that does not exist.

    A change of what or when it fires forgets its last firing, so the new definition is
    judged as a new schedule (it acts at once when its state should hold now).
    """
    names = _resolver(conn)
    names.check(rules)
    row = conn.execute(
        "UPDATE lighting_schedules SET name = %(name)s, target = %(target)s,"
        " action = %(action)s, params = %(params)s, at_local = %(at_local)s,"
        " sun_event = %(sun_event)s, offset_min = %(offset_min)s, enabled = %(enabled)s,"
        " weekdays = %(weekdays)s, calendar = %(calendar)s, calendar_mode = %(mode)s,"
        " scene = %(scene)s,"
        " last_fired_at = CASE WHEN (target, action, params, at_local, sun_event, offset_min,"
        "   weekdays, calendar, calendar_mode, scene)"
        "   IS DISTINCT FROM (%(target)s, %(action)s, %(params)s, %(at_local)s::time,"
        "   %(sun_event)s, %(offset_min)s, %(weekdays)s::smallint[], %(calendar)s, %(mode)s,"
        "   %(scene)s) THEN NULL ELSE last_fired_at END"
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
            "weekdays": sorted(rules.weekdays),
            "calendar": rules.calendar,
            "mode": rules.calendar_mode.value,
            "scene": rules.scene,
        },
    ).fetchone()
    return None if row is None else names.schedule(row)


def delete_schedule(conn: Conn, schedule_id: int) -> Schedule | None:
    """Remove a schedule (its fired commands stay in the history); None when there is none."""
    row = conn.execute(
        f"DELETE FROM lighting_schedules WHERE schedule_id = %s RETURNING {_SCHEDULE_COLUMNS}",
        (schedule_id,),
    ).fetchone()
    return None if row is None else _resolver(conn).schedule(row)


def mark_schedule_fired(conn: Conn, schedule_id: int, fired_at: datetime) -> None:
    """Remember the instant a schedule fired for, so it fires once per instant."""
    conn.execute(
        "UPDATE lighting_schedules SET last_fired_at = %s WHERE schedule_id = %s",
        (fired_at, schedule_id),
    )
