"""Lighting schedules (create, list, update, delete, each with its next firing), and the
calendars and scenes they use."""

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from hub.api.app import DbDep
from hub.api.schemas import Int64
from hub.devices.lighting import (
    CommandAction,
    ControlledDevice,
    Schedule,
    SunEvent,
    UnknownTargetError,
    expand_target,
    firing_command,
    next_occurrence,
    schedule_params,
    target_position,
)
from hub.devices.lighting_calendar import CalendarMode, CalendarSpec, SceneSpec, parse_weekdays
from hub.store import lighting as store
from hub.store import lighting_schedules as schedule_store

router = APIRouter()


# -- schedules ---------------------------------------------------------------------------


class ScheduleIn(BaseModel):
    """A fixed local time (`at_local`) or a sun event with an offset, for a target.

    `dim_pct` as in a command: required for a dim, optional for an on (lit at that level),
    refused for an off.
    """

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=100)
    action: CommandAction
    dim_pct: float | None = Field(default=None, ge=0, le=100)
    at_local: time | None = None
    sun_event: SunEvent | None = None
    offset_min: int = Field(default=0, ge=-720, le=720)
    enabled: bool = True
    weekdays: list[int] = Field(
        default_factory=list, max_length=7, description="ISO 1 (Mon) … 7 (Sun); empty: every day"
    )
    calendar: str | None = Field(default=None, max_length=100)
    calendar_mode: CalendarMode = CalendarMode.ONLY
    scene: str | None = Field(
        default=None, max_length=100, description="a scene applied by a dim (no dim_pct)"
    )

    @field_validator("weekdays")
    @classmethod
    def _iso_weekdays(cls, value: list[int]) -> list[int]:
        return sorted(parse_weekdays(value))

    @field_validator("at_local")
    @classmethod
    def _local_wall_time(cls, value: time | None) -> time | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError(
                "at_local is a wall-clock time in the lighting timezone; give it without a"
                " UTC offset, e.g. 18:30"
            )
        return value

    @model_validator(mode="after")
    def _one_anchor(self) -> "ScheduleIn":
        if (self.at_local is None) == (self.sun_event is None):
            raise ValueError("give exactly one of at_local and sun_event")
        if self.scene is not None:
            if self.action is not CommandAction.DIM or self.dim_pct is not None:
                raise ValueError("a scene is applied by action dim, without dim_pct")
        else:
            schedule_params(self.action, self.dim_pct)
        return self

    def params(self) -> dict[str, Any]:
        """The params stored with the schedule (a scene's levels are in its steps)."""
        return {} if self.scene is not None else schedule_params(self.action, self.dim_pct)

    def rules(self) -> schedule_store.DayRuleNames:
        """Its day rules and scene by name."""
        return schedule_store.DayRuleNames(
            frozenset(self.weekdays), self.calendar, self.calendar_mode, self.scene
        )


class SchedulePatchIn(BaseModel):
    """Any part of a schedule; switching between at_local and sun_event gives the new one
    and null for the other."""

    model_config = {"extra": "forbid"}

    name: str | None = Field(default=None, min_length=1, max_length=200)
    target: str | None = Field(default=None, min_length=1, max_length=100)
    action: CommandAction | None = None
    dim_pct: float | None = Field(default=None, ge=0, le=100)
    at_local: time | None = None
    sun_event: SunEvent | None = None
    offset_min: int | None = Field(default=None, ge=-720, le=720)
    enabled: bool | None = None
    weekdays: list[int] | None = Field(default=None, max_length=7)
    calendar: str | None = Field(default=None, max_length=100)
    calendar_mode: CalendarMode | None = None
    scene: str | None = Field(default=None, max_length=100)


class ScheduleOut(BaseModel):
    """A stored schedule and when it fires next (at its target's position for dusk/dawn)."""

    schedule_id: int
    name: str
    target: str
    action: CommandAction
    params: dict[str, Any]
    at_local: time | None
    sun_event: SunEvent | None
    offset_min: int
    enabled: bool
    weekdays: list[int]
    calendar: str | None
    calendar_mode: CalendarMode
    scene: str | None
    last_fired_at: datetime | None
    next_fire_at: datetime | None = Field(
        description="the next firing instant (null when disabled or its target names nothing)"
    )
    next_fire_local: str | None = Field(description="the same in the lighting timezone")
    next_fire_command: dict[str, Any] | None = Field(
        default=None, description="what it sends then: action and params (a scene: that step)"
    )


def _zone(request: Request) -> ZoneInfo:
    found: ZoneInfo | None = getattr(request.app.state, "lighting_zone", None)
    return found or ZoneInfo("Asia/Shanghai")


def _schedule_out(
    schedule: Schedule, devices: Sequence[ControlledDevice], zone: ZoneInfo, now: datetime
) -> ScheduleOut:
    next_at: datetime | None = None
    command: dict[str, Any] | None = None
    try:
        lat, lon = target_position(expand_target(schedule.target, schedule.action, devices))
    except UnknownTargetError:
        pass
    else:
        next_at = next_occurrence(schedule, now, zone, lat, lon)
        if next_at is not None:
            action, params = firing_command(schedule, next_at, zone, lat, lon)
            command = {"action": action.value, **params}
    names = schedule_store.day_rule_names(schedule)
    return ScheduleOut(
        schedule_id=schedule.schedule_id,
        name=schedule.name,
        target=schedule.target,
        action=schedule.action,
        params=dict(schedule.params),
        at_local=schedule.at_local,
        sun_event=schedule.sun_event,
        offset_min=schedule.offset_min,
        enabled=schedule.enabled,
        weekdays=sorted(names.weekdays),
        calendar=names.calendar,
        calendar_mode=names.calendar_mode,
        scene=names.scene,
        last_fired_at=schedule.last_fired_at,
        next_fire_at=next_at,
        next_fire_local=None if next_at is None else next_at.astimezone(zone).isoformat(),
        next_fire_command=command,
    )


def _checked_target(body: ScheduleIn, devices: Sequence[ControlledDevice]) -> None:
    try:
        expand_target(body.target, body.action, devices)
    except UnknownTargetError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err


@router.post("/schedules", response_model=ScheduleOut, status_code=status.HTTP_201_CREATED)
def create_schedule(db: DbDep, request: Request, body: ScheduleIn) -> ScheduleOut:
    """Add a schedule, e.g. on at dusk+5, dim 50 % at 00:00, off at dawn−10; 422 when the
    target names no lamp, circuit, cabinet or group. Created after its time, it acts at the
    next control tick when the state it sets should hold now (docs/lighting.md)."""
    with db.connection() as conn:
        devices = store.fetch_controlled_devices(conn)
        _checked_target(body, devices)
        try:
            saved = schedule_store.insert_schedule(
                conn,
                name=body.name,
                target=body.target,
                action=body.action,
                params=body.params(),
                at_local=body.at_local,
                sun_event=body.sun_event,
                offset_min=body.offset_min,
                enabled=body.enabled,
                rules=body.rules(),
            )
        except schedule_store.UnknownNameError as err:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    return _schedule_out(saved, devices, _zone(request), datetime.now(UTC))


@router.get("/schedules", response_model=list[ScheduleOut])
def list_schedules(db: DbDep, request: Request) -> list[ScheduleOut]:
    """Every schedule by id, with its next firing instant."""
    with db.connection() as conn:
        rows = schedule_store.list_schedules(conn)
        devices = store.fetch_controlled_devices(conn) if rows else []
    now = datetime.now(UTC)
    return [_schedule_out(s, devices, _zone(request), now) for s in rows]


@router.patch("/schedules/{schedule_id}", response_model=ScheduleOut)
def update_schedule(
    db: DbDep, request: Request, schedule_id: Int64, body: SchedulePatchIn
) -> ScheduleOut:
    """Change any part of a schedule (validated as a whole, as on create); a change of what
    or when it fires makes it judged afresh, like a new schedule."""
    given = body.model_dump(exclude_unset=True)
    with db.connection() as conn:
        found = next(
            (s for s in schedule_store.list_schedules(conn) if s.schedule_id == schedule_id), None
        )
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
        names = schedule_store.day_rule_names(found)
        merged: dict[str, Any] = {
            "name": found.name,
            "target": found.target,
            "action": found.action,
            "dim_pct": found.params.get("dim_pct"),
            "at_local": found.at_local,
            "sun_event": found.sun_event,
            "offset_min": found.offset_min,
            "enabled": found.enabled,
            "weekdays": sorted(names.weekdays),
            "calendar": names.calendar,
            "calendar_mode": names.calendar_mode,
            "scene": names.scene,
        }
        if given.get("scene") is not None and "dim_pct" not in given:
            merged["dim_pct"] = None
        if given.get("action") is CommandAction.OFF and "dim_pct" not in given:
            merged["dim_pct"] = None
        if given.get("at_local") is not None and "sun_event" not in given:
            merged["sun_event"] = None
        if given.get("sun_event") is not None and "at_local" not in given:
            merged["at_local"] = None
        merged.update(given)
        try:
            whole = ScheduleIn.model_validate(merged)
        except ValidationError as err:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                "; ".join(str(e["msg"]) for e in err.errors()),
            ) from err
        devices = store.fetch_controlled_devices(conn)
        _checked_target(whole, devices)
        try:
            saved = schedule_store.update_schedule(
                conn,
                schedule_id,
                name=whole.name,
                target=whole.target,
                action=whole.action,
                params=whole.params(),
                at_local=whole.at_local,
                sun_event=whole.sun_event,
                offset_min=whole.offset_min,
                enabled=whole.enabled,
                rules=whole.rules(),
            )
        except schedule_store.UnknownNameError as err:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    if saved is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
    return _schedule_out(saved, devices, _zone(request), datetime.now(UTC))


@router.delete("/schedules/{schedule_id}", response_model=ScheduleOut)
def delete_schedule(db: DbDep, request: Request, schedule_id: Int64) -> ScheduleOut:
    """Remove a schedule; the commands it fired stay in the history."""
    with db.connection() as conn:
        removed = schedule_store.delete_schedule(conn, schedule_id)
        devices = store.fetch_controlled_devices(conn) if removed else []
    if removed is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
    out = _schedule_out(removed, devices, _zone(request), datetime.now(UTC))
    return out.model_copy(update={"next_fire_at": None, "next_fire_local": None})


# -- calendars and scenes ------------------------------------------------------------------


@router.post("/calendars", response_model=CalendarSpec, status_code=status.HTTP_201_CREATED)
def save_calendar(db: DbDep, body: CalendarSpec) -> CalendarSpec:
    """Create or replace a calendar (holidays, festival nights): `dates`, `ranges` of dates,
    `annual` days ('MM-DD', every year). Schedules that use it follow the change."""
    with db.connection() as conn:
        return schedule_store.save_calendar(conn, body)


@router.get("/calendars", response_model=list[CalendarSpec])
def list_calendars(db: DbDep) -> list[CalendarSpec]:
    """Every calendar by name."""
    with db.connection() as conn:
        return schedule_store.list_calendars(conn)


@router.delete("/calendars/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_calendar(db: DbDep, name: str) -> None:
    """Remove a calendar; 409 while a schedule uses it."""
    with db.connection() as conn:
        _deleted(schedule_store.delete_calendar(conn, name), "calendar", name)


@router.post("/scenes", response_model=SceneSpec, status_code=status.HTTP_201_CREATED)
def save_scene(db: DbDep, body: SceneSpec) -> SceneSpec:
    """Create or replace a scene: a named dimming profile, steps of (`offset_min` after the
    schedule's instant, `dim_pct`). Schedules that apply it follow the change."""
    with db.connection() as conn:
        return schedule_store.save_scene(conn, body)


@router.get("/scenes", response_model=list[SceneSpec])
def list_scenes(db: DbDep) -> list[SceneSpec]:
    """Every scene by name."""
    with db.connection() as conn:
        return schedule_store.list_scenes(conn)


@router.delete("/scenes/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_scene(db: DbDep, name: str) -> None:
    """Remove a scene; 409 while a schedule applies it."""
    with db.connection() as conn:
        _deleted(schedule_store.delete_scene(conn, name), "scene", name)


def _deleted(outcome: bool | None, what: str, name: str) -> None:
    if outcome is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {name!r}")
    if not outcome:
        raise HTTPException(status.HTTP_409_CONFLICT, f"a schedule uses {what} {name!r}")
