"""Per-spot parking sensors: arrivals by hour of day, log-normal dwell, jitter, heartbeats."""

import math
from typing import Any

from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from simulators.city import City, Spot
from simulators.device import SimDevice, World
from simulators.faults import ActiveFault, Incident

MS_PER_HOUR = 3_600_000
# arrivals per hour at a free spot, by local hour (a weekday profile)
ARRIVALS_PER_HOUR: tuple[float, ...] = (
    0.05,
    0.03,
    0.02,
    0.02,
    0.03,
    0.08,
    0.3,
    0.9,
    1.4,
    1.3,
    1.1,
    1.0,
    1.1,
    1.2,
    1.1,
    1.0,
    1.0,
    1.3,
    1.4,
    1.0,
    0.7,
    0.4,
    0.2,
    0.1,
)
STREET_DWELL_MEDIAN_MIN = 40.0
LOT_DWELL_MEDIAN_MIN = 95.0
DWELL_SIGMA = 0.8
LOT_MAX_DWELL_MIN = 600.0
STAY_SAFETY = 0.9
JITTER_MS = (10_000, 40_000)
# A car needs time to leave and the next to pull in; the hub confirms a state after 60 s
# without a contrary report, so a free gap shorter than that would read as sensor jitter.
MIN_FREE_GAP_MS = 90_000


class SpotSim(SimDevice):
    """True occupancy, what the sensor reports, and when either changes next."""

    __slots__ = (
        "arrival_ms",
        "battery_pct",
        "departed_ms",
        "jitter_until_ms",
        "leave_at_ms",
        "next_change_ms",
        "next_heartbeat_ms",
        "next_jitter_ms",
        "occupied",
        "reported",
        "reported_since_ms",
        "spot",
        "stuck_value",
    )

    def __init__(self, spot: Spot, root: str, world: World) -> None:
        super().__init__(spot.device_id, Kind.PARKING, root)
        self.spot = spot
        self.battery_pct = round(world.rng.uniform(40.0, 100.0), 1)
        self.occupied = False
        self.reported = False
        self.reported_since_ms = 0
        self.arrival_ms = 0
        self.departed_ms = -MIN_FREE_GAP_MS
        self.next_change_ms = 0
        self.next_heartbeat_ms = 0
        self.next_jitter_ms: int | None = None
        self.jitter_until_ms: int | None = None
        self.stuck_value: bool | None = None
        self.leave_at_ms: int | None = None

    # -- the cars --
    def _max_dwell_ms(self) -> float:
        if self.spot.max_stay_min is not None:
            return self.spot.max_stay_min * 60_000 * STAY_SAFETY
        return LOT_MAX_DWELL_MIN * 60_000

    def draw_dwell_ms(self, world: World) -> int:
        """A parking duration: log-normal, capped below the spot's maximum stay."""
        median = LOT_DWELL_MEDIAN_MIN if self.spot.lot_id else STREET_DWELL_MEDIAN_MIN
        minutes = world.rng.lognormvariate(math.log(median), DWELL_SIGMA)
        return int(min(max(minutes * 60_000, 120_000), self._max_dwell_ms()))

    def draw_arrival_ms(self, now_ms: int, world: World) -> int:
        """Next arrival at a free spot: Poisson at the current hour's rate, redrawn each hour."""
        t = now_ms
        for _ in range(48):
            rate = ARRIVALS_PER_HOUR[world.sun.local_minute(t) // 60]
            wait = int(world.rng.expovariate(rate / MS_PER_HOUR))
            hour_end = (t // MS_PER_HOUR + 1) * MS_PER_HOUR
            if t + wait < hour_end:
                return t + wait
            t = hour_end
        return t

    def first_due_ms(self, start_ms: int, world: World) -> int:
        rng = world.rng
        rate = ARRIVALS_PER_HOUR[world.sun.local_minute(start_ms) // 60]
        if rng.random() < min(0.85, rate * 0.6):
            dwell = self.draw_dwell_ms(world)
            self.occupied = self.reported = True
            self.arrival_ms = start_ms - rng.randint(0, dwell - 1)
            self.reported_since_ms = self.arrival_ms
            self.next_change_ms = self.arrival_ms + dwell
        else:
            self.next_change_ms = self.draw_arrival_ms(start_ms, world)
        self.next_heartbeat_ms = start_ms + rng.randint(
            0, int(world.config.parking_heartbeat_s * 1000)
        )
        delay = world.exp_delay_ms(world.noise.parking_jitter_per_day)
        self.next_jitter_ms = None if delay is None else start_ms + delay
        return self._next_due()

    def _next_due(self) -> int:
        due = min(self.next_change_ms, self.next_heartbeat_ms)
        for other in (self.next_jitter_ms, self.jitter_until_ms):
            if other is not None and other < due:
                due = other
        return due

    def _body(self, now_ms: int, occupied: bool) -> dict[str, Any]:
        return {"ts": now_ms, "occupied": occupied, "battery_pct": self.battery_pct}

    def act(self, now_ms: int, world: World) -> int | None:
        rng = world.rng
        event: bool | None = None
        if now_ms >= self.next_change_ms:
            self.occupied = not self.occupied
            if self.occupied:
                self.arrival_ms = now_ms
                self.next_change_ms = self.leave_at_ms or now_ms + self.draw_dwell_ms(world)
            else:
                self.leave_at_ms = None
                self.departed_ms = now_ms
                self.next_change_ms = max(
                    self.draw_arrival_ms(now_ms, world), now_ms + MIN_FREE_GAP_MS
                )
            event = self.occupied
        if self.jitter_until_ms is not None and now_ms >= self.jitter_until_ms:
            self.jitter_until_ms = None
            event = self.occupied  # the spurious reading reverts
        elif self.next_jitter_ms is not None and now_ms >= self.next_jitter_ms:
            delay = world.exp_delay_ms(world.noise.parking_jitter_per_day)
            self.next_jitter_ms = None if delay is None else now_ms + delay
            if self.stuck_value is None and event is None:
                # a neighbouring vehicle or drift flips the reading for a few seconds
                self.jitter_until_ms = now_ms + rng.randint(*JITTER_MS)
                event = not self.occupied
        if self.online:
            if self.stuck_value is not None:
                event = None
            if event is not None and event != self.reported:
                self.reported = event
                self.reported_since_ms = now_ms
                world.emit(self, self.topic_event, self._body(now_ms, event))
            if now_ms >= self.next_heartbeat_ms:
                value = self.stuck_value if self.stuck_value is not None else self.reported
                world.emit(self, self.topic_telemetry, self._body(now_ms, value))
        if now_ms >= self.next_heartbeat_ms:
            self.next_heartbeat_ms = now_ms + int(world.config.parking_heartbeat_s * 1000)
        return self._next_due()

    def begin_own_fault(
        self, fault: ActiveFault, now_ms: int, world: World
    ) -> list[Incident] | None:
        if fault.name == "parking_stuck":
            self.stuck_value = self.reported
            self.jitter_until_ms = None
            incidents = [self.incident(AlarmType.STUCK_SENSOR, now_ms, fault.end_ms, fault)]
            # Stuck at occupied on a spot with a maximum stay, the sensor reports a car that
            # never leaves: the hub cannot tell it from an abandoned car before its stuck
            # window, and should call it an overstay from the reported arrival + max stay.
            if self.reported and self.spot.max_stay_min is not None:
                overstay_from = self.reported_since_ms + self.spot.max_stay_min * 60_000
                if overstay_from < fault.end_ms:
                    incidents.append(
                        self.incident(AlarmType.OVERSTAY, overstay_from, fault.end_ms, fault)
                    )
            return incidents
        if fault.name == "parking_overstay":
            if self.spot.max_stay_min is None:
                raise ValueError(f"{self.device_id} has no maximum stay")
            if self.jitter_until_ms is not None or (
                not self.occupied and now_ms - self.departed_ms < MIN_FREE_GAP_MS
            ):
                return None
            stay_ms = self.spot.max_stay_min * 60_000
            arrival = self.arrival_ms if self.occupied else now_ms
            overstay_from = arrival + stay_ms
            leave_ms = overstay_from + (fault.end_ms - now_ms)
            self.leave_at_ms = leave_ms
            # an occupied spot keeps its car until leave_ms; a free one gets a car now
            self.next_change_ms = leave_ms if self.occupied else now_ms
            fault.end_ms = leave_ms
            world.reschedule(self, now_ms)
            return [self.incident(AlarmType.OVERSTAY, overstay_from, leave_ms, fault)]
        raise ValueError(f"{fault.name} does not apply to a parking spot")

    def end_own_fault(self, fault: ActiveFault, now_ms: int, world: World) -> None:
        if fault.name == "parking_stuck":
            self.stuck_value = None
            if self.reported != self.occupied:
                self.reported = self.occupied
                self.reported_since_ms = now_ms
                world.emit(self, self.topic_event, self._body(now_ms, self.occupied))


def build_parking(city: City, root: str, world: World) -> list[SimDevice]:
    """One sensor per spot."""
    return [SpotSim(s, root, world) for s in city.spots]
