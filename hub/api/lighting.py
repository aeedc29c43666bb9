"""Street lighting for crews: open faults, crew alert stream, lighting rate, energy, control."""

import asyncio
import threading
import time as time_module
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo

import anyio
import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sse_starlette import EventSourceResponse, ServerSentEvent

from hub.api.app import DbDep
from hub.api.schemas import Instant, Int64, Offset
from hub.devices.lighting import (
    CommandAction,
    CommandState,
    ControlledDevice,
    Schedule,
    SunEvent,
    UnknownTargetError,
    expand_target,
    next_occurrence,
    schedule_params,
    target_position,
)
from hub.geometry import haversine_m
from hub.rules.alarm_fanout import AlarmFanout
from hub.rules.alarm_types import Severity
from hub.rules.crew_alerts import (
    CrewAlertKind,
    crew_alert_document,
    fault_since,
    severity_rank,
)
from hub.store import lighting as store

router = APIRouter(prefix="/lighting", tags=["lighting"])

_DEFAULT_TTL = timedelta(hours=1)
_DEFAULT_ATTEMPTS = 3


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    end = until or datetime.now(UTC)
    start = since or end - timedelta(days=1)
    if start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since must be before until")
    return start, end


# -- faults ------------------------------------------------------------------------------


class FaultOut(BaseModel):
    """An open lighting fault as a crew sees it, with its distance from the asked point."""

    alarm_id: int
    source_kind: str
    source_id: str
    alarm_type: str
    severity: str
    what: str
    since: datetime = Field(description="when the fault began (the debounced condition's start)")
    raised_at: datetime
    last_seen_at: datetime
    count: int
    state: str
    location: dict[str, Any] | None
    evidence: list[dict[str, Any]]
    details: dict[str, Any]
    case_id: int | None
    distance_m: float | None


@router.get("/faults", response_model=list[FaultOut])
def open_faults(
    db: DbDep,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    order: Annotated[Literal["priority", "distance"], Query()] = "priority",
    within_m: Annotated[float | None, Query(gt=0)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[FaultOut]:
    """Open lighting faults: most severe and oldest first, or nearest first from lat/lon."""
    if (lat is None) != (lon is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give both lat and lon")
    if (order == "distance" or within_m is not None) and lat is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "distance needs lat and lon of the crew"
        )
    with db.connection() as conn:
        faults = store.open_lighting_faults(conn)
    rows: list[FaultOut] = []
    for alarm, location in faults:
        distance = None
        if lat is not None and lon is not None and location is not None:
            distance = round(haversine_m(lat, lon, location.lat, location.lon), 1)
        if within_m is not None and (distance is None or distance > within_m):
            continue
        where = crew_alert_document(CrewAlertKind.NEW, alarm, location)["location"]
        rows.append(
            FaultOut(
                alarm_id=alarm.id,
                source_kind=alarm.source_kind.value,
                source_id=alarm.source_id,
                alarm_type=alarm.alarm_type.value,
                severity=alarm.severity.value,
                what=alarm.message,
                since=fault_since(alarm),
                raised_at=alarm.raised_at,
                last_seen_at=alarm.last_seen_at,
                count=alarm.count,
                state=alarm.state.value,
                location=dict(where) if isinstance(where, dict) else None,
                evidence=[dict(e) for e in alarm.evidence],
                details=dict(alarm.details),
                case_id=alarm.case_id,
                distance_m=distance,
            )
        )
    if order == "distance":
        rows.sort(key=lambda f: (f.distance_m is None, f.distance_m or 0.0, f.alarm_id))
    else:
        rows.sort(key=lambda f: (severity_rank(Severity(f.severity)), f.since, f.alarm_id))
    return rows[:limit]


class CrewAlertFanout(AlarmFanout):
    """The crew alert fan-out, numbering each alert (`event_id`, the SSE `id`) and keeping the
    last `keep` so a tablet that lost its connection resumes with `Last-Event-ID`.

    Ids are `<epoch>-<n>`: `n` counts up from 1 in this process, `epoch` tells processes
    apart, so an id from before a restart is recognised as such (the tablet reloads faults).
    """

    def __init__(self, keep: int = 2000, max_pending: int = 1000) -> None:
        super().__init__(max_pending)
        self.epoch = format(time_module.time_ns() // 1_000_000, "x")
        self._log: deque[tuple[int, dict[str, object]]] = deque(maxlen=keep)
        self._log_lock = threading.Lock()
        self._next = 1

    def publish_documents(self, documents: Sequence[Mapping[str, object]]) -> None:
        """Number and keep the alerts, then hand them to the connected streams, in order."""
        if not documents:
            return
        with self._log_lock:
            stamped: list[dict[str, object]] = []
            for document in documents:
                numbered = {**document, "event_id": f"{self.epoch}-{self._next}"}
                self._log.append((self._next, numbered))
                self._next += 1
                stamped.append(numbered)
            super().publish_documents(stamped)

    def sequence(self, event_id: object) -> int | None:
        """The number of an id of this process, None for another process's or a bad id."""
        if not isinstance(event_id, str):
            return None
        epoch, _, number = event_id.rpartition("-")
        return int(number) if epoch == self.epoch and number.isdigit() else None

    def after(self, last_event_id: str) -> tuple[list[dict[str, object]], bool]:
        """The kept alerts after `last_event_id`, and whether none between was lost (False
        also for an id of an earlier process: the tablet must reload the open faults)."""
        last = self.sequence(last_event_id)
        with self._log_lock:
            kept = list(self._log)
        if last is None:
            return [d for _, d in kept], False
        complete = not kept or kept[0][0] <= last + 1
        return [d for n, d in kept if n > last], complete


def _event(document: Mapping[str, object]) -> ServerSentEvent:
    event_id = document.get("event_id")
    return ServerSentEvent(
        data=orjson.dumps(document).decode(),
        event=str(document["alert"]),
        id=event_id if isinstance(event_id, str) else None,
    )


@router.get("/alerts/stream", response_class=EventSourceResponse)
async def alert_stream(
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Server-sent events: one `new`/`escalated`/`updated`/`acknowledged`/`cleared` event per
    lighting crew alert, each with an `id`. With `Last-Event-ID` the alerts after it that the
    hub still holds are sent first; a `gap` event says some were lost (reload the faults)."""
    fanout: AlarmFanout | None = getattr(request.app.state, "lighting_alert_fanout", None)
    if fanout is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "crew alerts are not running")
    subscriber = fanout.subscribe(asyncio.get_running_loop())
    shutdown = anyio.Event()
    replay: list[dict[str, object]] = []
    complete = True
    if last_event_id and isinstance(fanout, CrewAlertFanout):
        replay, complete = fanout.after(last_event_id)
    replayed_to = 0
    if replay and isinstance(fanout, CrewAlertFanout):
        replayed_to = fanout.sequence(replay[-1].get("event_id")) or 0

    async def events() -> AsyncIterator[ServerSentEvent]:
        """The crew alerts as events until the client leaves or the server stops."""
        try:
            yield ServerSentEvent(comment="subscribed")
            if not complete:
                yield ServerSentEvent(
                    event="gap", data="crew alerts were missed: reload GET /lighting/faults"
                )
            for kept in replay:
                yield _event(kept)
            while True:
                document = None
                with anyio.move_on_after(0.5):
                    document = await subscriber.queue.get()
                if shutdown.is_set():
                    yield ServerSentEvent(event="shutdown", data="the hub is stopping; reconnect")
                    return
                if document is None:
                    if subscriber.overflowed:
                        yield ServerSentEvent(event="overflow", data="reload GET /lighting/faults")
                        return
                    continue
                if isinstance(fanout, CrewAlertFanout):
                    number = fanout.sequence(document.get("event_id"))
                    if number is not None and number <= replayed_to:
                        continue  # already sent from the log
                yield _event(document)
        finally:
            fanout.unsubscribe(subscriber)

    return EventSourceResponse(events(), ping=15, shutdown_event=shutdown, shutdown_grace_period=1)


# -- lighting rate and energy -----------------------------------------------------------


class RateOut(BaseModel):
    """亮灯率 of a district (null: the city) over the period."""

    district: str | None
    lamps: int
    due_samples: int
    lit_samples: int
    rate_pct: float | None


@router.get("/rate", response_model=list[RateOut])
def lighting_rate(
    db: DbDep,
    since: Instant | None = None,
    until: Instant | None = None,
    district_digits: Annotated[int, Query(ge=6, le=15)] = 9,
) -> list[RateOut]:
    """Lighting rate (lit / due-to-be-lit readings) per grid-code prefix, the city last."""
    start, end = _period(since, until)
    with db.connection() as conn:
        rates = store.lighting_rates(conn, start, end, district_digits)
    return [
        RateOut(
            district=r.district,
            lamps=r.lamps,
            due_samples=r.due_samples,
            lit_samples=r.lit_samples,
            rate_pct=None if r.rate_pct is None else round(r.rate_pct, 3),
        )
        for r in rates
    ]


class EnergyOut(BaseModel):
    """Energy over the period and the dimming saving against full power."""

    key: str | None
    lamps: int
    energy_kwh: float
    saving_kwh: float
    full_power_kwh: float
    implausible_hours: int = Field(
        description="lamp-hours left out: a meter reading beyond 0 … 1e8 kWh, NaN or infinite"
    )


@router.get("/energy", response_model=list[EnergyOut])
def energy(
    db: DbDep,
    by: Literal["lamp", "cabinet", "district"] = "district",
    since: Instant | None = None,
    until: Instant | None = None,
    district_digits: Annotated[int, Query(ge=6, le=15)] = 9,
) -> list[EnergyOut]:
    """Lamp energy per lamp, cabinet or district, largest first, with the dimming saving."""
    start, end = _period(since, until)
    with db.connection() as conn:
        figures = store.energy_figures(conn, start, end, by, district_digits)
    return [
        EnergyOut(
            key=f.key,
            lamps=f.lamps,
            energy_kwh=f.energy_kwh,
            saving_kwh=f.saving_kwh,
            full_power_kwh=round(f.full_power_kwh, 4),
            implausible_hours=f.implausible_hours,
        )
        for f in figures
    ]


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
    commands: list[store.CommandRecord]


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
            created = store.create_command_request(
                conn,
                target=body.target,
                action=body.action,
                params=params,
                now=now,
                ttl=timedelta(seconds=body.ttl_s) if body.ttl_s else ttl,
                max_attempts=body.max_attempts or attempts,
            )
            rows = store.list_commands(conn, request_id=created.request_id, limit=100_000)
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


@router.get("/commands", response_model=list[store.CommandRecord])
def list_commands(
    db: DbDep,
    device_id: str | None = None,
    request_id: str | None = None,
    state: CommandState | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Offset = 0,
) -> list[store.CommandRecord]:
    """Commands, newest first, by device, request or state."""
    with db.connection() as conn:
        rows = store.list_commands(
            conn,
            device_id=device_id,
            request_id=request_id,
            state=state,
            limit=limit,
            offset=offset,
        )
    return list(rows)


@router.get("/devices/{device_id}/commands", response_model=list[store.CommandRecord])
def device_commands(
    db: DbDep, device_id: str, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[store.CommandRecord]:
    """A lamp's or cabinet's command history, newest first."""
    with db.connection() as conn:
        rows = store.list_commands(conn, device_id=device_id, limit=limit)
    return list(rows)


@router.delete("/commands/{command_id}", response_model=store.CommandRecord)
def cancel_command(db: DbDep, command_id: str) -> store.CommandRecord:
    """Cancel a pending (or sent, unanswered) command so it is never sent again (idempotent);
    409 when it already ended otherwise (acked, failed, expired, superseded)."""
    with db.connection() as conn:
        found = store.cancel_command(conn, command_id, datetime.now(UTC))
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
        schedule_params(self.action, self.dim_pct)
        return self


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
    last_fired_at: datetime | None
    next_fire_at: datetime | None = Field(
        description="the next firing instant (null when disabled or its target names nothing)"
    )
    next_fire_local: str | None = Field(description="the same in the lighting timezone")


def _zone(request: Request) -> ZoneInfo:
    found: ZoneInfo | None = getattr(request.app.state, "lighting_zone", None)
    return found or ZoneInfo("Asia/Shanghai")


def _schedule_out(
    schedule: Schedule, devices: Sequence[ControlledDevice], zone: ZoneInfo, now: datetime
) -> ScheduleOut:
    next_at: datetime | None = None
    try:
        lat, lon = target_position(expand_target(schedule.target, schedule.action, devices))
    except UnknownTargetError:
        pass
    else:
        next_at = next_occurrence(schedule, now, zone, lat, lon)
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
        last_fired_at=schedule.last_fired_at,
        next_fire_at=next_at,
        next_fire_local=None if next_at is None else next_at.astimezone(zone).isoformat(),
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
        saved = store.insert_schedule(
            conn,
            name=body.name,
            target=body.target,
            action=body.action,
            params=schedule_params(body.action, body.dim_pct),
            at_local=body.at_local,
            sun_event=body.sun_event,
            offset_min=body.offset_min,
            enabled=body.enabled,
        )
    return _schedule_out(saved, devices, _zone(request), datetime.now(UTC))


@router.get("/schedules", response_model=list[ScheduleOut])
def list_schedules(db: DbDep, request: Request) -> list[ScheduleOut]:
    """Every schedule by id, with its next firing instant."""
    with db.connection() as conn:
        rows = store.list_schedules(conn)
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
        found = next((s for s in store.list_schedules(conn) if s.schedule_id == schedule_id), None)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
        merged: dict[str, Any] = {
            "name": found.name,
            "target": found.target,
            "action": found.action,
            "dim_pct": found.params.get("dim_pct"),
            "at_local": found.at_local,
            "sun_event": found.sun_event,
            "offset_min": found.offset_min,
            "enabled": found.enabled,
        }
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
        saved = store.update_schedule(
            conn,
            schedule_id,
            name=whole.name,
            target=whole.target,
            action=whole.action,
            params=schedule_params(whole.action, whole.dim_pct),
            at_local=whole.at_local,
            sun_event=whole.sun_event,
            offset_min=whole.offset_min,
            enabled=whole.enabled,
        )
    if saved is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
    return _schedule_out(saved, devices, _zone(request), datetime.now(UTC))


@router.delete("/schedules/{schedule_id}", response_model=ScheduleOut)
def delete_schedule(db: DbDep, request: Request, schedule_id: Int64) -> ScheduleOut:
    """Remove a schedule; the commands it fired stay in the history."""
    with db.connection() as conn:
        removed = store.delete_schedule(conn, schedule_id)
        devices = store.fetch_controlled_devices(conn) if removed else []
    if removed is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
    out = _schedule_out(removed, devices, _zone(request), datetime.now(UTC))
    return out.model_copy(update={"next_fire_at": None, "next_fire_local": None})


# -- Modbus ------------------------------------------------------------------------------


class PollStatusSource(Protocol):
    """The Modbus poller as the API sees it (the API does not import the ingest edge)."""

    def status(self) -> Sequence[Any]:
        """Per-cabinet poll figures."""
        ...


class ModbusCabinetOut(BaseModel):
    """Poll figures of one cabinet."""

    cabinet_id: str
    endpoint: str
    unit: int
    polls: int
    errors: int
    consecutive_failures: int
    last_ok_at: datetime | None
    last_error: str | None
    next_poll_in_s: float


@router.get("/modbus", response_model=list[ModbusCabinetOut])
def modbus_status(request: Request) -> list[ModbusCabinetOut]:
    """Per-cabinet Modbus polls and errors (empty when no cabinet is polled)."""
    poller: PollStatusSource | None = getattr(request.app.state, "modbus_poller", None)
    if poller is None:
        return []
    return [ModbusCabinetOut.model_validate(s, from_attributes=True) for s in poller.status()]
