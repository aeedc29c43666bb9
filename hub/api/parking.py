"""Parking operators' API: lots and zones with occupancy now and over time, flows, overstays,
sensor health, guidance to free spots, and Smart Data Models-shaped entities."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel

from hub.api.app import DbDep
from hub.api.schemas import Instant
from hub.geometry import haversine_m
from hub.rules.parking import (
    SpotChange,
    count_flows,
    debounce_spot_states,
    state_at,
)
from hub.rules.parking_params import DEFAULT_CONFIRM_S
from hub.store import parking as store
from hub.store.parking import AreaImportError, AreaKind, ParkingArea, SpotRecord

router = APIRouter(prefix="/parking", tags=["parking"])

# Reports older than this before a window are not needed: heartbeats restate every 30 min.
LOOKBACK = timedelta(hours=6)
# Reports after a past time that settle what the spot's state was at it: a report shortly
# before `at` counts once it stood for the confirmation time, even if that ended after `at`
# (the rule dates a confirmed change from its first report, so both agree).
HINDSIGHT = timedelta(minutes=10)
MAX_HISTORY = timedelta(days=7)
UNKNOWN_ALARMS = frozenset({"offline", "stuck_sensor"})
SpotStatus = Literal["free", "occupied", "closed", "unknown"]


class AreaOccupancy(BaseModel):
    """A lot or zone with its occupancy at one time."""

    id: str
    kind: AreaKind
    name: str
    capacity: int
    street: str | None
    max_stay_min: int | None
    grid_code: str | None
    lat: float
    lon: float
    at: datetime
    sensors: int
    occupied: int
    free: int
    unknown: int
    occupancy: float | None


class SpotState(BaseModel):
    """One spot now: status, since when, and why it is unknown."""

    device_id: str
    status: SpotStatus
    since: datetime | None
    open_alarms: list[str]


class AreaDetail(AreaOccupancy):
    """A lot or zone with each spot's state."""

    spots: list[SpotState]


class HistoryBucket(BaseModel):
    """Occupancy at a bucket's start and the flows during it."""

    start: datetime
    occupied: int
    known: int
    occupancy: float | None
    arrivals: int
    departures: int


class Flows(BaseModel):
    """Arrivals, departures and average dwell of a lot or zone in a window."""

    id: str
    start: datetime
    end: datetime
    arrivals: int
    departures: int
    average_dwell_min: float | None


class SensorHealth(BaseModel):
    """One sensor's last report, battery and open alarms."""

    device_id: str
    area_id: str
    last_ts: datetime | None
    last_received_at: datetime | None
    battery_pct: float | None
    open_alarms: list[str]


class HealthSummary(BaseModel):
    """Sensor health of the spots asked for, with counts per problem."""

    sensors: int
    offline: int
    stuck: int
    low_battery: int
    never_reported: int
    spots: list[SensorHealth]


class Guidance(BaseModel):
    """A lot or zone with free spots, and how far it is from the asking point."""

    id: str
    kind: AreaKind
    name: str
    distance_m: float
    free: int
    capacity: int
    lat: float
    lon: float


class ImportResult(BaseModel):
    """What an import wrote."""

    kind: AreaKind
    imported: int
    spots_updated: int


@dataclass(frozen=True, slots=True)
class _AreaView:
    area: ParkingArea
    spots: tuple[SpotRecord, ...]
    changes: dict[str, list[SpotChange]]


def _now() -> datetime:
    return datetime.now(UTC)


def _kind(path_kind: str) -> AreaKind:
    if path_kind == "lots":
        return AreaKind.LOT
    if path_kind == "zones":
        return AreaKind.ZONE
    raise HTTPException(status.HTTP_404_NOT_FOUND, "use /parking/lots or /parking/zones")


def _load(
    db: DbDep, kind: AreaKind, start: datetime, end: datetime, area_id: str | None = None
) -> tuple[list[_AreaView], dict[str, tuple[str, ...]]]:
    """Areas, their spots, each spot's confirmed changes up to `end`, and open alarms.

    Changes are judged with the reports known now, up to `HINDSIGHT` past `end`, so the state
    at a past time is the one the rule confirmed for it, not the one still pending then.
    """
    horizon = min(_now(), end + HINDSIGHT)
    with db.connection() as conn:
        areas = store.list_areas(conn, kind, area_id)
        spots = store.list_spots(conn, kind, [a.area_id for a in areas])
        device_ids = [s.device_id for s in spots]
        reports = store.fetch_spot_reports(conn, device_ids, start - LOOKBACK, horizon)
        health = store.fetch_spot_health(conn, device_ids)
    alarms = {h.device_id: h.open_alarms for h in health}
    by_area: dict[str, list[SpotRecord]] = {}
    for spot in spots:
        by_area.setdefault(spot.area_id, []).append(spot)
    views = []
    for area in areas:
        members = tuple(by_area.get(area.area_id, ()))
        changes = {
            s.device_id: debounce_spot_states(
                reports.get(s.device_id, []), max(horizon, end), DEFAULT_CONFIRM_S
            )
            for s in members
        }
        views.append(_AreaView(area, members, changes))
    return views, alarms


def _status(changes: Sequence[SpotChange], at: datetime, open_alarms: Sequence[str]) -> SpotStatus:
    if UNKNOWN_ALARMS.intersection(open_alarms):
        return "unknown"
    state = state_at(changes, at)
    if state is None:
        return "unknown"
    return "occupied" if state else "free"


def _occupancy(
    view: _AreaView, at: datetime, alarms: dict[str, tuple[str, ...]], live: bool
) -> AreaOccupancy:
    counts = {"free": 0, "occupied": 0, "unknown": 0, "closed": 0}
    for spot in view.spots:
        open_alarms = alarms.get(spot.device_id, ()) if live else ()
        counts[_status(view.changes[spot.device_id], at, open_alarms)] += 1
    return _area_occupancy(
        view.area, at, len(view.spots), counts["occupied"], counts["free"], counts["unknown"]
    )


def _area_occupancy(
    area: ParkingArea, at: datetime, sensors: int, occupied: int, free: int, unknown: int
) -> AreaOccupancy:
    known = occupied + free
    return AreaOccupancy(
        id=area.area_id,
        kind=area.kind,
        name=area.name,
        capacity=area.capacity,
        street=area.street,
        max_stay_min=area.max_stay_min,
        grid_code=area.grid_code,
        lat=area.lat,
        lon=area.lon,
        at=at,
        sensors=sensors,
        occupied=occupied,
        free=free,
        unknown=unknown,
        occupancy=round(occupied / known, 4) if known else None,
    )


def _occupancy_now(db: DbDep, kind: AreaKind, now: datetime) -> list[AreaOccupancy]:
    """Lots or zones at `now`, as `_occupancy(..., live=True)` of `_load(db, kind, now, now)`.

    Each spot's newest report settles its state unless it came within the confirmation
    time (see `store.fetch_occupancy_now`); only those few spots are debounced here from
    their reports, so a request reads one row per spot instead of hours of reports.
    """
    with db.connection() as conn:
        areas = store.list_areas(conn, kind)
        counts = store.fetch_occupancy_now(
            conn,
            kind,
            [a.area_id for a in areas],
            now=now,
            lookback=LOOKBACK,
            confirm=timedelta(seconds=DEFAULT_CONFIRM_S),
            unknown_alarms=UNKNOWN_ALARMS,
        )
        pending = [device_id for c in counts.values() for device_id in c.pending]
        reports = store.fetch_spot_reports(conn, pending, now - LOOKBACK, now)
    out = []
    for area in areas:
        found = counts.get(area.area_id, store.SpotCounts(0, 0, 0, ()))
        tally = {"occupied": found.occupied, "free": found.free, "unknown": found.unknown}
        for device_id in found.pending:  # spots with an alarm are in found.unknown already
            changes = debounce_spot_states(reports.get(device_id, []), now, DEFAULT_CONFIRM_S)
            tally[_status(changes, now, ())] += 1
        out.append(
            _area_occupancy(
                area, now, found.sensors, tally["occupied"], tally["free"], tally["unknown"]
            )
        )
    return out


def _occupancies(db: DbDep, kind: AreaKind, at: datetime | None) -> list[AreaOccupancy]:
    """Lots or zones now (with open alarms), or as the rule confirmed them at a past time."""
    if at is None:
        return _occupancy_now(db, kind, _now())
    views, _ = _load(db, kind, at, at)
    return [_occupancy(v, at, {}, live=False) for v in views]


@router.post("/import", response_model=ImportResult)
async def import_areas(
    request: Request, db: DbDep, kind: Annotated[AreaKind, Query()]
) -> ImportResult:
    """Import lots or zones from GeoJSON (a FeatureCollection or one feature per line)."""
    body = await request.body()
    try:
        areas = store.parse_areas_geojson(body, kind)
    except AreaImportError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(err)) from err
    with db.connection() as conn:
        written = store.upsert_areas(conn, areas)
        spots = store.apply_zone_max_stay(conn) if kind is AreaKind.ZONE else 0
    return ImportResult(kind=kind, imported=written, spots_updated=spots)


@router.get("/guidance", response_model=list[Guidance])
def guidance(
    db: DbDep,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
    max_distance_m: Annotated[float, Query(gt=0)] = 2000.0,
    kind: AreaKind | None = None,
    at: Instant | None = None,
) -> list[Guidance]:
    """The nearest lots and zones with free spots from a point, nearest first."""
    found: list[Guidance] = []
    for area_kind in (kind,) if kind is not None else tuple(AreaKind):
        for occupancy in _occupancies(db, area_kind, at):
            distance = haversine_m(lat, lon, occupancy.lat, occupancy.lon)
            if distance > max_distance_m or occupancy.free <= 0:
                continue
            found.append(
                Guidance(
                    id=occupancy.id,
                    kind=area_kind,
                    name=occupancy.name,
                    distance_m=round(distance, 1),
                    free=occupancy.free,
                    capacity=occupancy.capacity,
                    lat=occupancy.lat,
                    lon=occupancy.lon,
                )
            )
    found.sort(key=lambda g: (g.distance_m, g.id))
    return found[:limit]


@router.get("/overstays")
def overstays(db: DbDep) -> list[dict[str, Any]]:
    """Cars parked beyond their zone's maximum stay now (open overstay alarms)."""
    with db.connection() as conn:
        return store.fetch_overstays(conn)


@router.get("/health", response_model=HealthSummary)
def sensor_health(
    db: DbDep,
    lot_id: str | None = None,
    zone_id: str | None = None,
    low_battery_pct: Annotated[float, Query(ge=0, le=100)] = 20.0,
) -> HealthSummary:
    """Offline, stuck, low-battery and silent sensors of all spots, or of one lot or zone."""
    with db.connection() as conn:
        spots: list[SpotRecord] = []
        if zone_id is None:
            spots += store.list_spots(conn, AreaKind.LOT, [lot_id] if lot_id else None)
        if lot_id is None:
            spots += store.list_spots(conn, AreaKind.ZONE, [zone_id] if zone_id else None)
        health = store.fetch_spot_health(conn, [s.device_id for s in spots])
    area_of = {s.device_id: s.area_id for s in spots}
    items = [
        SensorHealth(
            device_id=h.device_id,
            area_id=area_of[h.device_id],
            last_ts=h.last_ts,
            last_received_at=h.last_received_at,
            battery_pct=h.battery_pct,
            open_alarms=list(h.open_alarms),
        )
        for h in health
    ]
    return HealthSummary(
        sensors=len(items),
        offline=sum("offline" in h.open_alarms for h in items),
        stuck=sum("stuck_sensor" in h.open_alarms for h in items),
        low_battery=sum(
            h.battery_pct is not None and h.battery_pct <= low_battery_pct for h in items
        ),
        never_reported=sum(h.last_ts is None for h in items),
        spots=items,
    )


@router.get("/ngsi/ParkingSpot")
def ngsi_parking_spots(
    db: DbDep, lot_id: str | None = None, zone_id: str | None = None
) -> list[dict[str, Any]]:
    """Spots as Smart Data Models ParkingSpot entities (key-values)."""
    now = _now()
    entities: list[dict[str, Any]] = []
    for kind, wanted in ((AreaKind.LOT, lot_id), (AreaKind.ZONE, zone_id)):
        if (lot_id or zone_id) and wanted is None:
            continue
        views, alarms = _load(db, kind, now, now, wanted)
        site = "OffStreetParking" if kind is AreaKind.LOT else "OnStreetParking"
        for view in views:
            for spot in view.spots:
                changes = view.changes[spot.device_id]
                spot_status = _status(changes, now, alarms.get(spot.device_id, ()))
                last = changes[-1].ts if changes else None
                entities.append(
                    {
                        "id": f"urn:ngsi-ld:ParkingSpot:{spot.device_id}",
                        "type": "ParkingSpot",
                        "name": spot.device_id,
                        "status": spot_status,
                        "category": ["offStreet" if kind is AreaKind.LOT else "onStreet"],
                        "refParkingSite": f"urn:ngsi-ld:{site}:{view.area.area_id}",
                        "location": {"type": "Point", "coordinates": [spot.lon, spot.lat]},
                        "dateModified": last.isoformat() if last else None,
                    }
                )
    return entities


def _site_entity(occupancy: AreaOccupancy, entity_type: str) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{entity_type}:{occupancy.id}",
        "type": entity_type,
        "name": occupancy.name,
        "totalSpotNumber": occupancy.capacity,
        "availableSpotNumber": occupancy.free,
        "occupiedSpotNumber": occupancy.occupied,
        "occupancy": occupancy.occupancy,
        "location": {"type": "Point", "coordinates": [occupancy.lon, occupancy.lat]},
        "dateObserved": occupancy.at.isoformat(),
        **(
            {"maximumParkingDuration": f"PT{occupancy.max_stay_min}M"}
            if occupancy.max_stay_min
            else {}
        ),
    }


@router.get("/ngsi/OffStreetParking")
def ngsi_off_street(db: DbDep) -> list[dict[str, Any]]:
    """Lots as Smart Data Models OffStreetParking entities (key-values)."""
    return [_site_entity(o, "OffStreetParking") for o in _occupancy_now(db, AreaKind.LOT, _now())]


@router.get("/ngsi/OnStreetParking")
def ngsi_on_street(db: DbDep) -> list[dict[str, Any]]:
    """Zones as Smart Data Models OnStreetParking entities (key-values)."""
    return [_site_entity(o, "OnStreetParking") for o in _occupancy_now(db, AreaKind.ZONE, _now())]


@router.get("/{area_kind}", response_model=list[AreaOccupancy])
def list_areas(db: DbDep, area_kind: str, at: Instant | None = None) -> list[AreaOccupancy]:
    """Lots or zones with their occupancy now (or at a past time `at`)."""
    return _occupancies(db, _kind(area_kind), at)


@router.get("/{area_kind}/{area_id}", response_model=AreaDetail)
def get_area(db: DbDep, area_kind: str, area_id: str) -> AreaDetail:
    """One lot or zone now, with each spot's state."""
    kind = _kind(area_kind)
    now = _now()
    views, alarms = _load(db, kind, now, now, area_id)
    if not views:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} {area_id!r}")
    view = views[0]
    spots = []
    for spot in view.spots:
        changes = view.changes[spot.device_id]
        open_alarms = alarms.get(spot.device_id, ())
        spots.append(
            SpotState(
                device_id=spot.device_id,
                status=_status(changes, now, open_alarms),
                since=changes[-1].ts if changes else None,
                open_alarms=list(open_alarms),
            )
        )
    return AreaDetail(**_occupancy(view, now, alarms, True).model_dump(), spots=spots)


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or _now()
    start = start or end - timedelta(days=1)
    if start >= end or end - start > MAX_HISTORY:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, "need start < end and at most 7 days"
        )
    return start, end


@router.get("/{area_kind}/{area_id}/history", response_model=list[HistoryBucket])
def area_history(
    db: DbDep,
    area_kind: str,
    area_id: str,
    start: Instant | None = None,
    end: Instant | None = None,
    bucket_min: Annotated[int, Query(ge=5, le=1440, multiple_of=5)] = 5,
) -> list[HistoryBucket]:
    """Occupancy at the start of each bucket (5-minute multiples) and arrivals/departures in it."""
    kind = _kind(area_kind)
    start, end = _window(start, end)
    views, _ = _load(db, kind, start, end, area_id)
    if not views:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} {area_id!r}")
    view = views[0]
    step = timedelta(minutes=bucket_min)
    bucket = datetime.fromtimestamp(
        start.timestamp() // step.total_seconds() * step.total_seconds(), UTC
    )
    out = []
    while bucket < end:
        occupancy = _occupancy(view, bucket, {}, live=False)
        flows = count_flows(view.changes.values(), bucket, bucket + step)
        out.append(
            HistoryBucket(
                start=bucket,
                occupied=occupancy.occupied,
                known=occupancy.occupied + occupancy.free,
                occupancy=occupancy.occupancy,
                arrivals=flows.arrivals,
                departures=flows.departures,
            )
        )
        bucket += step
    return out


@router.get("/{area_kind}/{area_id}/flows", response_model=Flows)
def area_flows(
    db: DbDep,
    area_kind: str,
    area_id: str,
    start: Instant | None = None,
    end: Instant | None = None,
) -> Flows:
    """Arrivals, departures and the average dwell of stays that ended in the window."""
    kind = _kind(area_kind)
    start, end = _window(start, end)
    views, _ = _load(db, kind, start - timedelta(days=1), end, area_id)
    if not views:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} {area_id!r}")
    flows = count_flows(views[0].changes.values(), start, end)
    average = flows.average_dwell_s
    return Flows(
        id=area_id,
        start=start,
        end=end,
        arrivals=flows.arrivals,
        departures=flows.departures,
        average_dwell_min=None if average is None else round(average / 60, 1),
    )
