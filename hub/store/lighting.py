"""Street lighting storage: commands and schedules, open faults, lighting rate and energy."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from hub.devices.kinds import Kind
from hub.devices.lighting import (
    CommandAction,
    CommandEffect,
    CommandState,
    ControlledDevice,
    OpenCommand,
    ReportedState,
    Schedule,
    SunEvent,
    expand_target,
    parse_dim_pct,
)
from hub.rules.alarm_changes import AlarmRecord
from hub.rules.crew_alerts import LIGHTING_ALARM_TYPES, AlertLocation
from hub.rules.lighting import IntentWindow, LightingIntent, night_windows
from hub.store.alarms import COLUMNS as ALARM_COLUMNS
from hub.store.alarms import record_from_row

if TYPE_CHECKING:
    from hub.store.database import Database

Conn = psycopg.Connection[tuple[Any, ...]]
Grouping = Literal["lamp", "cabinet", "district"]

_CABINET_OF = "coalesce(d.parent_id, d.attributes ->> 'cabinet_id')"


def fetch_controlled_devices(conn: Conn) -> list[ControlledDevice]:
    """Every lamp and cabinet with its cabinet, circuit and group."""
    rows = conn.execute(
        f"SELECT d.device_id, d.kind, {_CABINET_OF}, d.attributes ->> 'circuit_id',"
        " d.attributes ->> 'group', d.lat, d.lon FROM devices d"
        " WHERE d.kind IN ('lighting', 'cabinet') ORDER BY d.device_id"
    ).fetchall()
    return [
        ControlledDevice(r[0], Kind(r[1]), r[2], r[3], r[4], float(r[5]), float(r[6])) for r in rows
    ]


def fetch_location(conn: Conn, device_id: str) -> AlertLocation | None:
    """A device's place and names for a crew alert."""
    row = conn.execute(
        f"SELECT d.kind, d.lat, d.lon, d.name, d.grid_code, {_CABINET_OF},"
        " d.attributes ->> 'circuit_id' FROM devices d WHERE d.device_id = %s",
        (device_id,),
    ).fetchone()
    if row is None:
        return None
    return AlertLocation(Kind(row[0]), float(row[1]), float(row[2]), row[3], row[4], row[5], row[6])


# -- commands ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewCommand:
    """A command to store as pending."""

    command_id: str
    device_id: str
    kind: Kind
    action: CommandAction
    params: dict[str, Any]
    target: str
    request_id: str
    created_at: datetime
    expires_at: datetime
    max_attempts: int


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A stored command with its progress."""

    command_id: str
    device_id: str
    kind: str
    action: str
    params: dict[str, Any]
    state: str
    target: str
    request_id: str
    created_at: datetime
    expires_at: datetime
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None
    result: str | None
    detail: str | None
    acked_at: datetime | None = None
    effect: str | None = None
    effect_checked_at: datetime | None = None
    effect_evidence: dict[str, Any] | None = None


_COMMAND_COLUMNS = (
    "command_id, device_id, kind, action, params, state, target, request_id, created_at,"
    " expires_at, attempts, max_attempts, next_attempt_at, sent_at, finished_at, result, detail,"
    " acked_at, effect, effect_checked_at, effect_evidence"
)


def insert_commands(conn: Conn, commands: Sequence[NewCommand]) -> None:
    """Store new commands as pending, due at once."""
    conn.cursor().executemany(
        "INSERT INTO lighting_commands (command_id, device_id, kind, action, params, target,"
        " request_id, created_at, expires_at, max_attempts, next_attempt_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                c.command_id,
                c.device_id,
                c.kind.value,
                c.action.value,
                Jsonb(c.params),
                c.target,
                c.request_id,
                c.created_at,
                c.expires_at,
                c.max_attempts,
                c.created_at,
            )
            for c in commands
        ],
    )


def fetch_due_commands(conn: Conn, now: datetime, limit: int = 500) -> list[OpenCommand]:
    """Open commands that are due, expired, or answered, with their device's online state."""
    rows = conn.execute(
        "SELECT c.command_id, c.device_id, c.kind, c.action, c.params ->> 'dim_pct', c.state,"
        " c.created_at, c.expires_at, c.attempts, c.max_attempts, c.next_attempt_at,"
        # A stale retained `offline` loses to telemetry newer than it: the device is back.
        " CASE WHEN s.online IS FALSE AND (EXISTS (SELECT 1 FROM telemetry_lighting t"
        "   WHERE t.device_id = c.device_id AND t.ts > s.changed_at)"
        "  OR EXISTS (SELECT 1 FROM telemetry_cabinet t"
        "   WHERE t.device_id = c.device_id AND t.ts > s.changed_at)) THEN true"
        "  ELSE s.online END,"
        " a.result, a.detail"
        " FROM lighting_commands c"
        " LEFT JOIN device_status s ON s.device_id = c.device_id"
        " LEFT JOIN LATERAL (SELECT result, detail FROM command_acks k"
        "   WHERE k.device_id = c.device_id AND k.command_id = c.command_id"
        "   ORDER BY k.ts DESC LIMIT 1) a ON true"
        " WHERE c.state IN ('pending', 'sent')"
        "   AND (c.next_attempt_at <= %s OR c.expires_at <= %s OR a.result IS NOT NULL)"
        " ORDER BY c.next_attempt_at LIMIT %s",
        (now, now, limit),
    ).fetchall()
    return [
        OpenCommand(
            command_id=r[0],
            device_id=r[1],
            kind=Kind(r[2]),
            action=CommandAction(r[3]),
            dim_pct=None if r[4] is None else float(r[4]),
            state=CommandState(r[5]),
            created_at=r[6],
            expires_at=r[7],
            attempts=int(r[8]),
            max_attempts=int(r[9]),
            next_attempt_at=r[10],
            device_online=r[11],
            ack_result=r[12],
            ack_detail=r[13],
        )
        for r in rows
    ]


def mark_sent(conn: Conn, command_id: str, now: datetime, next_attempt_at: datetime) -> None:
    """Count one more attempt, sent now; look again at `next_attempt_at`."""
    conn.execute(
        "UPDATE lighting_commands SET state = 'sent', attempts = attempts + 1, sent_at = %s,"
        " next_attempt_at = %s WHERE command_id = %s AND state IN ('pending', 'sent')",
        (now, next_attempt_at, command_id),
    )


def finish_command(
    conn: Conn, command_id: str, state: CommandState, now: datetime, detail: str | None
) -> None:
    """Make an open command final: acked, failed or expired."""
    conn.execute(
        "UPDATE lighting_commands SET state = %s, finished_at = %s, result = %s, detail = %s,"
        " acked_at = CASE WHEN %s = 'acked' THEN %s END"
        " WHERE command_id = %s AND state IN ('pending', 'sent')",
        (state.value, now, state.value, detail, state.value, now, command_id),
    )


@dataclass(frozen=True, slots=True)
class UnjudgedCommand:
    """An acked command whose effect on the device's telemetry is not judged yet."""

    command_id: str
    device_id: str
    kind: Kind
    action: CommandAction
    dim_pct: float | None
    sent_at: datetime
    acked_at: datetime
    request_id: str


def fetch_unjudged_commands(conn: Conn, limit: int = 500) -> list[UnjudgedCommand]:
    """Acked commands not yet judged effective, not effective or unverified, oldest first."""
    rows = conn.execute(
        "SELECT command_id, device_id, kind, action, params ->> 'dim_pct',"
        " coalesce(sent_at, created_at), acked_at, request_id FROM lighting_commands"
        " WHERE state = 'acked' AND effect IS NULL AND acked_at IS NOT NULL"
        " ORDER BY acked_at LIMIT %s",
        (limit,),
    ).fetchall()
    return [
        UnjudgedCommand(
            r[0],
            r[1],
            Kind(r[2]),
            CommandAction(r[3]),
            None if r[4] is None else float(r[4]),
            r[5],
            r[6],
            r[7],
        )
        for r in rows
    ]


def fetch_reports_after(
    conn: Conn, kind: Kind, device_id: str, after: datetime, limit: int = 50
) -> list[ReportedState]:
    """The device's readings received after `after` (hub clock), oldest first."""
    if kind is Kind.CABINET:
        sql = (
            "SELECT ts, received_at, contactor_on, NULL::real, power_w FROM telemetry_cabinet"
            " WHERE device_id = %s AND received_at > %s ORDER BY received_at, ts LIMIT %s"
        )
    else:
        sql = (
            'SELECT ts, received_at, "on", dim_pct, power_w FROM telemetry_lighting'
            " WHERE device_id = %s AND received_at > %s ORDER BY received_at, ts LIMIT %s"
        )
    rows = conn.execute(sql, (device_id, after, limit)).fetchall()
    return [
        ReportedState(
            r[0],
            r[1],
            bool(r[2]),
            None if r[3] is None else float(r[3]),
            None if r[4] is None else float(r[4]),
        )
        for r in rows
    ]


def set_command_effect(
    conn: Conn, command_id: str, effect: CommandEffect, now: datetime, evidence: dict[str, Any]
) -> None:
    """Record whether an acked command took effect, with the readings that show it."""
    conn.execute(
        "UPDATE lighting_commands SET effect = %s, effect_checked_at = %s, effect_evidence = %s"
        " WHERE command_id = %s AND effect IS NULL",
        (effect.value, now, Jsonb(evidence), command_id),
    )


def list_commands(
    conn: Conn,
    *,
    device_id: str | None = None,
    request_id: str | None = None,
    state: CommandState | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[CommandRecord]:
    """Commands newest first, optionally of one device, one request or in one state."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("device_id", device_id), ("request_id", request_id), ("state", state)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(str(value))
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT {_COMMAND_COLUMNS} FROM lighting_commands{clause}"
        " ORDER BY created_at DESC, command_id LIMIT %s OFFSET %s",
        (*params, limit, offset),
    ).fetchall()
    return [CommandRecord(*r) for r in rows]


# -- schedules --------------------------------------------------------------------------

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


# -- faults, lighting rate, energy ------------------------------------------------------


def open_lighting_faults(conn: Conn) -> list[tuple[AlarmRecord, AlertLocation | None]]:
    """Open lighting alarms (and offline lamps and cabinets) with their source's location."""
    prefixed = ", ".join(f"a.{c.strip()}" for c in ALARM_COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT {prefixed}, d.kind, d.lat, d.lon, d.name, d.grid_code, {_CABINET_OF},"
        " d.attributes ->> 'circuit_id'"
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
                Kind(loc[0]), float(loc[1]), float(loc[2]), loc[3], loc[4], loc[5], loc[6]
            )
        )
        out.append((alarm, location))
    return out


@dataclass(frozen=True, slots=True)
class LightingRate:
    """亮灯率 of a district (None: the whole city) over a period."""

    district: str | None
    lamps: int
    due_samples: int
    lit_samples: int

    @property
    def rate_pct(self) -> float | None:
        """Lit over due readings, in percent; None when no lamp was due to be lit."""
        return None if self.due_samples == 0 else 100.0 * self.lit_samples / self.due_samples


RATE_NIGHT_MARGIN = timedelta(minutes=20)
"""Hours due at night begin this long after civil dusk and end this long before civil dawn
(as lit_by_day and dark_at_night judge): the switching around twilight is not counted."""
RATE_CELL_DIGITS = 1
"""Nights are computed per cell of this many decimal degrees (~10 km: dusk moves < 1 min)."""


def lighting_rates(
    conn: Conn, since: datetime, until: datetime, district_digits: int
) -> list[LightingRate]:
    """Lighting rate per district (grid code prefix) and for the city (district None, last).

    Due (the denominator) are the readings of every lamp that should be lit: reporting on
    (commanded or scheduled) or without supply, and — in hours wholly inside the night at
    the lamp's position, not covered by a commanded off or a lockout — reporting off with its
    supply live. Lit are the readings on and drawing more than 3 W.
    """
    cells = conn.execute(
        "SELECT DISTINCT round(lat::numeric, %s), round(lon::numeric, %s) FROM devices"
        " WHERE kind = 'lighting' AND lat IS NOT NULL AND lon IS NOT NULL",
        (RATE_CELL_DIGITS, RATE_CELL_DIGITS),
    ).fetchall()
    cell_lat: list[object] = []
    cell_lon: list[object] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    for lat, lon in cells:
        for begins, finishes in night_windows(
            float(lat), float(lon), since, until, RATE_NIGHT_MARGIN
        ):
            cell_lat.append(lat)
            cell_lon.append(lon)
            starts.append(begins)
            ends.append(finishes)
    district = f"left(d.grid_code, {int(district_digits)})"  # an int: safe to inline
    rows = conn.execute(
        "WITH nights AS ("
        "  SELECT * FROM unnest(%(clat)s::numeric[], %(clon)s::numeric[],"
        "   %(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS n(clat, clon, starts, ends)"
        "), intent AS ("
        "  SELECT device_id, created_at AS starts, next_at AS ends FROM ("
        "   SELECT device_id, action, params, created_at,"
        "    lead(created_at) OVER (PARTITION BY device_id ORDER BY created_at) AS next_at"
        "   FROM lighting_commands WHERE created_at < %(until)s"
        "    AND state NOT IN ('cancelled', 'superseded', 'failed', 'expired')) c"
        "  WHERE (action = 'off' OR (action = 'dim' AND (params ->> 'dim_pct')::float <= 0))"
        "   AND (next_at IS NULL OR next_at > %(since)s)"
        "  UNION ALL"
        "  SELECT unnest(device_ids), starts_at, least(ends_at, coalesce(cancelled_at, ends_at))"
        "  FROM lighting_lockouts WHERE starts_at < %(until)s AND ends_at > %(since)s"
        "), hours AS ("
        f"  SELECT {district} AS district, h.device_id, h.due_samples, h.lit_samples,"
        "   CASE WHEN EXISTS (SELECT 1 FROM nights n"
        f"      WHERE n.clat = round(d.lat::numeric, {RATE_CELL_DIGITS})"
        f"       AND n.clon = round(d.lon::numeric, {RATE_CELL_DIGITS})"
        "       AND n.starts <= h.bucket AND h.bucket + interval '1 hour' <= n.ends)"
        "    AND NOT EXISTS (SELECT 1 FROM intent i WHERE i.device_id = h.device_id"
        "       AND i.starts < h.bucket + interval '1 hour'"
        "       AND (i.ends IS NULL OR i.ends > h.bucket))"
        "   THEN h.dark_supplied_samples ELSE 0 END AS dark_due"
        "  FROM lighting_energy_hourly h JOIN devices d ON d.device_id = h.device_id"
        "  WHERE h.bucket >= %(since)s AND h.bucket < %(until)s"
        ")"
        " SELECT district, GROUPING(district), count(DISTINCT device_id),"
        " coalesce(sum(due_samples + dark_due), 0), coalesce(sum(lit_samples), 0)"
        " FROM hours GROUP BY GROUPING SETS ((district), ()) ORDER BY 2, 1",
        {
            "clat": cell_lat,
            "clon": cell_lon,
            "starts": starts,
            "ends": ends,
            "since": since,
            "until": until,
        },
    ).fetchall()
    return [
        LightingRate(None if r[1] else r[0], int(r[2]), int(r[3]), int(r[4]))
        for r in rows
        if r[1] or r[0] is not None
    ]


PLAUSIBLE_METER_KWH = 1e8
"""The highest lamp meter reading counted: 100 kW for a century is under 9e7 kWh. An hour whose
meter lies outside 0 … this (or is NaN or infinite) is left out of energy figures."""
MIN_SAVING_DIM_PCT = 1.0
"""Dim levels below 1 % count as 1 % in the saving: full power over a vanishing dim level is
no figure (100 / 1e-300 would dwarf the city's consumption)."""


@dataclass(frozen=True, slots=True)
class EnergyFigure:
    """Energy of a lamp, cabinet or district over a period, and what dimming saved."""

    key: str | None
    lamps: int
    energy_kwh: float
    saving_kwh: float
    implausible_hours: int = 0

    @property
    def full_power_kwh(self) -> float:
        """What the same lit hours would have cost undimmed."""
        return self.energy_kwh + self.saving_kwh


def energy_figures(
    conn: Conn, since: datetime, until: datetime, by: Grouping, district_digits: int = 9
) -> list[EnergyFigure]:
    """Lamp energy per lamp, cabinet or district, with the dimming saving, largest first.

    A lamp's energy is its meter's rise over the period; the saving of an hour is that
    hour's energy × (100 / mean lit dim % − 1), what full power would have added. Sums run
    in numeric, so no figure overflows; lamp-hours whose meter is beyond physical bounds
    (PLAUSIBLE_METER_KWH) are left out and counted in `implausible_hours`.
    """
    key = {
        "lamp": "d.device_id",
        "cabinet": _CABINET_OF,
        "district": f"left(d.grid_code, {int(district_digits)})",
    }[by]
    rows = conn.execute(
        "WITH hours AS ("
        "  SELECT h.device_id, h.energy_first_kwh::numeric AS first_kwh,"
        "   h.energy_last_kwh::numeric AS last_kwh, h.lit_dim_pct::numeric AS dim_pct,"
        # NaN sorts above every number in PostgreSQL, so it fails the upper bound.
        "   (h.energy_first_kwh >= 0 AND h.energy_last_kwh <= %(max_kwh)s) AS plausible"
        "  FROM lighting_energy_hourly h WHERE h.bucket >= %(since)s AND h.bucket < %(until)s),"
        " per_lamp AS ("
        "  SELECT device_id,"
        "   max(last_kwh) FILTER (WHERE plausible) - min(first_kwh) FILTER (WHERE plausible)"
        "    AS energy_kwh,"
        "   sum(CASE WHEN dim_pct > 0 THEN (last_kwh - first_kwh)"
        "       * (100 / greatest(dim_pct, %(min_dim)s) - 1) ELSE 0 END)"
        "    FILTER (WHERE plausible) AS saving_kwh,"
        "   count(*) FILTER (WHERE NOT plausible) AS implausible_hours"
        "  FROM hours GROUP BY device_id)"
        f" SELECT {key} AS key, count(*), coalesce(sum(p.energy_kwh), 0),"
        "  coalesce(sum(p.saving_kwh), 0), sum(p.implausible_hours)"
        " FROM per_lamp p JOIN devices d ON d.device_id = p.device_id"
        " GROUP BY 1 ORDER BY 3 DESC, 1",
        {
            "since": since,
            "until": until,
            "max_kwh": PLAUSIBLE_METER_KWH,
            "min_dim": MIN_SAVING_DIM_PCT,
        },
    ).fetchall()
    return [
        EnergyFigure(r[0], int(r[1]), round(float(r[2]), 4), round(float(r[3]), 4), int(r[4] or 0))
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One operator or schedule request, fanned out to one command per device."""

    request_id: str
    target: str
    action: CommandAction
    commands: tuple[NewCommand, ...]


def create_command_request(
    conn: Conn,
    *,
    target: str,
    action: CommandAction,
    params: dict[str, Any],
    now: datetime,
    ttl: timedelta,
    max_attempts: int,
    origin: str = "api",
    supersede: bool = True,
) -> CommandRequest:
    """Expand a target to its devices and store one pending command each.

    With `supersede`, the devices' older open commands become `superseded` first: they are
    never (re)sent, so a retry cannot overtake the newer command.

    Raise UnknownTargetError when the target names nothing, ValueError for a bad dim level.
    """
    parse_dim_pct(action, params)
    devices = expand_target(target, action, fetch_controlled_devices(conn))
    request_id = f"{origin}-{uuid.uuid4().hex[:12]}"
    commands = tuple(
        NewCommand(
            command_id=uuid.uuid4().hex,
            device_id=d.device_id,
            kind=d.kind,
            action=action,
            params=params,
            target=target,
            request_id=request_id,
            created_at=now,
            expires_at=now + ttl,
            max_attempts=max_attempts,
        )
        for d in devices
    )
    if supersede:
        conn.execute(
            "UPDATE lighting_commands SET state = 'superseded', finished_at = %s,"
            " result = 'superseded', detail = %s"
            " WHERE device_id = ANY(%s) AND state IN ('pending', 'sent')",
            (now, f"superseded by request {request_id}", [d.device_id for d in devices]),
        )
    insert_commands(conn, commands)
    return CommandRequest(request_id, target, action, commands)


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


class LightingIntentRefresher:
    """Reloads the rules' intent windows (called on the rules thread with the registry)."""

    def __init__(self, db: "Database", intent: LightingIntent) -> None:
        self._db = db
        self._intent = intent

    def refresh(self) -> int:
        """Swap in the current windows; how many devices have one."""
        with self._db.connection() as conn:
            windows = load_intent(conn, datetime.now(UTC))
        self._intent.replace(windows)
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


def cancel_command(conn: Conn, command_id: str, now: datetime) -> CommandRecord | None:
    """Cancel a pending or sent command (no resend); None when there is no such command.

    A command already final is returned unchanged: the caller tells the two apart by state.
    """
    conn.execute(
        "UPDATE lighting_commands SET state = 'cancelled', finished_at = %s,"
        " result = 'cancelled', detail = 'cancelled by an operator'"
        " WHERE command_id = %s AND state IN ('pending', 'sent')",
        (now, command_id),
    )
    row = conn.execute(
        f"SELECT {_COMMAND_COLUMNS} FROM lighting_commands WHERE command_id = %s", (command_id,)
    ).fetchone()
    return None if row is None else CommandRecord(*row)
