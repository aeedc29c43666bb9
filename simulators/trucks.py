"""Muck trucks: load at the site, drive the permitted route, unload at the disposal site, park."""

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from hub.devices.kinds import Kind, Load
from hub.rules.alarm_types import AlarmType
from simulators.city import Area, City, Permit, Truck
from simulators.device import SimDevice, World
from simulators.faults import ActiveFault, Incident
from simulators.geo import Point, Polyline, distance_m

OFF_ROUTE_M = 300.0
OFF_ROUTE_RAMP_S = 60.0
OVERSPEED_KMH = 75.0
DETOUR_KMH = 35.0
JUMP_M = (3_000.0, 5_000.0)
GPS_NOISE_M = (5.0, 15.0)
JUNCTION_STOP_P = 0.35
WINDOW_MARGIN_S = 1800.0
DUMP_MIN_DISPOSAL_M = 600.0
DUMP_MIN_CONSTRUCTION_M = 400.0
MIN_FAULT_DRIVE_S = 60.0
# Shortest drive left for a fault to start, per fault, so that each incident outlasts the
# hub's debounce (docs/trucks.md): route deviation 3 min, cover and overspeed 30 s, a
# track gap 2 min between fixes.
MIN_DRIVE_BY_FAULT_S = {
    "truck_off_route": 300.0,
    "truck_cover_open": 120.0,
    "truck_overspeed": 120.0,
    "truck_gps_gap": 240.0,
}
OVERSPEED_SUSTAIN_S = 30.0  # the hub's truck_speed rule: above the limit this long
OFF_ROUTE_VISIBLE_S = 300.0  # 60 s ramps out and back + the truck_route rule's 180 s
GPS_GAP_MIN_S = 150.0  # the hub's track gap starts at 120 s between fixes
# A GPS gap stays below the offline threshold (10 min), else it is an outage, not a gap.
GPS_GAP_MAX_S = 480.0
# A body lift and a stay at a disposal site last minutes, however long a fault waited for
# the truck to drive (a deferred fault's window grows while it waits).
DUMP_LIFT_MAX_S = 600.0
DISPOSAL_DWELL_MAX_S = 1800.0


@dataclass(slots=True)
class Leg:
    """One piece of a truck's plan: a drive along a path or a dwell at a point."""

    tag: str
    path: Polyline | None = None
    point: Point | None = None
    speed_kmh: float = 0.0
    stops: tuple[tuple[float, float], ...] = ()
    duration_s: float = 0.0
    acc_on: bool = True
    body_lifted: bool = False
    cover_closed: bool = True
    load: Load = Load.EMPTY
    load_after: Load | None = None

    def total_s(self) -> float:
        """How long the leg takes without faults."""
        if self.path is None:
            return self.duration_s
        return self.path.length_m / (self.speed_kmh / 3.6) + sum(s for _, s in self.stops)


class TruckSim(SimDevice):
    """A truck's plan, position and body state, and the faults that bend them."""

    __slots__ = (
        "along_m",
        "buffer",
        "cover_open_until_ms",
        "edge_offset_m",
        "elapsed_s",
        "gap_until_ms",
        "heading",
        "interval_s",
        "jump_next",
        "legs",
        "load",
        "next_outage_ms",
        "off_route",
        "outage_until_ms",
        "overspeed_until_ms",
        "permit",
        "position",
        "stop_index",
        "stop_left_s",
        "t_ms",
        "truck",
    )

    def __init__(self, truck: Truck, permit: Permit, root: str, world: World) -> None:
        super().__init__(truck.device_id, Kind.TRUCK, root)
        rng = world.rng
        self.truck = truck
        self.permit = permit
        self.legs: deque[Leg] = deque()
        self.along_m = 0.0
        self.elapsed_s = 0.0
        self.stop_left_s = 0.0
        self.stop_index = 0
        self.position: Point = permit.route.points[0]
        self.heading = 0.0
        self.load = Load.EMPTY
        self.t_ms = 0.0
        self.interval_s = rng.choice(world.config.truck_interval_choices_s)
        if rng.random() < world.noise.gps_edge_ratio:
            self.edge_offset_m = rng.choice((-1.0, 1.0)) * rng.uniform(0.3, 0.6) * permit.corridor_m
        else:
            self.edge_offset_m = rng.uniform(-4.0, 4.0)
        self.off_route: tuple[float, float] | None = None
        self.cover_open_until_ms = 0.0
        self.overspeed_until_ms = 0.0
        self.gap_until_ms = 0.0
        self.jump_next = False
        self.outage_until_ms = 0.0
        self.next_outage_ms: float | None = None
        self.buffer: list[dict[str, Any]] = []

    def first_due_ms(self, start_ms: int, world: World) -> int:
        self.t_ms = float(start_ms)
        delay = world.exp_delay_ms(world.noise.truck_outages_per_day)
        self.next_outage_ms = None if delay is None else start_ms + delay
        return start_ms + world.rng.randint(0, int(self.interval_s * 1000))

    # -- planning --
    def _drive(self, tag: str, path: Polyline, load: Load, world: World) -> Leg:
        rng = world.rng
        stops = tuple(
            (along, rng.uniform(10.0, 60.0))
            for along in path.vertex_distances_m()
            if rng.random() < JUNCTION_STOP_P
        )
        return Leg(tag, path=path, speed_kmh=rng.uniform(28.0, 42.0), stops=stops, load=load)

    def _cycle(self, world: World) -> list[Leg]:
        rng = world.rng
        route = self.permit.route
        start, end = route.points[0], route.points[-1]
        return [
            Leg(
                "loading",
                point=start,
                duration_s=rng.uniform(480.0, 900.0),
                cover_closed=False,
                load=Load.EMPTY,
                load_after=Load.FULL,
            ),
            self._drive("to_disposal", route, Load.FULL, world),
            Leg("arriving", point=end, duration_s=rng.uniform(60.0, 120.0), load=Load.FULL),
            Leg(
                "unloading",
                point=end,
                duration_s=rng.uniform(180.0, 300.0),
                body_lifted=True,
                load=Load.FULL,
                load_after=Load.EMPTY,
            ),
            Leg("leaving", point=end, duration_s=60.0, load=Load.EMPTY),
            self._drive("to_origin", route.reversed(), Load.EMPTY, world),
        ]

    def _window(self, t_ms: float, world: World) -> tuple[bool, float, float]:
        """(allowed now, seconds until the window ends, seconds until it next starts)."""
        minute = world.sun.local_minute(int(t_ms))
        start, end = self.permit.allowed_minutes()
        allowed = self.permit.allows_local_minute(minute)
        until_end = ((end - minute) % 1440) * 60.0
        until_start = ((start - minute) % 1440 or 1440) * 60.0
        return allowed, until_end, until_start

    def _plan(self, world: World) -> None:
        allowed, until_end, until_start = self._window(self.t_ms, world)
        if allowed:
            legs = self._cycle(world)
            if sum(leg.total_s() for leg in legs) + WINDOW_MARGIN_S <= until_end:
                self.legs.extend(legs)
                return
        seconds_into_minute = (self.t_ms / 1000.0) % 60.0
        self.legs.append(
            Leg(
                "parked",
                point=self.permit.route.points[0],
                acc_on=False,
                duration_s=max(until_start - seconds_into_minute, 60.0),
            )
        )

    # -- motion --
    def _finish_leg(self) -> None:
        leg = self.legs.popleft()
        if leg.load_after is not None:
            self.load = leg.load_after
        self.along_m = self.elapsed_s = self.stop_left_s = 0.0
        self.stop_index = 0

    def advance(self, now_ms: int, world: World) -> None:
        """Move the truck's state forward to now_ms."""
        dt_s = (now_ms - self.t_ms) / 1000.0
        guard = 0
        while dt_s > 1e-6:
            guard += 1
            if guard > 10_000:
                raise RuntimeError(f"{self.device_id}: truck plan does not advance")
            if not self.legs:
                self._plan(world)
            leg = self.legs[0]
            self.load = leg.load
            if leg.path is None:
                take = min(dt_s, leg.duration_s - self.elapsed_s)
                self.elapsed_s += take
                self.position = leg.point or self.position
                dt_s -= take
                self.t_ms += take * 1000.0
                if self.elapsed_s >= leg.duration_s - 1e-6:
                    self._finish_leg()
                continue
            if self.stop_left_s > 0:
                take = min(dt_s, self.stop_left_s)
                self.stop_left_s -= take
                dt_s -= take
                self.t_ms += take * 1000.0
                continue
            speeding = self.t_ms < self.overspeed_until_ms
            v = (OVERSPEED_KMH if speeding else leg.speed_kmh) / 3.6
            target = leg.path.length_m
            if self.stop_index < len(leg.stops):
                target = min(target, leg.stops[self.stop_index][0])
            take = min(dt_s, max(target - self.along_m, 0.0) / v)
            self.along_m += v * take
            dt_s -= take
            self.t_ms += take * 1000.0
            x, y, self.heading = leg.path.point_at(self.along_m)
            self.position = (x, y)
            if self.stop_index < len(leg.stops) and self.along_m >= target - 1e-6:
                if not speeding:
                    self.stop_left_s = leg.stops[self.stop_index][1]
                self.stop_index += 1
            if self.along_m >= leg.path.length_m - 1e-6:
                self._finish_leg()
        self.t_ms = float(now_ms)

    def _lateral_m(self, t_ms: float) -> float:
        offset = self.edge_offset_m
        if self.off_route is not None:
            start, end = self.off_route
            if start <= t_ms <= end:
                ramp_ms = OFF_ROUTE_RAMP_S * 1000.0
                share = min(1.0, (t_ms - start) / ramp_ms, (end - t_ms) / ramp_ms)
                offset += math.copysign(OFF_ROUTE_M * share, self.edge_offset_m or 1.0)
        return offset

    def reading(self, now_ms: int, world: World) -> dict[str, Any]:
        """The terminal's report at now_ms."""
        rng = world.rng
        leg = self.legs[0] if self.legs else None
        driving = leg is not None and leg.path is not None and self.stop_left_s <= 0
        x, y = self.position
        if leg is not None and leg.path is not None:
            lateral = self._lateral_m(now_ms)
            rad = math.radians(self.heading)
            x, y = x + lateral * math.cos(rad), y - lateral * math.sin(rad)
        radius = rng.uniform(*GPS_NOISE_M)
        angle = rng.uniform(0.0, 2 * math.pi)
        x, y = x + radius * math.cos(angle), y + radius * math.sin(angle)
        if self.jump_next:
            self.jump_next = False
            jump = rng.uniform(*JUMP_M)
            angle = rng.uniform(0.0, 2 * math.pi)
            x, y = x + jump * math.cos(angle), y + jump * math.sin(angle)
        lat, lon = world.city.projection.to_lat_lon(x, y)
        speed = 0.0
        if driving and leg is not None:
            base = OVERSPEED_KMH if now_ms < self.overspeed_until_ms else leg.speed_kmh
            speed = max(3.0, base + rng.gauss(0.0, 1.5))
        load = self.load
        if leg is not None and leg.tag == "loading" and self.elapsed_s > leg.duration_s / 2:
            load = Load.HALF
        cover_closed = leg.cover_closed if leg is not None else True
        if now_ms < self.cover_open_until_ms:
            cover_closed = False
        return {
            "ts": now_ms,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "speed_kmh": round(speed, 1),
            "heading_deg": round(self.heading, 1),
            "acc_on": leg.acc_on if leg is not None else False,
            "body_lifted": leg.body_lifted if leg is not None else False,
            "cover_closed": cover_closed,
            "load": load.value,
        }

    def act(self, now_ms: int, world: World) -> int | None:
        self.advance(now_ms, world)
        leg = self.legs[0] if self.legs else None
        acc_on = leg is not None and leg.acc_on
        interval_ms = int(
            (self.interval_s if acc_on else world.config.truck_parked_interval_s) * 1000
        )
        if not self.online or now_ms < self.gap_until_ms:
            return now_ms + interval_ms
        body = self.reading(now_ms, world)
        if self.next_outage_ms is not None and now_ms >= self.next_outage_ms and acc_on:
            # network outage: the terminal buffers fixes and uploads them as one batch later
            self.outage_until_ms = now_ms + world.rng.uniform(60_000.0, 150_000.0)
            delay = world.exp_delay_ms(world.noise.truck_outages_per_day)
            self.next_outage_ms = None if delay is None else now_ms + delay
        if now_ms < self.outage_until_ms:
            self.buffer.append(body)
        elif self.buffer:
            self.buffer.append(body)
            world.emit(self, self.topic_telemetry, self.buffer)
            self.buffer = []
        else:
            world.emit(self, self.topic_telemetry, body)
        return now_ms + interval_ms

    # -- faults --
    def _drive_leg(self) -> Leg | None:
        leg = self.legs[0] if self.legs else None
        return leg if leg is not None and leg.path is not None else None

    def _remaining_drive_s(self, speed_kmh: float | None = None) -> float:
        leg = self._drive_leg()
        if leg is None or leg.path is None:
            return 0.0
        return (leg.path.length_m - self.along_m) / ((speed_kmh or leg.speed_kmh) / 3.6)

    def _sites(self, world: World, site_type: str) -> list[Area]:
        return [s for s in world.city.sites if s.prop("site_type") == site_type]

    def begin_own_fault(
        self, fault: ActiveFault, now_ms: int, world: World
    ) -> list[Incident] | None:
        self.advance(now_ms, world)
        name = fault.name
        leg = self._drive_leg()
        duration_ms = fault.end_ms - now_ms
        loaded_forward = leg is not None and leg.tag == "to_disposal" and self.load is Load.FULL
        inc = self.incident
        if name in ("truck_off_route", "truck_cover_open", "truck_overspeed", "truck_gps_gap"):
            # these last while the truck drives; a short route shortens the fault
            if leg is None or (name == "truck_cover_open" and not loaded_forward):
                return None
            speed = OVERSPEED_KMH if name == "truck_overspeed" else None
            drive_ms = (self._remaining_drive_s(speed) - 10.0) * 1000
            shortest_s = MIN_DRIVE_BY_FAULT_S.get(name, MIN_FAULT_DRIVE_S)
            if leg.path is not None:  # a route shorter than that: start near its beginning
                whole_s = leg.path.length_m / ((speed or leg.speed_kmh) / 3.6)
                floor_s = MIN_FAULT_DRIVE_S / 2 if speed else MIN_FAULT_DRIVE_S
                if name == "truck_gps_gap":
                    floor_s = GPS_GAP_MIN_S
                shortest_s = min(shortest_s, max(floor_s, 0.5 * whole_s))
            if name == "truck_overspeed":
                # reported at once (below), then every interval_s: the hub's sustain needs a
                # fix that long after the onset while the truck still speeds
                sustain_s = math.ceil(OVERSPEED_SUSTAIN_S / self.interval_s) * self.interval_s
                shortest_s = max(shortest_s, sustain_s + 2.0)
            elif name == "truck_off_route":
                # a short route does not shorten a deviation below what the hub can see: the
                # ramps out and back plus 3 min outside the corridor and a fix after them
                shortest_s = max(shortest_s, OFF_ROUTE_VISIBLE_S + self.interval_s)
            if drive_ms < min(duration_ms, shortest_s * 1000):
                return None
            longest_ms = GPS_GAP_MAX_S * 1000 if name == "truck_gps_gap" else duration_ms
            fault.end_ms = now_ms + int(min(duration_ms, drive_ms, longest_ms))
        if name == "truck_off_route":
            self.off_route = (float(now_ms), float(fault.end_ms))
            return [inc(AlarmType.ROUTE_DEVIATION, now_ms + 10_000, fault.end_ms - 10_000, fault)]
        if name == "truck_cover_open":
            self.cover_open_until_ms = float(fault.end_ms)
            return [inc(AlarmType.COVER_OPEN_MOVING, now_ms, fault.end_ms, fault)]
        if name == "truck_overspeed":
            self.overspeed_until_ms = float(fault.end_ms)
            self.stop_left_s = 0.0
            world.reschedule(self, now_ms)  # an alarm is reported at once (JT/T 808 terminals)
            return [inc(AlarmType.OVERSPEED, now_ms, fault.end_ms, fault)]
        if name == "truck_gps_gap":
            self.gap_until_ms = float(fault.end_ms)
            return [inc(AlarmType.TRACK_GAP, now_ms, fault.end_ms, fault)]
        if name == "truck_gps_jump":
            if leg is None:
                return None
            self.jump_next = True
            fault.end_ms = now_ms + int(self.interval_s * 1000)
            world.reschedule(self, now_ms)
            return [inc(AlarmType.TRACK_JUMP, now_ms, fault.end_ms, fault)]
        if name == "truck_illegal_dump":
            return self._begin_dump(fault, now_ms, world, loaded_forward)
        if name == "truck_unapproved_disposal":
            return self._begin_unapproved(fault, now_ms, world, loaded_forward)
        if name == "truck_outside_hours":
            return self._begin_outside_hours(fault, now_ms, world)
        raise ValueError(f"{name} does not apply to a truck")

    def _back_to_origin(self, world: World) -> Leg:
        leg = self._drive_leg()
        if leg is None or leg.path is None:
            raise RuntimeError("turning back needs a drive leg")
        return self._drive("to_origin", leg.path.sub_path(self.along_m, 0.0), Load.EMPTY, world)

    def _begin_dump(
        self, fault: ActiveFault, now_ms: int, world: World, loaded_forward: bool
    ) -> list[Incident] | None:
        if not loaded_forward or self.stop_left_s > 0:
            return None
        here = self.position
        for site in world.city.sites:
            construction = site.prop("site_type") == "construction"
            limit = DUMP_MIN_CONSTRUCTION_M if construction else DUMP_MIN_DISPOSAL_M
            if distance_m(here, site.centre) < limit:
                return None
        lift_s = min((fault.end_ms - now_ms) / 1000.0, DUMP_LIFT_MAX_S)
        back = self._back_to_origin(world)
        plan = [
            Leg("dump_stop", point=here, duration_s=60.0, load=Load.FULL),
            Leg(
                "dumping",
                point=here,
                duration_s=lift_s,
                body_lifted=True,
                load=Load.FULL,
                load_after=Load.EMPTY,
            ),
            Leg("dump_leave", point=here, duration_s=60.0, load=Load.EMPTY),
            back,
        ]
        self._replace_plan(plan)
        start = now_ms + 60_000
        fault.end_ms = start + int(lift_s * 1000)
        return [self.incident(AlarmType.ILLEGAL_DUMPING, start, fault.end_ms, fault)]

    def _begin_unapproved(
        self, fault: ActiveFault, now_ms: int, world: World, loaded_forward: bool
    ) -> list[Incident] | None:
        if not loaded_forward or self.stop_left_s > 0:
            return None
        here = self.position
        candidates = [
            s
            for s in self._sites(world, "disposal")
            if s.area_id not in self.permit.disposal_site_ids
        ]
        if not candidates:
            raise ValueError(f"{self.device_id}: every disposal site is on its permit")
        site = min(candidates, key=lambda s: distance_m(here, s.centre))
        out = Polyline((here, site.centre))
        v = DETOUR_KMH / 3.6
        out_s = out.length_m / v
        dwell_s = min(max((fault.end_ms - now_ms) / 1000.0, 300.0), DISPOSAL_DWELL_MAX_S)
        back = self._back_to_origin(world)
        plan = [
            Leg("detour_out", path=out, speed_kmh=DETOUR_KMH, load=Load.FULL),
            Leg("arriving", point=site.centre, duration_s=120.0, load=Load.FULL),
            Leg(
                "unloading",
                point=site.centre,
                duration_s=dwell_s - 240.0,
                body_lifted=True,
                load=Load.FULL,
                load_after=Load.EMPTY,
            ),
            Leg("leaving", point=site.centre, duration_s=120.0, load=Load.EMPTY),
            Leg("detour_back", path=out.reversed(), speed_kmh=DETOUR_KMH, load=Load.EMPTY),
            back,
        ]
        self._replace_plan(plan)
        arrival = now_ms + int(out_s * 1000)
        departure = arrival + int(dwell_s * 1000)
        back_end = departure + int(out_s * 1000)
        fault.end_ms = back_end
        incidents = [self.incident(AlarmType.UNAPPROVED_DISPOSAL, arrival, departure, fault)]
        route, corridor = self.permit.route, self.permit.corridor_m
        exit_m = next(
            (
                d
                for d in (k * 5.0 for k in range(int(out.length_m / 5.0) + 1))
                if route.distance_to(out.point_at(d)[:2]) > corridor
            ),
            None,
        )
        if exit_m is not None:
            leave = now_ms + int(exit_m / v * 1000)
            rejoin = back_end - int(exit_m / v * 1000)
            incidents.append(self.incident(AlarmType.ROUTE_DEVIATION, leave, rejoin, fault))
        return incidents

    def _begin_outside_hours(
        self, fault: ActiveFault, now_ms: int, world: World
    ) -> list[Incident] | None:
        leg = self.legs[0] if self.legs else None
        allowed, _, until_start = self._window(now_ms, world)
        if leg is None or leg.tag != "parked" or allowed:
            return None
        plan = self._cycle(world)
        trip_ms = int(sum(p.total_s() for p in plan) * 1000)
        self._replace_plan(plan)
        fault.end_ms = now_ms + min(trip_ms, int(until_start * 1000))
        world.reschedule(self, now_ms)
        return [self.incident(AlarmType.OUTSIDE_HOURS, now_ms, fault.end_ms, fault)]

    def _replace_plan(self, plan: list[Leg]) -> None:
        self.legs.clear()
        self.legs.extend(plan)
        self.along_m = self.elapsed_s = self.stop_left_s = 0.0
        self.stop_index = 0

    def end_own_fault(self, fault: ActiveFault, now_ms: int, world: World) -> None:
        self.off_route = None
        self.advance(now_ms, world)


def build_trucks(city: City, root: str, world: World) -> list[SimDevice]:
    """One simulated truck per registered truck, bound to its permit."""
    permits = city.permit_by_id()
    return [TruckSim(t, permits[t.permit_id], root, world) for t in city.trucks]
