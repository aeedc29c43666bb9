"""Alarm endpoints: list and filter, acknowledge, clear, and a server-sent-events stream.

The stream is fed by `AlarmFanout` (hub.rules.alarm_fanout), an in-process `AlarmPublisher`:
every committed alarm change of this process (rules, acknowledgements, clears) reaches each
client once. A client that falls `max_pending` changes behind gets an `overflow` event and
is disconnected; it reconnects and reloads GET /alarms.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from hub.api.access import alarm_actor
from hub.api.schemas import Instant, Int64, Offset
from hub.devices.kinds import Kind
from hub.rules.alarm_changes import (
    AlarmChange,
    AlarmPublisher,
    AlarmRecord,
    AlarmState,
    alarm_document,
)
from hub.rules.alarm_fanout import AlarmFanout
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SourceKind
from hub.store.alarms import AlarmFilter, AlarmNotFoundError, AlarmStateError, AlarmStore

log = logging.getLogger(__name__)

_SHUTDOWN_POLL_S = 0.5


def get_alarm_store(request: Request) -> AlarmStore:
    """The alarm store of this app."""
    store: AlarmStore = request.app.state.alarm_store
    return store


def get_fanout(request: Request) -> AlarmFanout:
    """The SSE fan-out of this app."""
    fanout: AlarmFanout = request.app.state.alarm_fanout
    return fanout


def get_alarm_publisher(request: Request) -> AlarmPublisher:
    """Where changes made through the API are published (MQTT and SSE)."""
    publisher: AlarmPublisher = request.app.state.alarm_publisher
    return publisher


AlarmStoreDep = Annotated[AlarmStore, Depends(get_alarm_store)]
FanoutDep = Annotated[AlarmFanout, Depends(get_fanout)]
PublisherDep = Annotated[AlarmPublisher, Depends(get_alarm_publisher)]
ActorHeader = Annotated[str | None, Header(description="who acts, until real auth arrives")]


class AlarmOut(BaseModel):
    """An alarm as the API shows it."""

    id: int
    source_kind: SourceKind
    source_id: str
    alarm_type: AlarmType
    severity: Severity
    state: AlarmState
    raised_at: datetime
    last_seen_at: datetime
    cleared_at: datetime | None
    count: int
    message: str
    evidence: list[dict[str, object]]
    details: dict[str, object]
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    cleared_by: str | None
    case_id: int | None
    updated_at: datetime | None


class AlarmActionIn(BaseModel):
    """Who acknowledges or clears, and why."""

    model_config = {"extra": "forbid"}

    actor_id: str | None = Field(default=None, min_length=1, max_length=100)
    note: str = Field(default="", max_length=2000)


def _out(alarm: AlarmRecord) -> AlarmOut:
    return AlarmOut.model_validate(alarm_document(alarm))


router = APIRouter(tags=["alarms"])


@router.get("/alarms/stream", response_class=EventSourceResponse)
async def alarm_stream(
    fanout: FanoutDep,
    source_id: str | None = None,
    alarm_type: AlarmType | None = None,
) -> EventSourceResponse:
    """Server-sent events: one `raised`/`updated`/`acknowledged`/`cleared` event per change."""
    subscriber = fanout.subscribe(asyncio.get_running_loop())
    shutdown = anyio.Event()

    async def events() -> AsyncIterator[ServerSentEvent]:
        """The subscriber's changes as events, until the client leaves or the server stops."""
        try:
            yield ServerSentEvent(comment="subscribed")
            while True:
                document = None
                with anyio.move_on_after(_SHUTDOWN_POLL_S):
                    document = await subscriber.queue.get()
                if shutdown.is_set():
                    yield ServerSentEvent(event="shutdown", data="the hub is stopping; reconnect")
                    return
                if document is None:
                    if subscriber.overflowed:
                        yield ServerSentEvent(
                            event="overflow",
                            data="too far behind; reload GET /alarms and reconnect",
                        )
                        return
                    continue
                alarm = document["alarm"]
                if not isinstance(alarm, dict):  # pragma: no cover - the document's shape
                    continue
                if source_id is not None and alarm["source_id"] != source_id:
                    continue
                if alarm_type is not None and alarm["alarm_type"] != alarm_type.value:
                    continue
                yield ServerSentEvent(
                    data=orjson.dumps(document).decode(),
                    event=str(document["change"]),
                    id=f"{alarm['id']}-{alarm['updated_at']}",
                )
        finally:
            fanout.unsubscribe(subscriber)

    return EventSourceResponse(
        events(), ping=15, shutdown_event=shutdown, shutdown_grace_period=2 * _SHUTDOWN_POLL_S
    )


@router.get("/alarms", response_model=list[AlarmOut])
def list_alarms(
    store: AlarmStoreDep,
    state: Annotated[
        list[AlarmState] | None, Query(description="repeat for several; default: any")
    ] = None,
    open_only: Annotated[bool, Query(alias="open", description="not cleared")] = False,
    alarm_type: Annotated[AlarmType | None, Query(alias="type")] = None,
    source: Annotated[str | None, Query(description="source id: a device or group")] = None,
    source_kind: SourceKind | None = None,
    kind: Annotated[Kind | None, Query(description="asset kind of the source device")] = None,
    severity: Severity | None = None,
    since: Annotated[Instant | None, Query(description="raised at or after")] = None,
    until: Annotated[Instant | None, Query(description="raised before")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Offset = 0,
) -> list[AlarmOut]:
    """Alarms, newest first, filtered by state, type, source, kind and severity."""
    states: list[AlarmState] = list(state or ())
    if open_only:
        states = [s for s in (states or list(AlarmState)) if s is not AlarmState.CLEARED]
        if not states:
            return []
    alarms = store.search(
        AlarmFilter(
            states=states,
            alarm_type=alarm_type,
            source_id=source,
            source_kind=source_kind,
            asset_kind=kind,
            severity=severity,
            raised_since=since,
            raised_until=until,
            limit=limit,
            offset=offset,
        )
    )
    return [_out(a) for a in alarms]


@router.get("/alarms/{alarm_id}", response_model=AlarmOut)
def get_alarm(store: AlarmStoreDep, alarm_id: Int64) -> AlarmOut:
    """One alarm."""
    alarm = store.get(alarm_id)
    if alarm is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alarm with id {alarm_id}")
    return _out(alarm)


def _actor(
    body: AlarmActionIn | None, header: str | None, authenticated: str | None = None
) -> tuple[str, str]:
    actor = authenticated or (body.actor_id if body else None) or header
    if not actor:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "say who acts: actor_id in the body or the X-Actor-Id header",
        )
    return actor, body.note if body else ""


def _act(
    publisher: AlarmPublisher,
    action: str,
    run: Callable[[int, str, datetime, str], AlarmChange],
    alarm_id: int,
    actor_id: str,
    note: str,
) -> AlarmOut:
    try:
        change = run(alarm_id, actor_id, datetime.now(UTC), note)
    except AlarmNotFoundError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err
    except AlarmStateError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
    log.info("alarm %d %s by %s", alarm_id, action, actor_id)
    publisher.publish_changes([change])
    return _out(change.alarm)


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmOut)
def acknowledge_alarm(
    request: Request,
    store: AlarmStoreDep,
    publisher: PublisherDep,
    alarm_id: Int64,
    body: AlarmActionIn | None = None,
    x_actor_id: ActorHeader = None,
) -> AlarmOut:
    """Acknowledge an active alarm (409 when it is acknowledged or cleared already)."""
    actor, note = _actor(body, x_actor_id, alarm_actor(request))
    return _act(publisher, "acknowledged", store.acknowledge, alarm_id, actor, note)


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmOut)
def clear_alarm(
    request: Request,
    store: AlarmStoreDep,
    publisher: PublisherDep,
    alarm_id: Int64,
    body: AlarmActionIn | None = None,
    x_actor_id: ActorHeader = None,
) -> AlarmOut:
    """Clear an open alarm by decision; the rules raise it again if the fault persists."""
    actor, note = _actor(body, x_actor_id, alarm_actor(request))
    return _act(publisher, "cleared", store.clear, alarm_id, actor, note)
