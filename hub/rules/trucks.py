"""Muck-truck rules: corridor, dumping, disposal, hours, permits, cover, speed, track, zones.

The rules judge each position against a `TruckContext` (permits, sites, zones, prepared
geometry), a pure snapshot the composition refreshes from the store and swaps in through
`CONTEXT`. Per truck, a `TruckTracker` derives the facts every rule needs from one reading
once (projected position, distance to the permitted route, nearby sites, zones, the
previous fix) so seven rules cost one projection and one route distance per position.

Trip/stop segmentation and site visits over a stored track are pure functions here too;
the enforcement API runs them on demand.
"""

import itertools
import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from hub.devices.decode import Reading
from hub.devices.kinds import Kind, Load
from hub.geometry import GridIndex, LocalProjection, projection_around
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Observation, Verdict
from hub.rules.engine import DeviceInfo, Rule
from hub.rules.truck_records import (
    Permit,
    Site,
    SiteType,
    Zone,
    ZoneType,
    hours_minutes,
    minute_in_window,
)

SITE_SEARCH_M = 1_000.0
TRACK_EVIDENCE_FIXES = 10
TRUCK = frozenset({Kind.TRUCK})


# -- geometry prepared for one point at a time (pure Python beats numpy for a single point) --


class FastPolyline:
    """A polyline's segments as Python floats: point distance in a few µs for short routes."""

    __slots__ = ("bbox", "segments")

    def __init__(self, points_xy: Sequence[tuple[float, float]]) -> None:
        pts = list(points_xy) if len(points_xy) > 1 else [points_xy[0], points_xy[0]]
        self.segments = tuple(
            (ax, ay, bx - ax, by - ay, (bx - ax) ** 2 + (by - ay) ** 2)
            for (ax, ay), (bx, by) in itertools.pairwise(pts)
        )
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        self.bbox = (min(xs), min(ys), max(xs), max(ys))

    def distance_m(self, x: float, y: float) -> float:
        """Distance from (x, y) to the nearest segment."""
        best = math.inf
        for ax, ay, dx, dy, length_sq in self.segments:
            rx, ry = x - ax, y - ay
            if length_sq > 0.0:
                t = (rx * dx + ry * dy) / length_sq
                if t > 1.0:
                    t = 1.0
                elif t < 0.0:
                    t = 0.0
                rx -= t * dx
                ry -= t * dy
            d = rx * rx + ry * ry
            best = min(best, d)
        return math.sqrt(best)


class FastPolygon:
    """A polygon ring as Python floats: containment and distance of one point."""

    __slots__ = ("bbox", "edges", "ring")

    def __init__(self, ring_xy: Sequence[tuple[float, float]]) -> None:
        ring = list(ring_xy)
        if len(ring) > 1 and ring[0] == ring[-1]:
            ring = ring[:-1]
        self.ring = tuple(ring)
        self.edges = FastPolyline([*ring, ring[0]])
        self.bbox = self.edges.bbox

    def contains(self, x: float, y: float) -> bool:
        """Even-odd ray casting."""
        inside = False
        ring = self.ring
        xj, yj = ring[-1]
        for xi, yi in ring:
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                inside = not inside
            xj, yj = xi, yi
        return inside

    def distance_m(self, x: float, y: float) -> float:
        """0 inside, else the distance to the boundary."""
        return 0.0 if self.contains(x, y) else self.edges.distance_m(x, y)


def _bbox_gap_m(bbox: tuple[float, float, float, float], x: float, y: float) -> float:
    dx = max(bbox[0] - x, 0.0, x - bbox[2])
    dy = max(bbox[1] - y, 0.0, y - bbox[3])
    return math.hypot(dx, dy)


# -- the context --


@dataclass(frozen=True, slots=True)
class SiteGeom:
    """A site with its polygon prepared in the context's projection."""

    site: Site
    polygon: FastPolygon


@dataclass(frozen=True, slots=True)
class PermitGeom:
    """A permit with its route prepared and its hours as minutes of the day."""

    permit: Permit
    route: FastPolyline
    window: tuple[int, int]
    disposal_ids: frozenset[str]

    def valid_on(self, day: date) -> bool:
        """Whether the permit is valid on a local date."""
        return self.permit.valid_from <= day <= self.permit.valid_to


@dataclass(frozen=True, slots=True)
class ZoneGeom:
    """A zone with its polygon prepared and its hours (None: always)."""

    zone: Zone
    polygon: FastPolygon
    window: tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class TruckContext:
    """What the truck rules judge positions against: an immutable snapshot of the store."""

    projection: LocalProjection
    sites: tuple[SiteGeom, ...] = ()
    permits_by_truck: Mapping[str, tuple[PermitGeom, ...]] = field(default_factory=dict)
    permits_by_id: Mapping[str, PermitGeom] = field(default_factory=dict)
    zones: tuple[ZoneGeom, ...] = ()
    loaded: bool = False
    site_grid: GridIndex = field(default_factory=lambda: GridIndex(()))
    zone_grid: GridIndex = field(default_factory=lambda: GridIndex(()))

    @classmethod
    def build(
        cls, sites: Iterable[Site], permits: Iterable[Permit], zones: Iterable[Zone] = ()
    ) -> "TruckContext":
        """Prepare geometry for every record (a loaded context: absence of a permit counts)."""
        sites, permits, zones = list(sites), list(permits), list(zones)
        coords = [p for s in sites for p in s.ring] + [p for r in permits for p in r.route]
        coords += [p for z in zones for p in z.ring]
        projection = projection_around(coords)

        def xy(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
            return [projection.to_xy(lat, lon) for lon, lat in points]

        permit_geoms = [
            PermitGeom(
                p,
                FastPolyline(xy(p.route)),
                hours_minutes(p.allowed_hours),
                frozenset(p.disposal_site_ids),
            )
            for p in permits
        ]
        by_truck: dict[str, list[PermitGeom]] = {}
        for geom in permit_geoms:
            by_truck.setdefault(geom.permit.truck_id, []).append(geom)
        site_geoms = tuple(SiteGeom(s, FastPolygon(xy(s.ring))) for s in sites)
        zone_geoms = tuple(
            ZoneGeom(z, FastPolygon(xy(z.ring)), hours_minutes(z.hours) if z.hours else None)
            for z in zones
        )
        return cls(
            projection=projection,
            sites=site_geoms,
            permits_by_truck={k: tuple(v) for k, v in by_truck.items()},
            permits_by_id={g.permit.permit_id: g for g in permit_geoms},
            zones=zone_geoms,
            loaded=True,
            site_grid=GridIndex([g.polygon.bbox for g in site_geoms], SITE_SEARCH_M),
            zone_grid=GridIndex([g.polygon.bbox for g in zone_geoms], SITE_SEARCH_M),
        )

    def permits_for(self, device: DeviceInfo) -> tuple[PermitGeom, ...]:
        """The truck's permits (by truck id, else the registry's `permit_id` attribute)."""
        found = self.permits_by_truck.get(device.device_id)
        if found:
            return found
        permit_id = device.attributes.get("permit_id")
        geom = self.permits_by_id.get(str(permit_id)) if permit_id else None
        return (geom,) if geom is not None else ()

    def sites_near(self, x: float, y: float, within_m: float) -> list[tuple[float, SiteGeom]]:
        """Sites within `within_m` of a point, nearest first."""
        found = []
        sites = self.sites
        for index in self.site_grid.candidates(x, y, within_m):
            geom = sites[index]
            if _bbox_gap_m(geom.polygon.bbox, x, y) > within_m:
                continue
            d = geom.polygon.distance_m(x, y)
            if d <= within_m:
                found.append((d, geom))
        found.sort(key=lambda item: item[0])
        return found

    def zones_at(self, x: float, y: float) -> tuple[ZoneGeom, ...]:
        """Zones containing a point."""
        zones = self.zones
        return tuple(
            z
            for z in (zones[i] for i in self.zone_grid.candidates(x, y))
            if _bbox_gap_m(z.polygon.bbox, x, y) == 0.0 and z.polygon.contains(x, y)
        )


class TruckContextSource:
    """Holds the current context; the composition swaps in a new one (an atomic reference)."""

    def __init__(self) -> None:
        self._context = TruckContext(LocalProjection(31.30, 120.62))

    @property
    def current(self) -> TruckContext:
        """The context now in force."""
        return self._context

    def replace(self, context: TruckContext) -> None:
        """Put a freshly built context in force."""
        self._context = context


# -- per-truck derived facts --


@dataclass(slots=True)
class TruckFix:
    """One position with everything the rules derive from it (computed once per reading)."""

    ts: datetime
    ts_s: float
    lat: float
    lon: float
    x: float
    y: float
    projection: LocalProjection  # of x and y
    speed_kmh: float
    acc_on: bool
    body_lifted: bool
    cover_closed: bool
    load: Load
    permits: tuple[PermitGeom, ...]
    route_distance_m: float | None
    sites: list[tuple[float, SiteGeom]]
    zones: tuple[ZoneGeom, ...]
    prev_ts_s: float | None = None
    prev_acc_on: bool = False
    prev_load: Load | None = None
    step_m: float = 0.0
    _values: Mapping[str, object] | None = field(default=None, init=False, repr=False)

    def values(self) -> Mapping[str, object]:
        """The reading's fields as evidence values (built once, shared by the rules' faults)."""
        if self._values is None:
            self._values = {
                "lat": self.lat,
                "lon": self.lon,
                "speed_kmh": self.speed_kmh,
                "acc_on": self.acc_on,
                "body_lifted": self.body_lifted,
                "cover_closed": self.cover_closed,
                "load": self.load.value,
            }
        return self._values


class _TruckMemory:
    """What the tracker keeps per truck."""

    __slots__ = ("fix", "track")

    def __init__(self) -> None:
        self.fix: TruckFix | None = None
        self.track: deque[tuple[float, float, float, float]] = deque(maxlen=TRACK_EVIDENCE_FIXES)


class TruckTracker:
    """Derives a `TruckFix` per reading once, shared by every truck rule, and keeps the track."""

    def __init__(self, source: TruckContextSource) -> None:
        self.source = source
        self._memory: dict[str, _TruckMemory] = {}
        # The reading judged last and its fix: the other rules on that reading ask again.
        self._last: tuple[Reading, TruckFix] | None = None

    def fix(self, reading: Reading, device: DeviceInfo) -> TruckFix:
        """The derived fix of this reading (computed by the first rule that asks)."""
        last = self._last
        if last is not None and last[0] is reading:
            return last[1]
        memory = self._memory.get(reading.device_id)
        if memory is None:
            memory = self._memory[reading.device_id] = _TruckMemory()
        current = memory.fix
        ts_s = reading.ts.timestamp()
        if current is not None and current.ts_s == ts_s:
            self._last = (reading, current)
            return current
        context = self.source.current
        payload: Any = reading.payload
        lat, lon = float(payload.lat), float(payload.lon)
        x, y = context.projection.to_xy(lat, lon)
        permits = context.permits_for(device)
        route_distance = min((p.route.distance_m(x, y) for p in permits), default=None)
        fix = TruckFix(
            ts=reading.ts,
            ts_s=ts_s,
            lat=lat,
            lon=lon,
            x=x,
            y=y,
            projection=context.projection,
            speed_kmh=float(payload.speed_kmh),
            acc_on=bool(payload.acc_on),
            body_lifted=bool(payload.body_lifted),
            cover_closed=bool(payload.cover_closed),
            load=Load(payload.load),
            permits=permits,
            route_distance_m=route_distance,
            sites=context.sites_near(x, y, SITE_SEARCH_M),
            zones=context.zones_at(x, y) if context.zones else (),
        )
        if current is not None:
            fix.prev_ts_s = current.ts_s
            fix.prev_acc_on = current.acc_on
            fix.prev_load = current.load
            # metres in the current projection: consistent even if the context changed
            if current.projection is context.projection:
                px, py = current.x, current.y
            else:
                px, py = context.projection.to_xy(current.lat, current.lon)
            fix.step_m = math.hypot(x - px, y - py)
        memory.fix = fix
        memory.track.append((ts_s, lon, lat, fix.speed_kmh))
        self._last = (reading, fix)
        return fix

    def track(self, device_id: str) -> list[list[float]]:
        """The recent track as `[epoch_ms, lon, lat, speed_kmh]` rows (evidence)."""
        memory = self._memory.get(device_id)
        if memory is None:
            return []
        return [[round(t * 1000), lon, lat, v] for t, lon, lat, v in memory.track]

    def forget(self, device_id: str) -> None:
        """Drop a truck's memory."""
        self._memory.pop(device_id, None)


def local_minute_and_date(ts: datetime, zone: tzinfo) -> tuple[int, date]:
    """Minute of the local day and the local date of an instant."""
    local = ts.astimezone(zone)
    return local.hour * 60 + local.minute, local.date()


def load_state(fix: TruckFix) -> str:
    """Load state from the status bits and the lift sensor: `unloading` while the body is up."""
    return "unloading" if fix.body_lifted else fix.load.value


# -- the rules --


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteParams(_Params):
    """Corridor tolerance (GPS jitter up to `jitter_m` beyond the corridor is not a deviation)
    and how long a truck must stay back inside before it counts as having rejoined."""

    jitter_m: float = Field(default=10.0, ge=0)
    rejoin_s: float = Field(default=60.0, ge=0)


class _RouteState:
    __slots__ = ("outside_ts_s",)

    def __init__(self) -> None:
        self.outside_ts_s = -math.inf


class DumpParams(_Params):
    """Where unloading is legitimate: near an approved site; how far an episode reaches."""

    disposal_radius_m: float = Field(default=500.0, gt=0, le=SITE_SEARCH_M)
    construction_radius_m: float = Field(default=200.0, gt=0, le=SITE_SEARCH_M)
    episode_radius_m: float = Field(default=150.0, gt=0)


class PermitParams(_Params):
    """Local time zone of permit hours and dates; speed above which a truck is transporting."""

    timezone: str = "Asia/Shanghai"
    moving_kmh: float = Field(default=5.0, ge=0)


class CoverParams(_Params):
    """Speed above which the truck counts as moving."""

    moving_kmh: float = Field(default=5.0, ge=0)


class SpeedParams(_Params):
    """Default limit outside speed zones and the hysteresis below the limit to clear."""

    default_limit_kmh: float = Field(default=60.0, gt=0)
    tolerance_kmh: float = Field(default=0.0, ge=0)
    clear_below_kmh: float = Field(default=5.0, ge=0)


class TrackParams(_Params):
    """Gap between fixes with ACC on (shorter than offline), jump distance and plausible speed."""

    min_gap_s: float = Field(default=120.0, gt=0)
    max_gap_s: float = Field(default=600.0, gt=0)
    jump_m: float = Field(default=2_000.0, gt=0)
    max_plausible_kmh: float = Field(default=150.0, gt=0)


class ZoneParams(_Params):
    """Local time zone of restricted-zone hours."""

    timezone: str = "Asia/Shanghai"


class TrackEvidence(Mapping[str, object]):
    """A truck fault's details with the recent track, copied only when they are read.

    A truck in a standing fault (no permit, say) reports a FAULT with every fix, and the
    condition table reads the details only when it raises, updates or clears the alarm,
    which it does while judging that same fix. Copying the track for every fix anyway was
    a sixth of the rules' time on bench_ingest's mix.
    """

    __slots__ = ("_details", "_device_id", "_items", "_tracker")

    def __init__(
        self, tracker: "TruckTracker", device_id: str, details: Mapping[str, object]
    ) -> None:
        self._tracker = tracker
        self._device_id = device_id
        self._details = details
        self._items: dict[str, object] | None = None

    def _resolved(self) -> dict[str, object]:
        if self._items is None:
            self._items = {"track": self._tracker.track(self._device_id), **self._details}
        return self._items

    def __getitem__(self, key: str) -> object:
        return self._resolved()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())


@dataclass(frozen=True)
class _TruckRule:
    tracker: TruckTracker
    kinds: frozenset[Kind] = TRUCK

    def initial_state(self) -> Any:
        """None: per-truck memory lives in the shared tracker."""
        return None

    def _obs(
        self,
        alarm_type: AlarmType,
        verdict: Verdict,
        fix: TruckFix,
        device_id: str,
        message: str = "",
        details: Mapping[str, object] | None = None,
    ) -> Observation:
        if verdict is Verdict.FAULT:
            extra = TrackEvidence(self.tracker, device_id, details or {})
            return Observation(
                alarm_type, verdict, fix.ts, device_id, fix.values(), message, details=extra
            )
        return Observation(alarm_type, verdict, fix.ts, device_id)


@dataclass(frozen=True)
class RouteDeviationRule(_TruckRule):
    """Off the permitted route by more than the corridor (plus GPS jitter) while ACC is on."""

    name: str = "truck_route"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.ROUTE_DEVIATION})
    params_model: type[BaseModel] = RouteParams

    def initial_state(self) -> _RouteState:
        """When the truck was last seen outside the corridor."""
        return _RouteState()

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """FAULT beyond corridor + jitter (and until back inside for `rejoin_s`: a fix that
        cuts a corner of the route is no rejoin), OK inside the corridor, HOLD at the edge."""
        fix = self.tracker.fix(reading, device)
        distance = fix.route_distance_m
        if distance is None or not fix.acc_on:
            return (self._obs(AlarmType.ROUTE_DEVIATION, Verdict.OK, fix, device.device_id),)
        corridor = min(p.permit.corridor_m for p in fix.permits)
        if distance > corridor + params.jitter_m:
            verdict = Verdict.FAULT
            state.outside_ts_s = fix.ts_s
        elif fix.ts_s - state.outside_ts_s < params.rejoin_s:
            verdict = Verdict.FAULT
        elif distance <= corridor:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        if verdict is not Verdict.FAULT:
            return (self._obs(AlarmType.ROUTE_DEVIATION, verdict, fix, device.device_id),)
        return (
            self._obs(
                AlarmType.ROUTE_DEVIATION,
                verdict,
                fix,
                device.device_id,
                f"{distance:.0f} m off the permitted route (corridor {corridor:.0f} m)",
                {"route_distance_m": round(distance, 1), "corridor_m": corridor},
            ),
        )


class _DumpState:
    __slots__ = ("alarm_type", "anchor", "site_id")

    def __init__(self) -> None:
        self.alarm_type: AlarmType | None = None
        self.anchor: tuple[float, float] = (0.0, 0.0)
        self.site_id: str | None = None


@dataclass(frozen=True)
class DumpingRule(_TruckRule):
    """Unloading (body lifted, or load full → empty) away from an approved site, or at a
    disposal site not on the permit; the episode lasts while the truck stays there."""

    name: str = "truck_dumping"
    alarm_types: frozenset[AlarmType] = frozenset(
        {AlarmType.ILLEGAL_DUMPING, AlarmType.UNAPPROVED_DISPOSAL}
    )
    params_model: type[BaseModel] = DumpParams

    def initial_state(self) -> _DumpState:
        """Which episode is open and where."""
        return _DumpState()

    def classify(self, fix: TruckFix, params: DumpParams) -> tuple[AlarmType | None, str | None]:
        """What unloading here is: None (legitimate), unapproved disposal or illegal dumping."""
        allowed = frozenset().union(*(p.disposal_ids for p in fix.permits))
        known_illegal: str | None = None
        for distance, geom in fix.sites:
            site = geom.site
            if site.site_type is SiteType.ILLEGAL:
                if distance <= params.construction_radius_m:
                    known_illegal = known_illegal or site.site_id
                continue
            if not site.approved:
                continue
            if site.site_type is SiteType.CONSTRUCTION:
                if distance <= params.construction_radius_m:
                    return None, site.site_id
                continue
            if distance <= params.disposal_radius_m:  # the nearest disposal site decides
                if site.site_id in allowed:
                    return None, site.site_id
                return AlarmType.UNAPPROVED_DISPOSAL, site.site_id
        return AlarmType.ILLEGAL_DUMPING, known_illegal

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """Open an episode at an unload event; FAULT while the truck stays at its spot."""
        fix = self.tracker.fix(reading, device)
        unloaded = fix.prev_load in (Load.FULL, Load.HALF) and fix.load is Load.EMPTY
        if (fix.body_lifted or unloaded) and state.alarm_type is None:
            alarm_type, site_id = self.classify(fix, params)
            if alarm_type is not None:
                state.alarm_type, state.anchor, state.site_id = alarm_type, (fix.x, fix.y), site_id
        if state.alarm_type is not None:
            radius = params.episode_radius_m
            if state.alarm_type is AlarmType.UNAPPROVED_DISPOSAL:
                radius = params.disposal_radius_m
            away = math.hypot(fix.x - state.anchor[0], fix.y - state.anchor[1]) > radius
            if away and not fix.body_lifted:
                alarm_type, state.alarm_type = state.alarm_type, None
                return (self._obs(alarm_type, Verdict.OK, fix, device.device_id),)
            lat, lon = fix.lat, fix.lon
            return (
                self._obs(
                    state.alarm_type,
                    Verdict.FAULT,
                    fix,
                    device.device_id,
                    "suspected illegal dumping"
                    if state.alarm_type is AlarmType.ILLEGAL_DUMPING
                    else f"unloading at disposal site {state.site_id}, not on the permit",
                    {"stop": {"lat": lat, "lon": lon}, "site_id": state.site_id},
                ),
            )
        return (
            self._obs(AlarmType.ILLEGAL_DUMPING, Verdict.OK, fix, device.device_id),
            self._obs(AlarmType.UNAPPROVED_DISPOSAL, Verdict.OK, fix, device.device_id),
        )


@dataclass(frozen=True)
class PermitRule(_TruckRule):
    """Transport (ACC on) outside the permit's hours, or moving without a valid permit."""

    name: str = "truck_permit"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.OUTSIDE_HOURS, AlarmType.NO_PERMIT})
    params_model: type[BaseModel] = PermitParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """OUTSIDE_HOURS and NO_PERMIT verdicts of one position."""
        del state
        fix = self.tracker.fix(reading, device)
        device_id = device.device_id
        if not fix.acc_on:
            return (
                self._obs(AlarmType.OUTSIDE_HOURS, Verdict.OK, fix, device_id),
                self._obs(AlarmType.NO_PERMIT, Verdict.OK, fix, device_id),
            )
        minute, day = local_minute_and_date(fix.ts, _zone(params.timezone))
        valid = [p for p in fix.permits if p.valid_on(day)]
        if not valid:
            loaded_context = self.tracker.source.current.loaded
            moving = fix.speed_kmh >= params.moving_kmh
            verdict = Verdict.FAULT if moving and loaded_context else Verdict.HOLD
            if not loaded_context:
                verdict = Verdict.OK
            if verdict is not Verdict.FAULT:
                return (
                    self._obs(AlarmType.OUTSIDE_HOURS, Verdict.OK, fix, device_id),
                    self._obs(AlarmType.NO_PERMIT, verdict, fix, device_id),
                )
            why = "expired" if fix.permits else "none"
            return (
                self._obs(AlarmType.OUTSIDE_HOURS, Verdict.OK, fix, device_id),
                self._obs(
                    AlarmType.NO_PERMIT,
                    verdict,
                    fix,
                    device_id,
                    f"transporting without a valid permit ({why})",
                    {"permit_ids": [p.permit.permit_id for p in fix.permits]},
                ),
            )
        inside = any(minute_in_window(minute, p.window) for p in valid)
        if inside:
            return (
                self._obs(AlarmType.OUTSIDE_HOURS, Verdict.OK, fix, device_id),
                self._obs(AlarmType.NO_PERMIT, Verdict.OK, fix, device_id),
            )
        hours = ", ".join(p.permit.allowed_hours for p in valid)
        return (
            self._obs(
                AlarmType.OUTSIDE_HOURS,
                Verdict.FAULT,
                fix,
                device_id,
                f"ACC on outside the permitted hours {hours}",
                {"allowed_hours": hours, "permit_ids": [p.permit.permit_id for p in valid]},
            ),
            self._obs(AlarmType.NO_PERMIT, Verdict.OK, fix, device_id),
        )


@dataclass(frozen=True)
class CoverRule(_TruckRule):
    """Moving loaded with the cover open (密闭); stopped is neither fault nor clear."""

    name: str = "truck_cover"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.COVER_OPEN_MOVING})
    params_model: type[BaseModel] = CoverParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """FAULT moving loaded with cover open, HOLD stopped so, OK otherwise."""
        del state
        fix = self.tracker.fix(reading, device)
        if fix.cover_closed or fix.load is Load.EMPTY:
            verdict = Verdict.OK
        elif fix.speed_kmh >= params.moving_kmh:
            verdict = Verdict.FAULT
        else:
            verdict = Verdict.HOLD
        if verdict is not Verdict.FAULT:
            return (self._obs(AlarmType.COVER_OPEN_MOVING, verdict, fix, device.device_id),)
        return (
            self._obs(
                AlarmType.COVER_OPEN_MOVING,
                verdict,
                fix,
                device.device_id,
                f"moving at {fix.speed_kmh:.0f} km/h loaded ({fix.load}) with the cover open",
            ),
        )


@dataclass(frozen=True)
class SpeedRule(_TruckRule):
    """Speed above the limit of the zone the truck is in (the lowest of overlapping zones)."""

    name: str = "truck_speed"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.OVERSPEED})
    params_model: type[BaseModel] = SpeedParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """FAULT above limit + tolerance, OK below limit − clear_below, HOLD between."""
        del state
        fix = self.tracker.fix(reading, device)
        limit = params.default_limit_kmh
        zone_id = None
        for zone in fix.zones:
            z_limit = zone.zone.speed_limit_kmh
            if zone.zone.zone_type is ZoneType.SPEED and z_limit is not None and z_limit < limit:
                limit, zone_id = z_limit, zone.zone.zone_id
        if fix.speed_kmh > limit + params.tolerance_kmh:
            verdict = Verdict.FAULT
        elif fix.speed_kmh <= limit - params.clear_below_kmh:
            verdict = Verdict.OK
        else:
            verdict = Verdict.HOLD
        if verdict is not Verdict.FAULT:
            return (self._obs(AlarmType.OVERSPEED, verdict, fix, device.device_id),)
        return (
            self._obs(
                AlarmType.OVERSPEED,
                verdict,
                fix,
                device.device_id,
                f"{fix.speed_kmh:.0f} km/h where the limit is {limit:.0f} km/h",
                {"limit_kmh": limit, "zone_id": zone_id},
            ),
        )


@dataclass(frozen=True)
class TrackRule(_TruckRule):
    """Incomplete track: no fix for a while with ACC on, or an impossible jump between fixes."""

    name: str = "truck_track"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.TRACK_GAP, AlarmType.TRACK_JUMP})
    params_model: type[BaseModel] = TrackParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """Judge the step from the previous fix to this one."""
        del state
        fix = self.tracker.fix(reading, device)
        device_id = device.device_id
        if fix.prev_ts_s is None:
            return ()
        gap_s = fix.ts_s - fix.prev_ts_s
        gap = fix.acc_on and fix.prev_acc_on and params.min_gap_s <= gap_s <= params.max_gap_s
        implied_kmh = fix.step_m / max(gap_s, 1.0) * 3.6
        jump = fix.step_m > params.jump_m and implied_kmh > params.max_plausible_kmh
        if not gap and not jump:  # the common case: no message or details to build
            return (
                self._obs(AlarmType.TRACK_GAP, Verdict.OK, fix, device_id),
                self._obs(AlarmType.TRACK_JUMP, Verdict.OK, fix, device_id),
            )
        step = {"gap_s": round(gap_s, 1), "step_m": round(fix.step_m, 1)}
        return (
            self._obs(
                AlarmType.TRACK_GAP,
                Verdict.FAULT if gap else Verdict.OK,
                fix,
                device_id,
                f"no fix for {gap_s:.0f} s with ACC on",
                step,
            ),
            self._obs(
                AlarmType.TRACK_JUMP,
                Verdict.FAULT if jump else Verdict.OK,
                fix,
                device_id,
                f"fix {fix.step_m:.0f} m from the previous one in {gap_s:.0f} s",
                {**step, "implied_kmh": round(implied_kmh)},
            ),
        )


@dataclass(frozen=True)
class ZoneRule(_TruckRule):
    """Inside a restricted zone during its hours with ACC on."""

    name: str = "truck_zone"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.RESTRICTED_ZONE})
    params_model: type[BaseModel] = ZoneParams

    def evaluate(
        self, reading: Reading, device: DeviceInfo, state: Any, params: Any
    ) -> Iterable[Observation]:
        """FAULT inside a restricted zone in force, OK elsewhere."""
        del state
        fix = self.tracker.fix(reading, device)
        inside: list[str] = []
        if fix.zones and fix.acc_on:
            minute, _ = local_minute_and_date(fix.ts, _zone(params.timezone))
            inside = [
                z.zone.zone_id
                for z in fix.zones
                if z.zone.zone_type is ZoneType.RESTRICTED
                and (z.window is None or minute_in_window(minute, z.window))
            ]
        return (
            self._obs(
                AlarmType.RESTRICTED_ZONE,
                Verdict.FAULT if inside else Verdict.OK,
                fix,
                device.device_id,
                f"inside restricted zone {', '.join(inside)}",
                {"zone_ids": inside},
            ),
        )


_ZONES: dict[str, tzinfo] = {"UTC": UTC}


def _zone(name: str) -> tzinfo:
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(name)
    return zone


def build_rules(source: TruckContextSource) -> tuple[Rule, ...]:
    """Every truck rule, sharing one tracker over `source`."""
    tracker = TruckTracker(source)
    return (
        TrackRule(tracker),
        RouteDeviationRule(tracker),
        DumpingRule(tracker),
        PermitRule(tracker),
        CoverRule(tracker),
        SpeedRule(tracker),
        ZoneRule(tracker),
    )


CONTEXT = TruckContextSource()
RULES: tuple[Rule, ...] = build_rules(CONTEXT)


# -- trips, stops and site visits over a stored track (for the enforcement views) --


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One stored position."""

    ts: datetime
    lat: float
    lon: float
    speed_kmh: float
    acc_on: bool = True
    body_lifted: bool = False
    load: Load = Load.EMPTY


class SegmentParams(BaseModel):
    """Stop detection: slow or ACC off, staying within a radius, for a minimum duration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_speed_kmh: float = 5.0
    stop_radius_m: float = 100.0
    min_stop_s: float = 120.0
    site_radius_m: float = 500.0
    site_speed_kmh: float = 15.0
    site_min_dwell_s: float = 180.0


@dataclass(frozen=True, slots=True)
class Stop:
    """A stop: where, when, how long, at which site, and whether the truck unloaded there."""

    start: datetime
    end: datetime
    lat: float
    lon: float
    site_id: str | None
    unloaded: bool

    @property
    def duration_s(self) -> float:
        """Length of the stop."""
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Trip:
    """Movement between two stops."""

    start: datetime
    end: datetime
    distance_m: float
    max_speed_kmh: float
    fixes: int
    load: str


@dataclass(frozen=True, slots=True)
class SiteVisit:
    """A site entry and exit: within the radius, under the speed, for over the dwell."""

    site_id: str
    entered_at: datetime
    exited_at: datetime | None


def _load_of(points: Sequence[TrackPoint]) -> str:
    loads = {p.load for p in points}
    if Load.FULL in loads or Load.HALF in loads:
        return "loaded"
    return "empty"


def segment_track(
    points: Sequence[TrackPoint], context: TruckContext, params: SegmentParams | None = None
) -> tuple[list[Trip], list[Stop]]:
    """Split a time-ordered track into trips and stops."""
    params = params or SegmentParams()
    projection = context.projection
    xy = [projection.to_xy(p.lat, p.lon) for p in points]
    stops: list[Stop] = []
    trips: list[Trip] = []
    n = len(points)
    i = 0
    trip_start = 0
    while i < n:
        p = points[i]
        if p.speed_kmh < params.stop_speed_kmh or not p.acc_on:
            j = i
            while j + 1 < n:
                q = points[j + 1]
                slow = q.speed_kmh < params.stop_speed_kmh or not q.acc_on
                near = math.dist(xy[i], xy[j + 1]) <= params.stop_radius_m
                if not (slow and near):
                    break
                j += 1
            if (points[j].ts - p.ts).total_seconds() >= params.min_stop_s:
                if i > trip_start:
                    trips.append(_trip(points, xy, trip_start, i))
                sites = context.sites_near(xy[i][0], xy[i][1], params.site_radius_m)
                segment = points[i : j + 1]
                unloaded = any(s.body_lifted for s in segment) or (
                    _load_of(segment[:1]) == "loaded" and segment[-1].load is Load.EMPTY
                )
                stops.append(
                    Stop(
                        p.ts,
                        points[j].ts,
                        p.lat,
                        p.lon,
                        sites[0][1].site.site_id if sites else None,
                        unloaded,
                    )
                )
                trip_start = j
                i = j + 1
                continue
        i += 1
    if n - 1 > trip_start:
        trips.append(_trip(points, xy, trip_start, n - 1))
    return trips, stops


def _trip(points: Sequence[TrackPoint], xy: Sequence[tuple[float, float]], a: int, b: int) -> Trip:
    distance = sum(math.dist(xy[k], xy[k + 1]) for k in range(a, b))
    segment = points[a : b + 1]
    return Trip(
        points[a].ts,
        points[b].ts,
        round(distance, 1),
        max(p.speed_kmh for p in segment),
        len(segment),
        _load_of(segment),
    )


def site_visits(
    points: Sequence[TrackPoint], context: TruckContext, params: SegmentParams | None = None
) -> list[SiteVisit]:
    """Site entries and exits along a time-ordered track."""
    params = params or SegmentParams()
    visits: list[SiteVisit] = []
    candidate: tuple[str, datetime] | None = None
    inside: str | None = None
    for p in points:
        x, y = context.projection.to_xy(p.lat, p.lon)
        near = context.sites_near(x, y, params.site_radius_m)
        site_id = near[0][1].site.site_id if near else None
        if inside is not None:
            if site_id != inside:
                last = visits[-1]
                visits[-1] = SiteVisit(last.site_id, last.entered_at, p.ts)
                inside = None
            else:
                continue
        if site_id is None or p.speed_kmh >= params.site_speed_kmh:
            candidate = None
            continue
        if candidate is None or candidate[0] != site_id:
            candidate = (site_id, p.ts)
        if (p.ts - candidate[1]).total_seconds() >= params.site_min_dwell_s:
            visits.append(SiteVisit(site_id, candidate[1], None))
            inside, candidate = site_id, None
    return visits
