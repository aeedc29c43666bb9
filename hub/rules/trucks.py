"""Muck-truck rules: corridor, dumping, disposal, hours, permits, cover, speed, track, zones.

The rules judge each position against a `TruckContext` (permits, sites, zones, prepared
geometry), a pure snapshot the composition refreshes from the store and swaps in through
`CONTEXT`. Per truck, a `TruckTracker` derives the facts every rule needs from one reading
once (projected position, distance to the permitted route, nearby sites, zones, the
previous fix) so seven rules cost one projection and one route distance per position.
"""

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

from hub.devices.decode import Reading
from hub.devices.kinds import Kind, Load
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import Observation, Verdict, observation
from hub.rules.interface import AnyRule, DeviceInfo
from hub.rules.truck_context import (
    TRUCK,
    TruckContextSource,
    TruckFix,
    TruckTracker,
    local_minute_and_date,
)
from hub.rules.truck_params import (
    CoverParams,
    DumpParams,
    PermitParams,
    RouteParams,
    SpeedParams,
    TrackParams,
    ZoneParams,
)
from hub.rules.truck_records import (
    SiteType,
    ZoneType,
    minute_in_window,
)

# -- the rules --


class _RouteState:
    __slots__ = ("outside_ts_s",)

    def __init__(self) -> None:
        self.outside_ts_s = -math.inf


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
            return observation(
                alarm_type, verdict, fix.ts, device_id, fix.values(), message, details=extra
            )
        return observation(alarm_type, verdict, fix.ts, device_id)


@dataclass(frozen=True)
class _StatelessTruckRule(_TruckRule):
    def initial_state(self) -> None:
        """None: per-truck memory lives in the shared tracker."""
        return


@dataclass(frozen=True)
class RouteDeviationRule(_TruckRule):
    """Off the permitted route by more than the corridor (plus GPS jitter) while ACC is on."""

    name: str = "truck_route"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.ROUTE_DEVIATION})
    params_model: type[RouteParams] = RouteParams

    def initial_state(self) -> _RouteState:
        """When the truck was last seen outside the corridor."""
        return _RouteState()

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: _RouteState,
        params: RouteParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """FAULT beyond corridor + jitter (and until back inside for `rejoin_s`: a fix that
        cuts a corner of the route is no rejoin), OK inside the corridor, HOLD at the edge."""
        fix = self.tracker.fix(reading, device)
        distance = fix.route_distance_m
        if distance is None or not fix.acc_on:
            if faults_only:
                return ()  # a quiet truck: only a FAULT changes anything
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
            if faults_only:
                return ()  # a quiet truck: only a FAULT changes anything
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
    params_model: type[DumpParams] = DumpParams

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
        self,
        reading: Reading,
        device: DeviceInfo,
        state: _DumpState,
        params: DumpParams,
        faults_only: bool = False,
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
                if faults_only:
                    return ()  # a quiet truck: only a FAULT changes anything
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
        if faults_only:
            return ()  # a quiet truck: only a FAULT changes anything
        return (
            self._obs(AlarmType.ILLEGAL_DUMPING, Verdict.OK, fix, device.device_id),
            self._obs(AlarmType.UNAPPROVED_DISPOSAL, Verdict.OK, fix, device.device_id),
        )


@dataclass(frozen=True)
class PermitRule(_StatelessTruckRule):
    """Transport (ACC on) outside the permit's hours, or moving without a valid permit."""

    name: str = "truck_permit"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.OUTSIDE_HOURS, AlarmType.NO_PERMIT})
    params_model: type[PermitParams] = PermitParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: PermitParams,
        faults_only: bool = False,
    ) -> Iterable[Observation]:
        """OUTSIDE_HOURS and NO_PERMIT verdicts of one position."""
        del state
        fix = self.tracker.fix(reading, device)
        device_id = device.device_id
        if not fix.acc_on:
            if faults_only:
                return ()  # a quiet truck: only a FAULT changes anything
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
                if faults_only:
                    return ()  # a quiet truck: only a FAULT changes anything
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
            if faults_only:
                return ()  # a quiet truck: only a FAULT changes anything
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
class CoverRule(_StatelessTruckRule):
    """Moving loaded with the cover open (密闭); stopped is neither fault nor clear."""

    name: str = "truck_cover"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.COVER_OPEN_MOVING})
    params_model: type[CoverParams] = CoverParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: CoverParams,
        faults_only: bool = False,
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
            if faults_only:
                return ()  # a quiet truck: only a FAULT changes anything
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
class SpeedRule(_StatelessTruckRule):
    """Speed above the limit of the zone the truck is in (the lowest of overlapping zones)."""

    name: str = "truck_speed"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.OVERSPEED})
    params_model: type[SpeedParams] = SpeedParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: SpeedParams,
        faults_only: bool = False,
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
            if faults_only:
                return ()  # a quiet truck: only a FAULT changes anything
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
class TrackRule(_StatelessTruckRule):
    """Incomplete track: no fix for a while with ACC on, or an impossible jump between fixes."""

    name: str = "truck_track"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.TRACK_GAP, AlarmType.TRACK_JUMP})
    params_model: type[TrackParams] = TrackParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: TrackParams,
        faults_only: bool = False,
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
            if faults_only:
                return ()  # a quiet truck: only a FAULT changes anything
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
class ZoneRule(_StatelessTruckRule):
    """Inside a restricted zone during its hours with ACC on."""

    name: str = "truck_zone"
    alarm_types: frozenset[AlarmType] = frozenset({AlarmType.RESTRICTED_ZONE})
    params_model: type[ZoneParams] = ZoneParams

    def evaluate(
        self,
        reading: Reading,
        device: DeviceInfo,
        state: None,
        params: ZoneParams,
        faults_only: bool = False,
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
        if faults_only and not inside:
            return ()  # a quiet truck: only a FAULT changes anything
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


def build_rules(source: TruckContextSource) -> tuple[AnyRule, ...]:
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
RULES: tuple[AnyRule, ...] = build_rules(CONTEXT)
