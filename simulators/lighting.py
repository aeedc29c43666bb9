"""Street lamps and their control cabinets: dusk-to-dawn switching, dimming, power, faults."""

import datetime as dt
import queue
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hub.devices.kinds import Kind
from hub.rules.alarm_types import AlarmType
from simulators.city import Cabinet, City, Lamp
from simulators.device import SimDevice, World
from simulators.faults import ActiveFault, Incident

MS_PER_DAY = 86_400_000
FLICKER_INTERVAL_MS = 60_000
SAG_V = 185.0
SURGE_V = 252.0
DEGRADED_SHARE = 0.5
SUPPLY_LOSS = "SUPPLY_LOSS"
DAWN_MARGIN_MS = 60_000
# A lamp fault shows in the hub after a report (every 5 min) and the longest lamp rule's
# debounce (10 min): a fault with less of the night (or day) left than this waits for the
# next one, instead of an incident no sampled series can show.
MIN_VISIBLE_MS = 20 * 60_000

LIGHTING_DARK_FAULTS = frozenset(
    {"lamp_out", "voltage_sag", "voltage_surge", "power_degradation", "flicker"}
)


# -- remote commands: what a controller does with a `cmd` ------------------------------


@dataclass(frozen=True, slots=True)
class Commanded:
    """A state a command set: lit or not at a dim level, until the next switching edge."""

    on: bool
    dim_pct: float
    until_ms: int


def commanded_lamp_state(document: Mapping[str, Any]) -> tuple[bool, float] | None:
    """(on, dim %) a lamp takes for a command; None for one it does not understand.

    `on` with a `dim_pct` lights at that level (as the hub's schedules send it).
    """
    action = document.get("action")
    dim = document.get("dim_pct")
    level = float(dim) if isinstance(dim, int | float) and not isinstance(dim, bool) else None
    if action == "off":
        return False, 0.0
    if action == "on":
        return True, 100.0 if level is None else level
    if action == "dim" and level is not None:
        return level > 0, level
    return None


def command_ack(
    document: Mapping[str, Any], now_ms: int, result: str = "ok", detail: str | None = None
) -> dict[str, Any]:
    """The `cmd/ack` reply to a command document."""
    ack: dict[str, Any] = {"ts": now_ms, "command_id": document.get("command_id"), "result": result}
    if detail is not None:
        ack["detail"] = detail
    return ack


class CabinetSim(SimDevice):
    """A control cabinet: contactor on a dusk-to-dawn clock, three phases, a main breaker."""

    __slots__ = (
        "_switch_cache",
        "cabinet",
        "circuit_phase",
        "circuit_rated_w",
        "commanded",
        "door_open_until_ms",
        "energy_kwh",
        "faulty_lamps",
        "lamps",
        "last_body",
        "last_ms",
        "last_power_w",
        "obeys_commands",
        "off_advance_ms",
        "on_delay_ms",
        "phase_offset_v",
        "tripped_circuits",
    )

    def __init__(self, cabinet: Cabinet, root: str, world: World) -> None:
        super().__init__(cabinet.device_id, Kind.CABINET, root)
        rng = world.rng
        self.cabinet = cabinet
        self.lamps: list[LampSim] = []
        self.circuit_phase = {c: k % 3 for k, c in enumerate(cabinet.circuit_ids)}
        self.on_delay_ms = rng.randint(0, 180_000)
        self.off_advance_ms = rng.randint(0, 180_000)
        self.phase_offset_v = tuple(rng.gauss(0.0, 1.5) for _ in range(3))
        self.energy_kwh = round(rng.uniform(1_000.0, 60_000.0), 1)
        self.last_ms = 0
        self.last_power_w = 0.0
        self.tripped_circuits: frozenset[str] = frozenset()
        self.door_open_until_ms = 0
        self.last_body: dict[str, Any] | None = None
        self.circuit_rated_w: dict[str, float] = dict.fromkeys(cabinet.circuit_ids, 0.0)
        self.faulty_lamps: set[LampSim] = set()
        self.commanded: Commanded | None = None
        self.obeys_commands = True  # False: acks commands but does not carry them out
        # [from, until) during which the contactor state is `on`, to skip sun lookups
        self._switch_cache: tuple[int, int, bool] = (0, 0, False)

    def first_due_ms(self, start_ms: int, world: World) -> int:
        self.last_ms = start_ms
        return start_ms + world.rng.randint(0, int(world.config.cabinet_interval_s * 1000))

    # -- schedule --
    def contactor_on(self, ts_ms: int, world: World) -> bool:
        """Whether the contactor is closed: by command until the next clock edge, else the
        clock's dusk + delay until dawn - advance."""
        commanded = self.commanded
        if commanded is not None:
            if ts_ms < commanded.until_ms:
                return commanded.on
            self.commanded = None
        start, until, on = self._switch_cache
        if start <= ts_ms < until:
            return on
        sun = world.sun
        on = sun.is_dark(ts_ms - self.on_delay_ms) and sun.is_dark(ts_ms + self.off_advance_ms)
        self._switch_cache = (ts_ms, self._next_switch(ts_ms, world), on)
        return on

    def next_switch_ms(self, ts_ms: int, world: World) -> int:
        """The next time the contactor opens or closes after ts."""
        start, until, _ = self._switch_cache
        if start <= ts_ms < until:
            return until
        self.contactor_on(ts_ms, world)
        return self._switch_cache[1]

    def _next_switch(self, ts_ms: int, world: World) -> int:
        sun = world.sun
        day = sun.local_date(ts_ms)
        best: int | None = None
        for offset in (-1, 0, 1, 2):
            dawn_ms, dusk_ms = sun.daylight(day + dt.timedelta(days=offset))
            for edge in (dawn_ms - self.off_advance_ms, dusk_ms + self.on_delay_ms):
                if edge > ts_ms and (best is None or edge < best):
                    best = edge
        return best if best is not None else ts_ms + MS_PER_DAY

    def obey(self, document: Mapping[str, Any], now_ms: int, world: World) -> dict[str, Any]:
        """Switch the contactor on a command (if this cabinet obeys) and reply with an ack."""
        action = document.get("action")
        if action not in ("on", "off"):
            return command_ack(document, now_ms, "unsupported", f"a cabinet cannot {action}")
        if self.obeys_commands:
            until = self.next_switch_ms(now_ms, world)
            self.commanded = Commanded(action == "on", 100.0, until)
            self._report_soon(now_ms, world)
        return command_ack(document, now_ms)

    def supply_ok(self, circuit_id: str) -> bool:
        """False while the circuit's breaker (or the main one) has tripped."""
        return circuit_id not in self.tripped_circuits

    def phase_voltage_v(self, phase: int, world: World) -> float:
        """Nominal supply plus this cabinet's offset on that phase."""
        return world.config.nominal_voltage_v + self.phase_offset_v[phase]

    # -- reporting --
    def act(self, now_ms: int, world: World) -> int | None:
        rng = world.rng
        on = self.contactor_on(now_ms, world)
        phase_w = [0.0, 0.0, 0.0]
        if on:
            share = world.sun.dim_pct(now_ms) / 100.0
            for circuit, rated_w in self.circuit_rated_w.items():
                if circuit not in self.tripped_circuits:
                    phase_w[self.circuit_phase[circuit]] += rated_w * share
        for lamp in self.faulty_lamps:
            # replace the healthy draw of lamps with faults by what they really draw
            phase = self.circuit_phase[lamp.lamp.circuit_id]
            healthy = lamp.healthy_power_w(now_ms, world)
            phase_w[phase] += lamp.expected_power_w(now_ms, world) - healthy
        volts = [round(self.phase_voltage_v(p, world) + rng.gauss(0.0, 0.4), 1) for p in range(3)]
        amps = [
            round(phase_w[p] / (volts[p] * 0.93) * (1 + rng.gauss(0.0, 0.01)), 2)
            if phase_w[p] > 0
            else 0.0
            for p in range(3)
        ]
        power_w = round(sum(phase_w), 1)
        self.energy_kwh += self.last_power_w * (now_ms - self.last_ms) / 3_600_000_000.0
        self.last_ms, self.last_power_w = now_ms, power_w
        body = {
            "ts": now_ms,
            "contactor_on": on,
            "door_open": now_ms < self.door_open_until_ms,
            "voltage_a_v": volts[0],
            "voltage_b_v": volts[1],
            "voltage_c_v": volts[2],
            "current_a_a": max(amps[0], 0.0),
            "current_b_a": max(amps[1], 0.0),
            "current_c_a": max(amps[2], 0.0),
            "power_w": power_w,
            "energy_kwh": round(self.energy_kwh, 2),
        }
        self.last_body = body
        world.notify_cabinet(self.device_id, body)
        if self.online:
            world.emit(self, self.topic_telemetry, body)
        interval = int(world.config.cabinet_interval_s * 1000)
        return min(now_ms + interval, self.next_switch_ms(now_ms, world))

    # -- faults --
    def begin_own_fault(
        self, fault: ActiveFault, now_ms: int, world: World
    ) -> list[Incident] | None:
        if fault.name == "cabinet_door_open":
            self.door_open_until_ms = fault.end_ms
            self._report_soon(now_ms, world)
            return [self.incident(AlarmType.DOOR_OPEN, now_ms, fault.end_ms, fault)]
        if fault.name not in ("cabinet_trip", "circuit_loss"):
            raise ValueError(f"{fault.name} does not apply to a cabinet")
        if not self.contactor_on(now_ms, world):
            return None  # a trip is only visible while the lamps should be lit
        fault.end_ms = min(fault.end_ms, self.next_switch_ms(now_ms, world) - DAWN_MARGIN_MS)
        if fault.end_ms <= now_ms:
            return None
        if fault.name == "cabinet_trip":
            self.tripped_circuits = frozenset(self.cabinet.circuit_ids)
            alarm = AlarmType.CABINET_TRIP
        else:
            circuit = str(fault.params.get("circuit", self.cabinet.circuit_ids[0]))
            if circuit not in self.circuit_phase:
                circuit = (
                    self.cabinet.circuit_ids[int(circuit) - 1] if circuit.isdigit() else circuit
                )
            if circuit not in self.circuit_phase:
                raise ValueError(f"{self.device_id} has no circuit {circuit!r}")
            self.tripped_circuits = frozenset({circuit})
            alarm = AlarmType.CIRCUIT_DARK
        self._report_soon(now_ms, world)
        return [self.incident(alarm, now_ms, fault.end_ms, fault)]

    def end_own_fault(self, fault: ActiveFault, now_ms: int, world: World) -> None:
        self.tripped_circuits = frozenset()
        self.door_open_until_ms = 0
        self._report_soon(now_ms, world)

    def _report_soon(self, now_ms: int, world: World) -> None:
        world.reschedule(self, now_ms)
        for lamp in self.lamps:
            if lamp.lamp.circuit_id in self.cabinet.circuit_ids:
                world.reschedule(lamp, now_ms + world.rng.randint(1_000, 20_000))


class LampSim(SimDevice):
    """A single-lamp controller: follows its cabinet, dims on schedule, meters power and energy."""

    __slots__ = (
        "cabinet",
        "commanded",
        "drop_v",
        "energy_kwh",
        "flicker_on",
        "lamp",
        "last_ms",
        "last_on",
        "last_power_w",
        "obeys_commands",
    )

    def __init__(self, lamp: Lamp, cabinet: CabinetSim, root: str, world: World) -> None:
        super().__init__(lamp.device_id, Kind.LIGHTING, root)
        self.lamp = lamp
        self.cabinet = cabinet
        self.drop_v = world.rng.uniform(0.0, 4.0)
        self.energy_kwh = round(world.rng.uniform(50.0, 3_000.0), 2)
        self.last_ms = 0
        self.last_power_w = 0.0
        self.last_on: bool | None = None
        self.flicker_on = True
        self.commanded: Commanded | None = None
        self.obeys_commands = True  # False: acks commands but does not carry them out

    def obey(self, document: Mapping[str, Any], now_ms: int, world: World) -> dict[str, Any]:
        """Take the commanded state until the next switching edge (if this lamp obeys), report
        it at once and reply with an ack."""
        state = commanded_lamp_state(document)
        if state is None:
            return command_ack(document, now_ms, "unsupported", "unknown action or dim level")
        if self.obeys_commands:
            until = self.cabinet.next_switch_ms(now_ms, world)
            self.commanded = Commanded(state[0], state[1], until)
            world.reschedule(self, now_ms)
        return command_ack(document, now_ms)

    def first_due_ms(self, start_ms: int, world: World) -> int:
        self.last_ms = start_ms
        return start_ms + world.rng.randint(0, int(world.config.lamp_interval_s * 1000))

    def scheduled_on(self, ts_ms: int, world: World) -> bool:
        """Whether the lamp should be lit now (its cabinet's contactor is closed)."""
        return self.cabinet.contactor_on(ts_ms, world)

    def state(self, ts_ms: int, world: World) -> tuple[bool, float, float, float]:
        """(on, dim %, supply voltage, power before noise) including faults."""
        supply = self.cabinet.supply_ok(self.lamp.circuit_id)
        if not supply:
            return False, 0.0, 0.0, 0.0
        phase = self.cabinet.circuit_phase[self.lamp.circuit_id]
        voltage = self.cabinet.phase_voltage_v(phase, world) - self.drop_v
        on = self.scheduled_on(ts_ms, world)
        fault = self.fault.name if self.fault is not None else None
        if fault == "lit_by_day":
            on = True
        dim = world.sun.dim_pct(ts_ms) if on else 0.0
        commanded = self.commanded
        if commanded is not None and ts_ms >= commanded.until_ms:
            self.commanded = commanded = None
        if commanded is not None:
            on, dim = commanded.on and commanded.dim_pct > 0, commanded.dim_pct
        if fault == "lit_by_day":
            dim = 100.0
        power = self.lamp.rated_power_w * dim / 100.0 if on else 0.0
        if fault == "lamp_out":
            power = 0.0
        elif fault == "voltage_sag":
            voltage = SAG_V
        elif fault == "voltage_surge":
            voltage = SURGE_V
        elif fault == "power_degradation":
            power *= DEGRADED_SHARE
        elif fault == "flicker" and not self.flicker_on:
            on, dim, power = False, 0.0, 0.0
        return on, dim, voltage, power

    def expected_power_w(self, ts_ms: int, world: World) -> float:
        """Power drawn from the cabinet, without measurement noise."""
        return self.state(ts_ms, world)[3]

    def healthy_power_w(self, ts_ms: int, world: World) -> float:
        """What the lamp would draw without its own fault (the cabinet's default estimate)."""
        if not self.cabinet.supply_ok(self.lamp.circuit_id):
            return 0.0
        if not self.scheduled_on(ts_ms, world):
            return 0.0
        return self.lamp.rated_power_w * world.sun.dim_pct(ts_ms) / 100.0

    def act(self, now_ms: int, world: World) -> int | None:
        rng = world.rng
        fault = self.fault.name if self.fault is not None else None
        if fault == "flicker":
            self.flicker_on = not self.flicker_on
        on, dim, voltage, power = self.state(now_ms, world)
        if voltage > 0:
            voltage += rng.gauss(0.0, 0.5)
        if power > 0:
            power *= 1.0 + rng.gauss(0.0, 0.015)
        pf = (self.lamp.power_factor - 0.08 * (1.0 - dim / 100.0)) if power > 0 else 0.0
        current = power / (voltage * pf) if power > 0 and voltage > 0 else 0.0
        self.energy_kwh += self.last_power_w * (now_ms - self.last_ms) / 3_600_000_000.0
        self.last_ms, self.last_power_w = now_ms, power
        body: dict[str, Any] = {
            "ts": now_ms,
            "on": on,
            "dim_pct": dim,
            "voltage_v": round(voltage, 1),
            "current_a": round(current, 3),
            "power_w": round(power, 1),
            "power_factor": round(pf, 2),
            "energy_kwh": round(self.energy_kwh, 3),
        }
        if voltage == 0.0:
            body["fault_code"] = SUPPLY_LOSS
        if self.online:
            changed = self.last_on is not None and on != self.last_on
            world.emit(self, self.topic_event if changed else self.topic_telemetry, body)
            self.last_on = on
        interval_ms = int(world.config.lamp_interval_s * 1000)
        if fault == "flicker":
            interval_ms = FLICKER_INTERVAL_MS
        return min(now_ms + interval_ms, self.cabinet.next_switch_ms(now_ms, world))

    def begin_own_fault(
        self, fault: ActiveFault, now_ms: int, world: World
    ) -> list[Incident] | None:
        name = fault.name
        lit = self.scheduled_on(now_ms, world)
        if not self.cabinet.supply_ok(self.lamp.circuit_id):
            return None
        next_switch = self.cabinet.next_switch_ms(now_ms, world)
        if name in LIGHTING_DARK_FAULTS:
            if not lit:
                return None
        elif name == "lit_by_day":
            if lit:
                return None
        else:
            raise ValueError(f"{name} does not apply to a lamp")
        end_ms = min(fault.end_ms, next_switch - DAWN_MARGIN_MS)
        if end_ms - now_ms < MIN_VISIBLE_MS:
            return None  # too little of the night (or day) left to be seen: wait for the next
        fault.end_ms = end_ms
        self.flicker_on = True
        self.cabinet.faulty_lamps.add(self)
        world.reschedule(self, now_ms)
        alarm = fault.definition.alarm_types[0]
        return [self.incident(alarm, now_ms, fault.end_ms, fault)]

    def end_own_fault(self, fault: ActiveFault, now_ms: int, world: World) -> None:
        self.cabinet.faulty_lamps.discard(self)


def build_lighting(city: City, root: str, world: World) -> list[SimDevice]:
    """Cabinets first, then lamps attached to their cabinets."""
    cabinets = {c.device_id: CabinetSim(c, root, world) for c in city.cabinets}
    lamps: list[SimDevice] = []
    for lamp in city.lamps:
        cabinet = cabinets[lamp.cabinet_id]
        sim = LampSim(lamp, cabinet, root, world)
        cabinet.lamps.append(sim)
        cabinet.circuit_rated_w[lamp.circuit_id] += lamp.rated_power_w
        lamps.append(sim)
    return [*cabinets.values(), *lamps]


CommandPublish = Callable[[str, bytes], None]


class CommandInbox:
    """Commands from the broker's thread, applied on the simulation's own thread by `drain`."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self.applied = 0

    @property
    def topics(self) -> tuple[str, str]:
        """What to subscribe to."""
        return f"{self.root}/lighting/+/cmd", f"{self.root}/cabinet/+/cmd"

    @staticmethod
    def nothing_to_stop() -> None:
        """The stop function of an inbox that never listened."""

    def disobey(self, world: World, device_ids: Sequence[str]) -> None:
        """Make these lamps and cabinets ack commands without carrying them out (a fault)."""
        for device_id in device_ids:
            device = world.devices.get(device_id.strip())
            if isinstance(device, LampSim | CabinetSim):
                device.obeys_commands = False

    def offer(self, topic: str, payload: bytes) -> None:
        """Queue a command received on `<root>/<kind>/<id>/cmd` (ignores anything else)."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[3] != "cmd":
            return
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if isinstance(document, dict):
            self._queue.put((parts[2], document))

    def drain(self, world: World) -> int:
        """Apply queued commands to their devices now; publish each ack. Returns how many."""
        done = 0
        while True:
            try:
                device_id, document = self._queue.get_nowait()
            except queue.Empty:
                return done
            device = world.devices.get(device_id)
            if not isinstance(device, LampSim | CabinetSim):
                continue
            ack = device.obey(document, world.now_ms, world)
            ack_topic = f"{device.topic_status.rsplit('/', 1)[0]}/cmd/ack"
            world.publisher.publish(ack_topic, orjson.dumps(ack))
            done += 1
            self.applied += 1


def listen_for_commands(mqtt_url: str, client_id: str, inbox: CommandInbox) -> Callable[[], None]:
    """Subscribe (QoS 1) to the lamps' and cabinets' `cmd` topics; returns a stop function."""
    import paho.mqtt.client as paho  # noqa: PLC0415  (paho only when listening)
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    from simulators.mqtt import parse_mqtt_url  # noqa: PLC0415

    address = parse_mqtt_url(mqtt_url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)

    def on_connect(
        c: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        for topic in inbox.topics:
            c.subscribe(topic, qos=1)

    def on_message(c: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        inbox.offer(message.topic, bytes(message.payload))

    client.on_connect = on_connect
    client.on_message = on_message
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.connect(address.host, address.port)
    client.loop_start()

    def stop() -> None:
        client.loop_stop()
        client.disconnect()

    return stop
