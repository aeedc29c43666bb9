"""Stored lighting commands: one per device and request, their progress, effect and cancel."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from hub.devices.kinds import Kind
from hub.devices.lighting import (
    CommandAction,
    CommandEffect,
    CommandState,
    OpenCommand,
    ReportedState,
    expand_target,
    parse_dim_pct,
)
from hub.store.lighting import Conn, fetch_controlled_devices


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
