"""Street lighting for crews: open faults, crew alert stream, lighting rate, energy, control."""

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

import anyio
import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from hub.api import lighting_commands, lighting_schedules
from hub.api.app import DbDep
from hub.api.schemas import Instant
from hub.devices.lighting_life import LifeForecast, forecast_life
from hub.geometry import haversine_m
from hub.rules.alarm_fanout import AlarmFanout
from hub.rules.alarm_types import Severity
from hub.rules.crew_alerts import (
    CrewAlertFanout,
    CrewAlertKind,
    crew_alert_document,
    fault_since,
    severity_rank,
)
from hub.store import lighting as store
from hub.store import lighting_energy as energy_store

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
    """Server-sent events: one `new`/`escalated`/`updated`/`acknowledged`/`assigned`/`cleared`
    event per lighting crew alert, each with an `id` (`assigned`: its case was dispatched; the
    alert's `assignment` says to whom). With `Last-Event-ID` the alerts after it that the hub
    still holds are sent first; a `gap` event says some were lost (reload the faults)."""
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
        rates = energy_store.lighting_rates(conn, start, end, district_digits)
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
        figures = energy_store.energy_figures(conn, start, end, by, district_digits)
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


# -- lamp life ---------------------------------------------------------------------------

_LIFE_PERIOD = timedelta(days=365)  # telemetry_lighting's default retention


@router.get("/lamps/life", response_model=list[LifeForecast])
def lamp_life(
    db: DbDep,
    cabinet: Annotated[str | None, Query(max_length=100)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
) -> list[LifeForecast]:
    """Burning hours, switches and lamp/driver replacement forecasts, most worn first.

    Counted over [since, until) (default: the year up to now) plus the registry's
    `burning_hours_before` / `switches_before`; rated lives from the registry
    (`rated_life_h`, `driver_rated_life_h`, `rated_switches`) or the defaults per lamp type
    (docs/lighting.md). Replacement dates assume the lamp keeps burning as it did."""
    end = until or datetime.now(UTC)
    start = since or end - _LIFE_PERIOD
    if start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since must be before until")
    with db.connection() as conn:
        usage = energy_store.lamp_usage(conn, start, end, cabinet=cabinet)
    forecasts = [forecast_life(u, end) for u in usage]
    forecasts.sort(key=lambda f: (-f.lamp.used_share, -f.switches, f.device_id))
    return forecasts[:limit]


@router.get("/lamps/{device_id}/life", response_model=LifeForecast)
def one_lamp_life(
    db: DbDep, device_id: str, since: Instant | None = None, until: Instant | None = None
) -> LifeForecast:
    """One lamp's burning hours, switches and replacement forecast (as /lamps/life)."""
    end = until or datetime.now(UTC)
    start = since or end - _LIFE_PERIOD
    if start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since must be before until")
    with db.connection() as conn:
        usage = energy_store.lamp_usage(conn, start, end, device_ids=[device_id])
    if not usage:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lamp {device_id}")
    return forecast_life(usage[0], end)


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


router.include_router(lighting_commands.router)
router.include_router(lighting_schedules.router)
