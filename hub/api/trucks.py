"""Enforcement views of muck trucks: live positions, tracks, trips and stops, violations, and
the sites, permits and zones the rules judge against (CRUD; edits reach the rules within a
registry refresh period)."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse

from hub.api.schemas import Instant
from hub.devices.kinds import Kind
from hub.geometry import projection_around
from hub.rules.alarm_changes import alarm_document
from hub.rules.alarm_types import AlarmType
from hub.rules.truck_records import (
    Permit,
    Site,
    SiteType,
    Zone,
    feature_collection,
    site_feature,
    zone_feature,
)
from hub.rules.trucks import RULES, SegmentParams, segment_track, site_visits
from hub.store.alarms import AlarmFilter, list_alarms
from hub.store.database import Database
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


def _douglas_peucker(
    points_xy: npt.NDArray[np.float64], tolerance_m: float
) -> npt.NDArray[np.float64]:
    """Each vertex's kept-below tolerance under Douglas-Peucker from `tolerance_m` up.

    The same splits as `hub.geometry.simplify_indices`, found one level of the recursion
    at a time over every open segment at once: a few dozen numpy passes instead of a few
    per kept vertex. A vertex split off a segment whose farthest vertex is `d` away, under
    ancestors split at distances `d1, d2, ...`, is kept at any tolerance below
    `min(d, d1, d2, ...)`, so `simplify_indices(xy, t)` for every `t >= tolerance_m` is
    `flatnonzero(result > t)`. The end points are `inf`; vertices dropped at
    `tolerance_m` already are `-inf`.
    """
    n = len(points_xy)
    kept_below = np.full(n, -np.inf)
    if n == 0:
        return kept_below
    kept_below[0] = kept_below[-1] = np.inf
    xs = np.ascontiguousarray(points_xy[:, 0])
    ys = np.ascontiguousarray(points_xy[:, 1])
    first = np.zeros(1, dtype=np.intp)
    last = np.full(1, n - 1, dtype=np.intp)
    bound = np.full(1, np.inf)
    while True:
        inner = last - first - 1
        wide = inner > 0
        first, last, bound, inner = first[wide], last[wide], bound[wide], inner[wide]
        if len(first) == 0:
            return kept_below
        # every inner vertex of every open segment (`index`), and its segment's number
        starts = np.zeros(len(first), dtype=np.intp)
        np.cumsum(inner[:-1], out=starts[1:])
        segment = np.repeat(np.arange(len(first)), inner)
        position = np.arange(len(segment))
        index = position + np.repeat(first + 1 - starts, inner)
        origin_x, origin_y = xs[first], ys[first]
        chord_x, chord_y = xs[last] - origin_x, ys[last] - origin_y
        length_sq = (chord_x * chord_x + chord_y * chord_y)[segment]
        chord_x, chord_y = chord_x[segment], chord_y[segment]
        rel_x, rel_y = xs[index] - origin_x[segment], ys[index] - origin_y[segment]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (rel_x * chord_x + rel_y * chord_y) / length_sq
        t[length_sq == 0.0] = 0.0  # a closed segment: the distance to its end point
        np.clip(t, 0.0, 1.0, out=t)
        dist = np.hypot(rel_x - t * chord_x, rel_y - t * chord_y)
        # each segment's farthest vertex, the first one on a tie (as np.argmax)
        worst = np.maximum.reduceat(dist, starts)
        farthest = np.minimum.reduceat(
            np.where(dist == worst[segment], position, len(position)), starts
        )
        split = worst > tolerance_m
        chosen = index[farthest[split]]
        chosen_below = np.minimum(bound[split], worst[split])
        kept_below[chosen] = chosen_below
        first = np.concatenate([first[split], chosen])
        last = np.concatenate([chosen, last[split]])
        bound = np.concatenate([chosen_below, chosen_below])


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
    kept_below = _douglas_peucker(projection.to_xy_array(lat_a, lon_a), tolerance)
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


def _not_found(what: str, key: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {key}")


@router.get("/sites")
def list_sites(store: TruckStoreDep, site_type: SiteType | None = None) -> Document:
    """Sites as a GeoJSON FeatureCollection (the import format)."""
    kind = site_type.value if site_type else None
    return feature_collection([site_feature(s) for s in store.list_sites(kind)])


@router.get("/sites/{site_id}")
def get_site(store: TruckStoreDep, site_id: str) -> Site:
    """One site."""
    site = store.get_site(site_id)
    if site is None:
        raise _not_found("site", site_id)
    return site


@router.post("/sites", status_code=status.HTTP_201_CREATED)
def create_site(store: TruckStoreDep, site: Site) -> Site:
    """Add a site; 409 when the id exists (PUT replaces)."""
    if store.get_site(site.site_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"site {site.site_id} exists")
    store.upsert_sites([site])
    return site


@router.put("/sites/{site_id}")
def put_site(store: TruckStoreDep, site_id: str, site: Site) -> Site:
    """Create or replace a site."""
    if site.site_id != site_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "site_id differs from the path")
    store.upsert_sites([site])
    return site


@router.delete("/sites/{site_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_site(store: TruckStoreDep, site_id: str) -> Response:
    """Delete a site."""
    if not store.delete_site(site_id):
        raise _not_found("site", site_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/permits")
def list_permits(
    store: TruckStoreDep, company: str | None = None, truck_id: str | None = None
) -> list[Permit]:
    """Permits, optionally of one company or truck."""
    return store.list_permits(company=company, truck_id=truck_id)


@router.get("/permits/{permit_id}")
def get_permit(store: TruckStoreDep, permit_id: str) -> Permit:
    """One permit."""
    permit = store.get_permit(permit_id)
    if permit is None:
        raise _not_found("permit", permit_id)
    return permit


@router.post("/permits", status_code=status.HTTP_201_CREATED)
def create_permit(store: TruckStoreDep, permit: Permit) -> Permit:
    """Add a permit; 409 when the id exists (PUT replaces)."""
    if store.get_permit(permit.permit_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"permit {permit.permit_id} exists")
    store.upsert_permits([permit])
    return permit


@router.put("/permits/{permit_id}")
def put_permit(store: TruckStoreDep, permit_id: str, permit: Permit) -> Permit:
    """Create or replace a permit."""
    if permit.permit_id != permit_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "permit_id differs from the path")
    store.upsert_permits([permit])
    return permit


@router.delete("/permits/{permit_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_permit(store: TruckStoreDep, permit_id: str) -> Response:
    """Delete a permit."""
    if not store.delete_permit(permit_id):
        raise _not_found("permit", permit_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/zones")
def list_zones(store: TruckStoreDep) -> Document:
    """Restricted and speed zones as a GeoJSON FeatureCollection."""
    return feature_collection([zone_feature(z) for z in store.list_zones()])


@router.get("/zones/{zone_id}")
def get_zone(store: TruckStoreDep, zone_id: str) -> Zone:
    """One zone."""
    zone = store.get_zone(zone_id)
    if zone is None:
        raise _not_found("zone", zone_id)
    return zone


@router.post("/zones", status_code=status.HTTP_201_CREATED)
def create_zone(store: TruckStoreDep, zone: Zone) -> Zone:
    """Add a zone; 409 when the id exists (PUT replaces)."""
    if store.get_zone(zone.zone_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"zone {zone.zone_id} exists")
    store.upsert_zones([zone])
    return zone


@router.put("/zones/{zone_id}")
def put_zone(store: TruckStoreDep, zone_id: str, zone: Zone) -> Zone:
    """Create or replace a zone."""
    if zone.zone_id != zone_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "zone_id differs from the path")
    store.upsert_zones([zone])
    return zone


@router.delete("/zones/{zone_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_zone(store: TruckStoreDep, zone_id: str) -> Response:
    """Delete a zone."""
    if not store.delete_zone(zone_id):
        raise _not_found("zone", zone_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
