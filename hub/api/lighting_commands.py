"""Lighting control for crews: commands (send, list, cancel) and maintenance lockouts."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from hub.api.app import DbDep
from hub.api.schemas import Int64, Offset
from hub.devices.lighting import (
    CommandAction,
    CommandState,
    UnknownTargetError,
    schedule_params,
)
from hub.store import lighting as store
from hub.store import lighting_commands as command_store

router = APIRouter()

_DEFAULT_TTL = timedelta(hours=1)
_DEFAULT_ATTEMPTS = 3


# -- commands ----------------------------------------------------------------------------


class CommandIn(BaseModel):
    """On, off or dim for a lamp, circuit, `group:<name>`, cabinet or `all`."""

    model_config = {"extra": "forbid"}

    target: str = Field(min_length=1, max_length=100)
    action: CommandAction
    dim_pct: float | None = Field(default=None, ge=0, le=100)
    ttl_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    max_attempts: int | None = Field(default=None, ge=1, le=20)


class RequestOut(BaseModel):
    """A request and the commands it fanned out to."""

    request_id: str
    target: str
    action: CommandAction
    commands: list[command_store.CommandRecord]


def _defaults(request: Request) -> tuple[timedelta, int]:
    found: tuple[timedelta, int] | None = getattr(
        request.app.state, "lighting_command_defaults", None
    )
    return found or (_DEFAULT_TTL, _DEFAULT_ATTEMPTS)


@router.post("/commands", response_model=RequestOut, status_code=status.HTTP_201_CREATED)
def create_commands(db: DbDep, request: Request, body: CommandIn) -> RequestOut:
    """Queue on/off/dim for every device of the target; sent while each device is reachable."""
    ttl, attempts = _defaults(request)
    try:
        params = schedule_params(body.action, body.dim_pct)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    now = datetime.now(UTC)
    try:
        with db.connection() as conn:
            created = command_store.create_command_request(
                conn,
                target=body.target,
                action=body.action,
                params=params,
                now=now,
                ttl=timedelta(seconds=body.ttl_s) if body.ttl_s else ttl,
                max_attempts=body.max_attempts or attempts,
            )
            rows = command_store.list_commands(conn, request_id=created.request_id, limit=100_000)
    except UnknownTargetError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    return RequestOut(
        request_id=created.request_id,
        target=created.target,
        action=created.action,
        commands=list(rows),
    )


@router.get("/commands", response_model=list[command_store.CommandRecord])
def list_commands(
    db: DbDep,
    device_id: str | None = None,
    request_id: str | None = None,
    state: CommandState | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Offset = 0,
) -> list[command_store.CommandRecord]:
    """Commands, newest first, by device, request or state."""
    with db.connection() as conn:
        rows = command_store.list_commands(
            conn,
            device_id=device_id,
            request_id=request_id,
            state=state,
            limit=limit,
            offset=offset,
        )
    return list(rows)


@router.get("/devices/{device_id}/commands", response_model=list[command_store.CommandRecord])
def device_commands(
    db: DbDep, device_id: str, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[command_store.CommandRecord]:
    """A lamp's or cabinet's command history, newest first."""
    with db.connection() as conn:
        rows = command_store.list_commands(conn, device_id=device_id, limit=limit)
    return list(rows)


@router.delete("/commands/{command_id}", response_model=command_store.CommandRecord)
def cancel_command(db: DbDep, command_id: str) -> command_store.CommandRecord:
    """Cancel a pending (or sent, unanswered) command so it is never sent again (idempotent);
    409 when it already ended otherwise (acked, failed, expired, superseded)."""
    with db.connection() as conn:
        found = command_store.cancel_command(conn, command_id, datetime.now(UTC))
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no command {command_id}")
    if found.state != CommandState.CANCELLED.value:
        raise HTTPException(status.HTTP_409_CONFLICT, f"command {command_id} is {found.state}")
    return found


# -- maintenance lockouts ----------------------------------------------------------------


class LockoutIn(BaseModel):
    """Keep a lamp, circuit, cabinet or group out of fault judgement for a window."""

    model_config = {"extra": "forbid"}

    target: str = Field(min_length=1, max_length=100)
    starts_at: datetime | None = None
    ends_at: datetime
    reason: str = Field(default="", max_length=500)


@router.post("/lockouts", response_model=store.Lockout, status_code=status.HTTP_201_CREATED)
def create_lockout(db: DbDep, body: LockoutIn) -> store.Lockout:
    """Lock out a target from now (or `starts_at`) until `ends_at`: its dark lamps, open
    contactor and dark circuits raise nothing meanwhile."""
    now = datetime.now(UTC)
    starts_at = body.starts_at or now
    if body.ends_at <= starts_at:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "ends_at must follow starts_at")
    try:
        with db.connection() as conn:
            return store.insert_lockout(
                conn,
                target=body.target,
                starts_at=starts_at,
                ends_at=body.ends_at,
                reason=body.reason,
                now=now,
            )
    except UnknownTargetError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err


@router.get("/lockouts", response_model=list[store.Lockout])
def list_lockouts(db: DbDep, current: bool = True) -> list[store.Lockout]:
    """Lockouts holding or to come (all with `current=false`), newest first."""
    with db.connection() as conn:
        return store.list_lockouts(conn, current_at=datetime.now(UTC) if current else None)


@router.delete("/lockouts/{lockout_id}", response_model=store.Lockout)
def end_lockout(db: DbDep, lockout_id: Int64) -> store.Lockout:
    """End a lockout now: normal judgement resumes."""
    with db.connection() as conn:
        found = store.cancel_lockout(conn, lockout_id, datetime.now(UTC))
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lockout {lockout_id}")
    return found
