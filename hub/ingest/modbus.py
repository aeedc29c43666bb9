"""Cabinets polled over Modbus (TCP, or RTU on a serial line); the hub's only pymodbus importer.

Each reading becomes the cabinet's telemetry JSON on its MQTT topic and is handed to the
ingest pipeline as a raw message, so it takes the same validation, storage and rules as
a reading that came over MQTT. One thread per endpoint (a TCP gateway or a serial line
serves its units one request at a time); a failed read is retried at once with a short
exponential backoff, and a cabinet that keeps failing is polled less often, doubling up
to `backoff_max_s`. Per-cabinet polls and errors are Prometheus metrics and `status()`.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.ingest.pipeline import RawMessage

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ModbusClient = ModbusTcpClient | ModbusSerialClient


@dataclass(frozen=True, slots=True)
class RegisterField:
    """One value of a register map: address, width in 16-bit words and the raw-per-unit scale."""

    name: str
    address: int
    words: int
    scale: float


# Holding registers of the cabinets' controller (docs/simulators.md, "Modbus TCP register map").
STATUS_REGISTER = 0
CABINET_REGISTER_MAP: tuple[RegisterField, ...] = (
    RegisterField("voltage_a_v", 1, 1, 10),
    RegisterField("voltage_b_v", 2, 1, 10),
    RegisterField("voltage_c_v", 3, 1, 10),
    RegisterField("current_a_a", 4, 1, 100),
    RegisterField("current_b_a", 5, 1, 100),
    RegisterField("current_c_a", 6, 1, 100),
    RegisterField("power_w", 7, 2, 1),
    RegisterField("energy_kwh", 9, 2, 100),
    RegisterField("ts_s", 11, 2, 1),
)
CABINET_REGISTER_COUNT = 13


class RegisterMapError(ValueError):
    """A register block that does not fit the map."""


def decode_cabinet_registers(
    words: Sequence[int], register_map: Sequence[RegisterField] = CABINET_REGISTER_MAP
) -> dict[str, float | bool]:
    """Named values of a cabinet register block: status bits, then each scaled field."""
    needed = max(f.address + f.words for f in register_map)
    if len(words) < needed:
        raise RegisterMapError(f"expected {needed} registers, got {len(words)}")
    status = words[STATUS_REGISTER]
    out: dict[str, float | bool] = {
        "contactor_on": bool(status & 1),
        "door_open": bool(status & 2),
        "phase_dead": bool(status & 4),
    }
    for field in register_map:
        raw = 0
        for word in words[field.address : field.address + field.words]:
            raw = raw << 16 | word
        out[field.name] = raw / field.scale
    return out


def cabinet_payload(values: dict[str, float | bool], polled_at: datetime) -> dict[str, object]:
    """The cabinet telemetry object of the wire contract, stamped with the controller's time.

    A controller without a clock register (or a zero one) is stamped with the poll time.
    """
    ts_s = float(values.get("ts_s", 0.0))
    ts_ms = int(ts_s * 1000) if ts_s > 0 else int(polled_at.timestamp() * 1000)
    payload: dict[str, object] = {"ts": ts_ms, "source": "modbus"}
    for name in (
        "contactor_on",
        "door_open",
        "voltage_a_v",
        "voltage_b_v",
        "voltage_c_v",
        "current_a_a",
        "current_b_a",
        "current_c_a",
        "power_w",
        "energy_kwh",
    ):
        payload[name] = values[name]
    return payload


@dataclass(frozen=True, slots=True)
class ModbusTarget:
    """Where a cabinet answers: TCP host and port, or a serial line, and its unit id."""

    cabinet_id: str
    unit: int
    host: str | None = None
    port: int | None = None
    serial_port: str | None = None
    baudrate: int = 9600

    @property
    def endpoint(self) -> str:
        """The connection this cabinet shares with others on the same gateway or line."""
        return f"serial:{self.serial_port}" if self.serial_port else f"tcp:{self.host}:{self.port}"


def _int_attribute(value: object, default: int | None = None) -> int | None:
    if isinstance(value, bool) or value in (None, ""):
        return default
    if isinstance(value, int | float | str):
        return int(value)
    return default


def targets_from_records(records: Iterable[DeviceRecord]) -> list[ModbusTarget]:
    """Cabinets with `modbus_host`/`modbus_port` (or `modbus_serial`) attributes; unit 1 default."""
    targets: list[ModbusTarget] = []
    for record in records:
        if record.kind is not Kind.CABINET:
            continue
        attrs = record.attributes
        unit = _int_attribute(attrs.get("modbus_unit"), 1) or 1
        serial = attrs.get("modbus_serial")
        if isinstance(serial, str) and serial:
            baud = _int_attribute(attrs.get("modbus_baudrate"), 9600) or 9600
            targets.append(ModbusTarget(record.device_id, unit, serial_port=serial, baudrate=baud))
            continue
        host = attrs.get("modbus_host")
        port = _int_attribute(attrs.get("modbus_port"))
        if isinstance(host, str) and host and port:
            targets.append(ModbusTarget(record.device_id, unit, host=host, port=port))
    return targets


@dataclass(slots=True)
class CabinetPollStatus:
    """What the poller knows about one cabinet."""

    cabinet_id: str
    endpoint: str
    unit: int
    polls: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    last_ok_at: datetime | None = None
    last_error: str | None = None
    next_poll_in_s: float = 0.0


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(UTC)


class ModbusPoller:
    """Polls every target's register block and submits it as the cabinet's telemetry."""

    def __init__(
        self,
        targets: Sequence[ModbusTarget],
        *,
        submit: Callable[[RawMessage], None],
        root: str,
        interval_s: float = 30.0,
        timeout_s: float = 2.0,
        retries: int = 2,
        retry_base_s: float = 0.2,
        backoff_max_s: float = 300.0,
        registry: CollectorRegistry | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._targets = tuple(targets)
        self._submit = submit
        self._root = root
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._retries = retries
        self._retry_base_s = retry_base_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._status = {
            t.cabinet_id: CabinetPollStatus(t.cabinet_id, t.endpoint, t.unit) for t in targets
        }
        self._next_mono: dict[str, float] = {t.cabinet_id: 0.0 for t in targets}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        registry = registry or CollectorRegistry()
        self._polls = Counter(
            "hub_modbus_polls",
            "Modbus cabinet polls that returned a reading",
            ["cabinet"],
            registry=registry,
        )
        self._errors = Counter(
            "hub_modbus_errors",
            "Modbus cabinet reads that failed (after retries)",
            ["cabinet"],
            registry=registry,
        )
        self._failing = Gauge(
            "hub_modbus_consecutive_failures",
            "Failed polls in a row per cabinet",
            ["cabinet"],
            registry=registry,
        )

    @property
    def targets(self) -> tuple[ModbusTarget, ...]:
        """The cabinets polled."""
        return self._targets

    def _client(self, target: ModbusTarget) -> ModbusClient:
        if target.serial_port:
            return ModbusSerialClient(
                target.serial_port, baudrate=target.baudrate, timeout=self._timeout_s, retries=0
            )
        return ModbusTcpClient(
            target.host or "127.0.0.1", port=target.port or 502, timeout=self._timeout_s, retries=0
        )

    def _read(self, client: ModbusClient, target: ModbusTarget) -> list[int]:
        """One read of the block; raise ConnectionError for any transport or protocol error."""
        connect: Callable[[], bool] = client.connect  # untyped upstream
        if not client.connected and not connect():
            raise ConnectionError(f"cannot connect to {target.endpoint}")
        try:
            response = client.read_holding_registers(
                0, count=CABINET_REGISTER_COUNT, device_id=target.unit
            )
        except ModbusException as err:
            close: Callable[[], None] = client.close
            close()
            raise ConnectionError(str(err)) from err
        if response.isError():
            raise ConnectionError(f"unit {target.unit} answered {response}")
        return list(response.registers)

    def poll_cabinet(
        self, client: ModbusClient, target: ModbusTarget, stop: threading.Event
    ) -> bool:
        """Read one cabinet (retrying with backoff), submit its reading; True on success."""
        error = "not polled"
        for attempt in range(self._retries + 1):
            if attempt:
                stop.wait(self._retry_base_s * 2 ** (attempt - 1))
            try:
                words = self._read(client, target)
                values = decode_cabinet_registers(words)
            except (ConnectionError, RegisterMapError, OSError) as err:
                error = str(err) or type(err).__name__
                continue
            polled_at = self._clock()
            body = orjson.dumps(cabinet_payload(values, polled_at))
            topic = f"{self._root}/{Kind.CABINET.value}/{target.cabinet_id}/telemetry"
            self._submit(RawMessage(topic, body, polled_at, -1))  # -1: nothing to acknowledge
            self._record(target, None)
            return True
        self._record(target, error)
        return False

    def _record(self, target: ModbusTarget, error: str | None) -> None:
        with self._lock:
            status = self._status[target.cabinet_id]
            if error is None:
                status.polls += 1
                status.consecutive_failures = 0
                status.last_ok_at = self._clock()
                delay_s = self._interval_s
            else:
                status.errors += 1
                status.consecutive_failures += 1
                status.last_error = error
                delay_s = min(
                    self._interval_s * 2 ** min(status.consecutive_failures, 16),
                    max(self._backoff_max_s, self._interval_s),
                )
                if (
                    status.consecutive_failures in (1, 10, 100)
                    or status.consecutive_failures % 1000 == 0
                ):
                    log.warning(
                        "Modbus %s at %s unit %d: %s (%d failure(s) in a row; next in %.0f s)",
                        target.cabinet_id,
                        target.endpoint,
                        target.unit,
                        error,
                        status.consecutive_failures,
                        delay_s,
                    )
            self._next_mono[target.cabinet_id] = time.monotonic() + delay_s
            failures = status.consecutive_failures
        if error is None:
            self._polls.labels(target.cabinet_id).inc()
        else:
            self._errors.labels(target.cabinet_id).inc()
        self._failing.labels(target.cabinet_id).set(failures)

    def status(self) -> list[CabinetPollStatus]:
        """A copy of every cabinet's poll figures, by cabinet id."""
        mono = time.monotonic()
        with self._lock:
            out = []
            for cabinet_id in sorted(self._status):
                s = self._status[cabinet_id]
                out.append(
                    CabinetPollStatus(
                        s.cabinet_id,
                        s.endpoint,
                        s.unit,
                        s.polls,
                        s.errors,
                        s.consecutive_failures,
                        s.last_ok_at,
                        s.last_error,
                        max(0.0, self._next_mono[cabinet_id] - mono),
                    )
                )
        return out

    def _run_endpoint(self, targets: Sequence[ModbusTarget], stop: threading.Event) -> None:
        client = self._client(targets[0])
        try:
            while not stop.is_set():
                mono = time.monotonic()
                for target in targets:
                    if stop.is_set():
                        break
                    if self._next_mono[target.cabinet_id] <= mono:
                        try:
                            self.poll_cabinet(client, target, stop)
                        except Exception:  # the thread is the supervisor of its endpoint
                            log.exception("Modbus poll of %s failed", target.cabinet_id)
                            self._record(target, "internal error")
                with self._lock:
                    due = min(self._next_mono[t.cabinet_id] for t in targets)
                stop.wait(min(max(0.05, due - time.monotonic()), 1.0))
        finally:
            close: Callable[[], None] = client.close
            close()

    def start(self, stop: threading.Event) -> None:
        """One polling thread per endpoint, until `stop` is set."""
        by_endpoint: dict[str, list[ModbusTarget]] = {}
        for target in self._targets:
            by_endpoint.setdefault(target.endpoint, []).append(target)
        for endpoint, targets in by_endpoint.items():
            thread = threading.Thread(
                target=self._run_endpoint,
                args=(targets, stop),
                name=f"modbus-{endpoint}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        log.info(
            "Modbus: polling %d cabinet(s) on %d endpoint(s)", len(self._targets), len(by_endpoint)
        )

    def join(self, timeout_s: float = 10.0) -> None:
        """Wait for the polling threads after `stop` was set."""
        for thread in self._threads:
            thread.join(timeout=timeout_s)
