"""What every simulated device shares: topics, scheduling, faults and the offline fault."""

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from simulators.city import City
from simulators.faults import ActiveFault, Incident, NoiseModel
from simulators.publisher import Publisher
from simulators.sun import SunClock

OFFLINE_FAULTS = frozenset(
    {"lamp_offline", "cabinet_offline", "truck_offline", "manhole_offline", "parking_offline"}
)


@dataclass(frozen=True, slots=True)
class BehaviourConfig:
    """Reporting intervals and electrical constants; simulated seconds."""

    lamp_interval_s: float = 300.0
    cabinet_interval_s: float = 60.0
    truck_interval_choices_s: tuple[float, ...] = (10.0, 15.0, 20.0, 30.0)
    truck_parked_interval_s: float = 300.0
    manhole_heartbeat_s: float = 1800.0
    manhole_alarm_interval_s: float = 300.0
    parking_heartbeat_s: float = 1800.0
    nominal_voltage_v: float = 220.0
    fault_retry_s: float = 30.0
    fault_max_defer_s: float = 36 * 3600.0


class Scheduled:
    """Anything on the simulation's timeline; `generation` invalidates stale heap entries."""

    __slots__ = ("generation",)

    def __init__(self) -> None:
        self.generation = 0

    def act(self, now_ms: int, world: "World") -> int | None:
        """Do what is due at now_ms; return when to be called next, or None for never."""
        raise NotImplementedError


class SimDevice(Scheduled):
    """A device with topics, an online flag and at most one active fault at a time."""

    __slots__ = (
        "device_id",
        "fault",
        "kind",
        "online",
        "topic_event",
        "topic_status",
        "topic_telemetry",
    )

    def __init__(self, device_id: str, kind: Kind, root: str) -> None:
        super().__init__()
        self.device_id = device_id
        self.kind = kind
        prefix = f"{root}/{kind.value}/{device_id}/"
        self.topic_telemetry = prefix + "telemetry"
        self.topic_event = prefix + "event"
        self.topic_status = prefix + "status"
        self.online = True
        self.fault: ActiveFault | None = None

    def first_due_ms(self, start_ms: int, world: "World") -> int:
        """When to report first: a random phase in one interval, so devices do not march in step."""
        raise NotImplementedError

    def incident(
        self, kind_type: AlarmType, start_ms: int, end_ms: int, fault: ActiveFault
    ) -> Incident:
        """An incident on this device."""
        return Incident(self.device_id, self.kind, kind_type, start_ms, end_ms, fault.name)

    def begin_fault(self, fault: ActiveFault, now_ms: int, world: "World") -> list[Incident] | None:
        """Start a fault; return its incidents, or None when the device cannot show it yet."""
        if self.fault is not None:
            return None
        if fault.name in OFFLINE_FAULTS:
            self.fault = fault
            self.online = False
            world.publish_status(self, online=False)
            return [self.incident(AlarmType.OFFLINE, now_ms, fault.end_ms, fault)]
        incidents = self.begin_own_fault(fault, now_ms, world)
        if incidents is not None:
            self.fault = fault
        return incidents

    def begin_own_fault(
        self, fault: ActiveFault, now_ms: int, world: "World"
    ) -> list[Incident] | None:
        """Kind-specific fault start; see `begin_fault`."""
        raise NotImplementedError

    def end_fault(self, fault: ActiveFault, now_ms: int, world: "World") -> None:
        """Stop a fault and report at once so the recovery is visible."""
        if self.fault is not fault:
            return
        self.fault = None
        if fault.name in OFFLINE_FAULTS:
            self.online = True
            world.publish_status(self, online=True)
        self.end_own_fault(fault, now_ms, world)
        world.reschedule(self, now_ms)

    def end_own_fault(self, fault: ActiveFault, now_ms: int, world: "World") -> None:
        """Kind-specific fault end."""
        del fault, now_ms, world

    def param(self, name: str, default: Any) -> Any:
        """A parameter of the active fault."""
        if self.fault is None:
            return default
        return self.fault.params.get(name, default)


class World(Protocol):
    """What a simulated device sees of its world: the clock, randomness, the sun, noise, the
    city and the way out. `simulators.engine.World` is the one there is; devices name this
    Protocol so that the engine, which builds them, is not imported back."""

    rng: random.Random
    sun: SunClock
    noise: NoiseModel
    config: BehaviourConfig
    city: City
    now_ms: int
    messages: int
    publisher: Publisher
    devices: dict[str, SimDevice]

    def schedule(self, item: Scheduled, due_ms: int) -> None:
        """Put an item on the timeline."""
        ...

    def reschedule(self, item: Scheduled, due_ms: int) -> None:
        """Move an item on the timeline."""
        ...

    def record(self, incidents: Iterable[Incident]) -> None:
        """Keep incidents for the ground truth."""
        ...

    def emit(
        self, device: SimDevice, topic: str, body: dict[str, Any] | list[dict[str, Any]]
    ) -> None:
        """Publish a device's reading(s)."""
        ...

    def publish_status(self, device: SimDevice, *, online: bool) -> None:
        """Publish a device's retained online/offline status."""
        ...

    def notify_cabinet(self, device_id: str, body: dict[str, Any]) -> None:
        """Tell the cabinet listeners (the Modbus server) a cabinet's newest reading."""
        ...

    def exp_delay_ms(self, per_day: float) -> int | None:
        """A random delay for an event that happens `per_day` times a day on average."""
        ...
