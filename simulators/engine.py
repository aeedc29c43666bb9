"""The simulation: a timeline of reports and fault events, noise on the way out, a runner."""

import heapq
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.devices.kinds import Kind
from simulators.city import City
from simulators.device import BehaviourConfig, Scheduled, SimDevice
from simulators.device import World as WorldView
from simulators.encoding import encode_fast, encode_with_model
from simulators.faults import FAULTS, ActiveFault, Incident, NoiseModel, TruthWriter
from simulators.lighting import build_lighting
from simulators.manholes import build_manholes
from simulators.parking import build_parking
from simulators.publisher import Publisher
from simulators.sun import SunClock
from simulators.trucks import build_trucks

logger = logging.getLogger(__name__)

CabinetListener = Callable[[str, dict[str, Any]], None]
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"


class _Delayed(Scheduled):
    """A message held back to be published late (noise), or a second copy (duplicate)."""

    __slots__ = ("payload", "topic")

    def __init__(self, topic: str, payload: bytes) -> None:
        super().__init__()
        self.topic = topic
        self.payload = payload

    def act(self, now_ms: int, world: WorldView) -> int | None:
        world.publisher.publish(self.topic, self.payload)
        world.messages += 1
        return None


class _FaultStart(Scheduled):
    __slots__ = ("fault",)

    def __init__(self, fault: ActiveFault) -> None:
        super().__init__()
        self.fault = fault

    def act(self, now_ms: int, world: WorldView) -> int | None:
        device = world.devices.get(self.fault.device_id)
        if device is None:
            logger.warning("fault %s: no device %s", self.fault.name, self.fault.device_id)
            return None
        duration_ms = self.fault.end_ms - self.fault.start_ms
        planned_start = self.fault.start_ms
        self.fault.start_ms, self.fault.end_ms = now_ms, now_ms + duration_ms
        incidents = device.begin_fault(self.fault, now_ms, world)
        if incidents is None:
            # Not showable yet: keep the planned window so retries do not stretch it.
            self.fault.start_ms, self.fault.end_ms = planned_start, planned_start + duration_ms
            if now_ms - planned_start > world.config.fault_max_defer_s * 1000:
                logger.warning(
                    "fault %s on %s dropped: the device never reached a state that can show it",
                    self.fault.name,
                    device.device_id,
                )
                return None
            return now_ms + int(world.config.fault_retry_s * 1000)
        world.record(i for i in incidents if i.end_ms > i.start_ms)
        world.schedule(_FaultEnd(self.fault, device), max(self.fault.end_ms, now_ms + 1))
        return None


class _FaultEnd(Scheduled):
    __slots__ = ("device", "fault")

    def __init__(self, fault: ActiveFault, device: SimDevice) -> None:
        super().__init__()
        self.fault = fault
        self.device = device

    def act(self, now_ms: int, world: WorldView) -> int | None:
        if now_ms < self.fault.end_ms:  # a device moved the end later
            return self.fault.end_ms
        self.device.end_fault(self.fault, now_ms, world)
        return None


@dataclass(slots=True)
class World:
    """What devices see: the clock, randomness, the sun, noise settings and the way out."""

    publisher: Publisher
    rng: random.Random
    sun: SunClock
    noise: NoiseModel
    config: BehaviourConfig
    city: City
    validate: bool = False
    now_ms: int = 0
    messages: int = 0
    devices: dict[str, SimDevice] = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)
    truth: TruthWriter | None = None
    cabinet_listeners: list[CabinetListener] = field(default_factory=list)
    _heap: list[tuple[int, int, int, Scheduled]] = field(default_factory=list)
    _seq: int = 0

    # -- timeline --
    def schedule(self, item: Scheduled, due_ms: int) -> None:
        """Put an item on the timeline at due_ms."""
        self._seq += 1
        heapq.heappush(self._heap, (due_ms, self._seq, item.generation, item))

    def reschedule(self, item: Scheduled, due_ms: int) -> None:
        """Move an item: earlier entries for it become stale."""
        item.generation += 1
        self.schedule(item, due_ms)

    def next_due_ms(self) -> int | None:
        """When the next thing happens."""
        return self._heap[0][0] if self._heap else None

    def run_until(self, until_ms: int) -> int:
        """Process everything due at or before until_ms; return messages published meanwhile."""
        before = self.messages
        heap = self._heap
        pop, push = heapq.heappop, heapq.heappush
        while heap and heap[0][0] <= until_ms:
            due, _, generation, item = pop(heap)
            if generation != item.generation:
                continue
            self.now_ms = due
            next_due = item.act(due, self)
            if next_due is not None:
                self._seq += 1
                push(heap, (max(next_due, due + 1), self._seq, item.generation, item))
        self.now_ms = max(self.now_ms, until_ms)
        return self.messages - before

    # -- output --
    def emit(
        self, device: SimDevice, topic: str, body: dict[str, Any] | list[dict[str, Any]]
    ) -> None:
        """Encode and publish a reading, applying late and duplicate noise."""
        payload = encode_with_model(device.kind, body) if self.validate else encode_fast(body)
        noise = self.noise
        if noise.late_ratio or noise.duplicate_ratio:
            r = self.rng.random()
            if r < noise.late_ratio:
                delay_ms = int(self.rng.uniform(5.0, max(noise.late_max_s, 5.0)) * 1000)
                self.schedule(_Delayed(topic, payload), self.now_ms + delay_ms)
                return
            if r > 1.0 - noise.duplicate_ratio:
                self.schedule(_Delayed(topic, payload), self.now_ms + self.rng.randint(0, 10_000))
        self.publisher.publish(topic, payload)
        self.messages += 1

    def publish_status(self, device: SimDevice, *, online: bool) -> None:
        """Retained online/offline status with its simulated ts (the hub judges a timed
        `offline` in event time; the bare text is what a broker sends as the MQTT will)."""
        state = STATUS_ONLINE if online else STATUS_OFFLINE
        payload = b'{"state":"%s","ts":%d}' % (state, self.now_ms)
        self.publisher.publish(device.topic_status, payload, retain=True)
        self.messages += 1

    def notify_cabinet(self, device_id: str, body: dict[str, Any]) -> None:
        """Tell listeners (the Modbus server) a cabinet's latest values."""
        for listener in self.cabinet_listeners:
            listener(device_id, body)

    def record(self, incidents: Iterable[Incident]) -> None:
        """Keep ground truth and write it out."""
        batch = list(incidents)
        self.incidents.extend(batch)
        if self.truth is not None:
            self.truth.write(batch)

    def exp_delay_ms(self, per_day: float) -> int | None:
        """A Poisson waiting time for something that happens per_day times a day; None if never."""
        if per_day <= 0:
            return None
        return int(self.rng.expovariate(per_day / 86_400_000.0))


class Simulation:
    """All devices of a city on one timeline."""

    def __init__(
        self,
        city: City,
        publisher: Publisher,
        *,
        start_ms: int,
        root: str = "city",
        seed: int = 1,
        noise: NoiseModel | None = None,
        config: BehaviourConfig | None = None,
        validate: bool = False,
        truth: TruthWriter | None = None,
        kinds: Iterable[Kind] | None = None,
    ) -> None:
        spec = city.spec
        self.city = city
        self.root = root
        self.start_ms = start_ms
        self.world = World(
            publisher=publisher,
            rng=random.Random(seed),
            sun=SunClock(spec.centre_lat, spec.centre_lon, spec.timezone),
            noise=noise if noise is not None else NoiseModel(),
            config=config or BehaviourConfig(),
            city=city,
            validate=validate,
            now_ms=start_ms,
            truth=truth,
        )
        wanted = set(kinds) if kinds is not None else set(Kind)
        devices: list[SimDevice] = []
        if Kind.LIGHTING in wanted or Kind.CABINET in wanted:
            devices.extend(build_lighting(city, root, self.world))
        if Kind.TRUCK in wanted:
            devices.extend(build_trucks(city, root, self.world))
        if Kind.MANHOLE in wanted:
            devices.extend(build_manholes(city, root, self.world))
        if Kind.PARKING in wanted:
            devices.extend(build_parking(city, root, self.world))
        self.devices = devices
        self.world.devices = {d.device_id: d for d in devices}
        self._started = False

    @property
    def now_ms(self) -> int:
        """Simulated time reached."""
        return self.world.now_ms

    @property
    def messages(self) -> int:
        """Messages published so far."""
        return self.world.messages

    @property
    def incidents(self) -> list[Incident]:
        """Ground truth so far."""
        return self.world.incidents

    def add_faults(self, faults: Iterable[ActiveFault]) -> None:
        """Put faults on the timeline."""
        for fault in faults:
            if fault.device_id not in self.world.devices:
                raise ValueError(f"fault {fault.name}: unknown device {fault.device_id!r}")
            expected = FAULTS[fault.name].kind
            actual = self.world.devices[fault.device_id].kind
            if actual != expected:
                raise ValueError(
                    f"fault {fault.name} applies to {expected} devices;"
                    f" {fault.device_id} is {actual}"
                )
            self.world.schedule(_FaultStart(fault), fault.start_ms)

    def start(self) -> None:
        """Publish every device's retained online status and schedule first reports."""
        if self._started:
            return
        self._started = True
        world = self.world
        for device in self.devices:
            world.publish_status(device, online=True)
            world.schedule(device, device.first_due_ms(self.start_ms, world))

    def advance_to(self, until_ms: int) -> int:
        """Run the simulation up to until_ms; return the number of messages published."""
        self.start()
        return self.world.run_until(until_ms)

    def stop(self, *, offline: bool) -> None:
        """Optionally mark every device offline (retained), e.g. when the demo is torn down."""
        if offline:
            for device in self.devices:
                self.world.publish_status(device, online=False)


class Clock(Protocol):
    """Time for the runner: monotonic seconds for pacing and wall milliseconds for catch-up."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back."""
        ...

    def wall_ms(self) -> int:
        """Real epoch milliseconds."""
        ...


@dataclass(frozen=True, slots=True)
class RunReport:
    """What a run did."""

    messages: int
    sim_start_ms: int
    sim_end_ms: int
    caught_up: bool


def run_paced(
    simulation: Simulation,
    publisher: Publisher,
    clock: Clock,
    *,
    speed: float,
    should_stop: Callable[[], bool],
    until_ms: int | None = None,
    tick_s: float = 0.1,
    max_step_ms: int = 60_000,
    on_tick: Callable[[Simulation], None] | None = None,
) -> RunReport:
    """Advance simulated time `speed` times faster than real time (0 = as fast as possible).

    Simulated time never passes the wall clock, so timestamps are never in the future: once it
    catches up it follows real time.
    """
    started = clock.monotonic()
    sim_start = simulation.now_ms
    caught_up = False
    while not should_stop():
        wall = clock.wall_ms()
        if speed > 0:
            target = sim_start + int((clock.monotonic() - started) * speed * 1000)
        else:
            target = simulation.now_ms + max_step_ms
        if target >= wall:
            if not caught_up:
                logger.info("simulated time caught up with real time; continuing at real time")
            caught_up = True
            target = wall
        if until_ms is not None:
            target = min(target, until_ms)
        if target > simulation.now_ms:
            simulation.advance_to(target)
        if on_tick is not None:
            on_tick(simulation)
        if until_ms is not None and simulation.now_ms >= until_ms:
            break
        if speed > 0 or caught_up:
            publisher.wait(tick_s)
    return RunReport(simulation.messages, sim_start, simulation.now_ms, caught_up)
