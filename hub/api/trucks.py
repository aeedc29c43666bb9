"""Enforcement views of muck trucks: live positions, tracks, trips and stops, violations, and
the sites, permits and zones the rules judge against (CRUD; edits reach the rules within a
registry refresh period), and texts to a truck's driver (JT/T 808 0x8300 through the gateway)."""

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hub.api.schemas import Instant
from hub.devices.kinds import Kind
from hub.geometry import douglas_peucker_tolerances, projection_around
from hub.rules.alarm_changes import alarm_document
from hub.rules.alarm_types import AlarmType
from hub.rules.truck_params import SegmentParams
from hub.rules.truck_records import (
    Permit,
    Site,
    SiteType,
    Zone,
    feature_collection,
    site_feature,
    zone_feature,
)
from hub.rules.truck_tracks import segment_track, site_visits
from hub.rules.trucks import RULES
from hub.store.alarms import AlarmFilter, list_alarms
from hub.store.database import Database
from hub.store.truck_messages import command_answer
from hub.store.trucks import TruckStore

router = APIRouter(prefix="/trucks", tags=["trucks"])

Document = dict[str, Any]
VIOLATION_TYPES: frozenset[AlarmType] = frozenset().union(*(r.alarm_types for r in RULES))
MOVING_KMH = 5.0


def get_truck_store(request: Request) -> TruckStore:
    """The truck store over the app's database."""
    db: Database = request.app.state.db
    return TruckStore(db)


TruckStoreDep = Annotated[TruckStore, Depends(get_truck_store)]


class TruckState(StrEnum):
    """What a truck is doing by its newest reading."""

    MOVING = "moving"
    STOPPED = "stopped"
    PARKED = "parked"
    UNLOADING = "unloading"


def _state(row: dict[str, Any]) -> TruckState:
    if not row["acc_on"]:
        return TruckState.PARKED
    if row["body_lifted"]:
        return TruckState.UNLOADING
    return TruckState.MOVING if row["speed_kmh"] >= MOVING_KMH else TruckState.STOPPED


@router.get("/positions")
def positions(
    store: TruckStoreDep,
    company: str | None = None,
    permit: str | None = None,
    state: TruckState | None = None,
) -> Document:
    """Newest position of every truck as GeoJSON points; filter by company, permit, state."""
    features = []
    for row in store.live_positions(company=company, permit_id=permit):
        truck_state = _state(row)
        if state is not None and truck_state is not state:
            continue
        attributes = row["attributes"] or {}
        features.append(
            {
                "type": "Feature",
                "id": row["device_id"],
                "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
                "properties": {
                    "device_id": row["device_id"],
                    "plate": attributes.get("plate") or row["name"],
                    "company": attributes.get("company"),
                    "permit_id": attributes.get("permit_id"),
                    "ts": row["ts"].isoformat(),
                    "speed_kmh": row["speed_kmh"],
                    "heading_deg": row["heading_deg"],
                    "state": truck_state.value,
                    "load": "unloading" if row["body_lifted"] else row["load"],
                    "cover_closed": row["cover_closed"],
                },
            }
        )
    return feature_collection(features)


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=24)
    if start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "start must be before end")
    return start, end


def _simplified(
    lat: Sequence[float], lon: Sequence[float], max_points: int
) -> tuple[Sequence[int], float]:
    """Indices kept by Douglas-Peucker at a tolerance doubling from 5 m until at most
    max_points remain, and that tolerance (0 when the track is short enough already)."""
    if len(lat) <= max_points:
        return range(len(lat)), 0.0
    lat_a = np.asarray(lat, dtype=np.float64)
    lon_a = np.asarray(lon, dtype=np.float64)
    projection = projection_around(np.column_stack([lon_a, lat_a]))
    tolerance = 5.0
    kept_below = douglas_peucker_tolerances(projection.to_xy_array(lat_a, lon_a), tolerance)
    while True:
        keep = np.flatnonzero(kept_below > tolerance)
        if len(keep) <= max_points:
            return keep.tolist(), tolerance
        tolerance *= 2


@router.get("/{device_id}/track", response_model=Document)
def track(
    store: TruckStoreDep,
    device_id: str,
    start: Instant | None = None,
    end: Instant | None = None,
    max_points: Annotated[int, Query(ge=2, le=100_000)] = 2000,
) -> Response:
    """A truck's track in [start, end) as a GeoJSON LineString, simplified to max_points."""
    start, end = _range(start, end)
    line = store.track_line(device_id, start, end)
    kept, tolerance = _simplified(line.lat, line.lon, max_points)
    document = {
        "type": "Feature",
        "id": device_id,
        "geometry": {
            "type": "LineString",
            "coordinates": [[line.lon[i], line.lat[i]] for i in kept],
        },
        "properties": {
            "device_id": device_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "fixes": len(line.times),
            "points": len(kept),
            "simplified_tolerance_m": tolerance,
            "times": [line.times[i].isoformat() for i in kept],
            "speeds_kmh": [line.speeds_kmh[i] for i in kept],
        },
    }
    # Plain JSON already: skip FastAPI's jsonable_encoder walk over every point.
    return JSONResponse(document)


@router.get("/{device_id}/trips")
def trips(
    store: TruckStoreDep,
    device_id: str,
    start: Instant | None = None,
    end: Instant | None = None,
    min_stop_s: Annotated[float, Query(ge=0)] = 120.0,
) -> Document:
    """Trips, stops (with site and unloading) and site visits of a truck in [start, end)."""
    start, end = _range(start, end)
    points = store.track(device_id, start, end)
    context = store.load_context()
    params = SegmentParams(min_stop_s=min_stop_s)
    found_trips, stops = segment_track(points, context, params)
    visits = site_visits(points, context, params)
    return {
        "device_id": device_id,
        "trips": [
            {
                "start": t.start.isoformat(),
                "end": t.end.isoformat(),
                "distance_m": t.distance_m,
                "max_speed_kmh": t.max_speed_kmh,
                "fixes": t.fixes,
                "load": t.load,
            }
            for t in found_trips
        ],
        "stops": [
            {
                "start": s.start.isoformat(),
                "end": s.end.isoformat(),
                "duration_s": s.duration_s,
                "lat": s.lat,
                "lon": s.lon,
                "site_id": s.site_id,
                "unloaded": s.unloaded,
            }
            for s in stops
        ],
        "site_visits": [
            {
                "site_id": v.site_id,
                "entered_at": v.entered_at.isoformat(),
                "exited_at": v.exited_at.isoformat() if v.exited_at else None,
            }
            for v in visits
        ],
    }


@router.get("/violations")
def violations(
    request: Request,
    device_id: str | None = None,
    alarm_type: Annotated[AlarmType | None, Query(alias="type")] = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Document]:
    """Truck alarms of the violation types, newest first, with evidence (track and readings)."""
    if alarm_type is not None and alarm_type not in VIOLATION_TYPES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"{alarm_type} is no violation")
    db: Database = request.app.state.db
    query = AlarmFilter(
        states=(),
        alarm_type=alarm_type,
        source_id=device_id,
        asset_kind=Kind.TRUCK,
        raised_since=since,
        raised_until=until,
        limit=limit,
    )
    with db.connection() as conn:
        found = list_alarms(conn, query)
    return [
        alarm_document(a)
        for a in found
        if a.alarm_type in VIOLATION_TYPES and (not open_only or a.cleared_at is None)
    ]


# sites, permits and zones

T = TypeVar("T")


def _found(record: T | None, what: str, key: str) -> T:
    """The record, or 404."""
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {key}")
    return record


def _absent(record: object | None, what: str, key: str) -> None:
    """409 when a record with the key exists already (POST creates, PUT replaces)."""
    if record is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{what} {key} exists")


def _same_key(field: str, body_key: str, path_key: str) -> None:
    """422 when the body names another record than the path."""
    if body_key != path_key:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"{field} differs from the path")


def _deleted(deleted: bool, what: str, key: str) -> Response:
    """204, or 404 when there was nothing to delete."""
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {key}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sites")
def list_sites(store: TruckStoreDep, site_type: SiteType | None = None) -> Document:
    """Sites as a GeoJSON FeatureCollection (the import format)."""
    kind = site_type.value if site_type else None
    return feature_collection([site_feature(s) for s in store.list_sites(kind)])


@router.get("/sites/{site_id}")
def get_site(store: TruckStoreDep, site_id: str) -> Site:
    """One site."""
    return _found(store.get_site(site_id), "site", site_id)


@router.post("/sites", status_code=status.HTTP_201_CREATED)
def create_site(store: TruckStoreDep, site: Site) -> Site:
    """Add a site; 409 when the id exists (PUT replaces)."""
    _absent(store.get_site(site.site_id), "site", site.site_id)
    store.upsert_sites([site])
    return site


@router.put("/sites/{site_id}")
def put_site(store: TruckStoreDep, site_id: str, site: Site) -> Site:
    """Create or replace a site."""
    _same_key("site_id", site.site_id, site_id)
    store.upsert_sites([site])
    return site


@router.delete("/sites/{site_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_site(store: TruckStoreDep, site_id: str) -> Response:
    """Delete a site."""
    return _deleted(store.delete_site(site_id), "site", site_id)


@router.get("/permits")
def list_permits(
    store: TruckStoreDep, company: str | None = None, truck_id: str | None = None
) -> list[Permit]:
    """Permits, optionally of one company or truck."""
    return store.list_permits(company=company, truck_id=truck_id)


@router.get("/permits/{permit_id}")
def get_permit(store: TruckStoreDep, permit_id: str) -> Permit:
    """One permit."""
    return _found(store.get_permit(permit_id), "permit", permit_id)


@router.post("/permits", status_code=status.HTTP_201_CREATED)
def create_permit(store: TruckStoreDep, permit: Permit) -> Permit:
    """Add a permit; 409 when the id exists (PUT replaces)."""
    _absent(store.get_permit(permit.permit_id), "permit", permit.permit_id)
    store.upsert_permits([permit])
    return permit


@router.put("/permits/{permit_id}")
def put_permit(store: TruckStoreDep, permit_id: str, permit: Permit) -> Permit:
    """Create or replace a permit."""
    _same_key("permit_id", permit.permit_id, permit_id)
    store.upsert_permits([permit])
    return permit


@router.delete("/permits/{permit_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_permit(store: TruckStoreDep, permit_id: str) -> Response:
    """Delete a permit."""
    return _deleted(store.delete_permit(permit_id), "permit", permit_id)


@router.get("/zones")
def list_zones(store: TruckStoreDep) -> Document:
    """Restricted and speed zones as a GeoJSON FeatureCollection."""
    return feature_collection([zone_feature(z) for z in store.list_zones()])


@router.get("/zones/{zone_id}")
def get_zone(store: TruckStoreDep, zone_id: str) -> Zone:
    """One zone."""
    return _found(store.get_zone(zone_id), "zone", zone_id)


@router.post("/zones", status_code=status.HTTP_201_CREATED)
def create_zone(store: TruckStoreDep, zone: Zone) -> Zone:
    """Add a zone; 409 when the id exists (PUT replaces)."""
    _absent(store.get_zone(zone.zone_id), "zone", zone.zone_id)
    store.upsert_zones([zone])
    return zone


@router.put("/zones/{zone_id}")
def put_zone(store: TruckStoreDep, zone_id: str, zone: Zone) -> Zone:
    """Create or replace a zone."""
    _same_key("zone_id", zone.zone_id, zone_id)
    store.upsert_zones([zone])
    return zone


@router.delete("/zones/{zone_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_zone(store: TruckStoreDep, zone_id: str) -> Response:
    """Delete a zone."""
    return _deleted(store.delete_zone(zone_id), "zone", zone_id)


# -- texts to the driver -------------------------------------------------------------------

CommandSender = Callable[[Kind, str, Mapping[str, object]], bool]


def get_command_sender(request: Request) -> CommandSender | None:
    """What queues a command on `<root>/<kind>/<id>/cmd` (the hub's MQTT command sender)."""
    sender: CommandSender | None = getattr(request.app.state, "truck_commands", None)
    return sender


CommandSenderDep = Annotated[CommandSender | None, Depends(get_command_sender)]


def get_database(request: Request) -> Database:
    """The app's database."""
    db: Database = request.app.state.db
    return db


DatabaseDep = Annotated[Database, Depends(get_database)]


class DriverMessageIn(BaseModel):
    """A text for the driver's display (and voice, where the terminal has one)."""

    text: str = Field(min_length=1, max_length=300)
    emergency: bool = False


class DriverMessage(BaseModel):
    """A text sent to a truck's terminal and, once it answered, its answer."""

    command_id: str
    device_id: str
    text: str | None = None
    emergency: bool | None = None
    sent_at: datetime | None = None
    # ok, error, rejected or unsupported (the terminal's 0x0001), or "terminal not
    # connected" in detail when the gateway had no connection; None while unanswered.
    result: str | None = None
    detail: str | None = None
    answered_at: datetime | None = None


def _registered_truck(db: Database, device_id: str) -> None:
    record = db.get_device(device_id)
    if record is None or record.kind != Kind.TRUCK:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no truck {device_id!r}")


@router.post(
    "/{device_id}/messages", status_code=status.HTTP_202_ACCEPTED, response_model=DriverMessage
)
def send_driver_message(
    db: DatabaseDep, send: CommandSenderDep, device_id: str, message: DriverMessageIn
) -> DriverMessage:
    """Send a text to the driver (JT/T 808 0x8300 via the gateway); 202 once it is queued.

    The terminal's answer arrives as a cmd/ack: GET the message by its command_id to see it.
    503 when the broker cannot take the command now.
    """
    _registered_truck(db, device_id)
    if len(message.text.encode("gbk", errors="replace")) > 1000:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "text over 1,000 GBK bytes")
    command_id = f"msg-{uuid.uuid4().hex[:20]}"
    sent_at = datetime.now(UTC)
    document = {
        "command_id": command_id,
        "action": "text",
        "text": message.text,
        "emergency": message.emergency,
        "ts": int(sent_at.timestamp() * 1000),
    }
    if send is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no command path to trucks")
    if not send(Kind.TRUCK, device_id, document):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the broker is not reachable")
    return DriverMessage(
        command_id=command_id,
        device_id=device_id,
        text=message.text,
        emergency=message.emergency,
        sent_at=sent_at,
    )


@router.get("/{device_id}/messages/{command_id}", response_model=DriverMessage)
def driver_message(db: DatabaseDep, device_id: str, command_id: str) -> DriverMessage:
    """The terminal's answer to a text (result None while it has not answered)."""
    _registered_truck(db, device_id)
    answer = command_answer(db, device_id, command_id)
    if answer is None:
        return DriverMessage(command_id=command_id, device_id=device_id)
    return DriverMessage(
        command_id=command_id,
        device_id=device_id,
        result=answer.result,
        detail=answer.detail,
        answered_at=answer.answered_at,
    )
