"""Cabinets served over Modbus TCP (pymodbus); the only module that imports pymodbus.

Register map (holding registers, function code 3; unsigned 16-bit words; 32-bit values are
two words, high word first): see REGISTER_MAP and docs/simulators.md.
"""

import asyncio
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RegisterField:
    """One value in the map: address, width in words, and the scale applied before rounding."""

    name: str
    address: int
    words: int
    scale: float
    unit: str


REGISTER_MAP: tuple[RegisterField, ...] = (
    RegisterField(
        "status_bits", 0, 1, 1, "bit 0 contactor_on, bit 1 door_open, bit 2 any phase dead"
    ),
    RegisterField("voltage_a_v", 1, 1, 10, "0.1 V"),
    RegisterField("voltage_b_v", 2, 1, 10, "0.1 V"),
    RegisterField("voltage_c_v", 3, 1, 10, "0.1 V"),
    RegisterField("current_a_a", 4, 1, 100, "0.01 A"),
    RegisterField("current_b_a", 5, 1, 100, "0.01 A"),
    RegisterField("current_c_a", 6, 1, 100, "0.01 A"),
    RegisterField("power_w", 7, 2, 1, "W"),
    RegisterField("energy_kwh", 9, 2, 100, "0.01 kWh"),
    RegisterField("ts_s", 11, 2, 1, "epoch seconds of the reading"),
)
REGISTER_COUNT = 13


def encode_cabinet_registers(body: Mapping[str, Any]) -> list[int]:
    """Turn a cabinet reading (as published on MQTT) into the register block."""
    words = [0] * REGISTER_COUNT
    dead = any(body[f"current_{p}_a"] == 0 for p in "abc") and bool(body["contactor_on"])
    words[0] = int(bool(body["contactor_on"])) | int(bool(body["door_open"])) << 1 | int(dead) << 2
    values = {**body, "ts_s": int(body["ts"]) // 1000}
    for field in REGISTER_MAP[1:]:
        raw = round(float(values[field.name]) * field.scale)
        limit = 1 << (16 * field.words)
        raw = max(0, min(raw, limit - 1))
        if field.words == 1:
            words[field.address] = raw
        else:
            words[field.address] = raw >> 16
            words[field.address + 1] = raw & 0xFFFF
    return words


def decode_cabinet_registers(words: list[int]) -> dict[str, float | bool | int]:
    """Read the register block back into named values (inverse of encode, up to rounding)."""
    if len(words) < REGISTER_COUNT:
        raise ValueError(f"expected {REGISTER_COUNT} registers, got {len(words)}")
    out: dict[str, float | bool | int] = {
        "contactor_on": bool(words[0] & 1),
        "door_open": bool(words[0] & 2),
        "phase_dead": bool(words[0] & 4),
    }
    for field in REGISTER_MAP[1:]:
        raw = words[field.address]
        if field.words == 2:
            raw = raw << 16 | words[field.address + 1]
        out[field.name] = raw if field.scale == 1 else raw / field.scale
    return out


class CabinetModbusServer:
    """Modbus TCP servers (one per port) with one unit per cabinet, run on a background thread."""

    def __init__(self, host: str, units_by_cabinet: Mapping[str, tuple[int, int]]) -> None:
        self._host = host
        self._words: dict[str, list[int]] = {}
        devices: dict[int, list[SimDevice]] = {}
        for cabinet_id, (port, unit) in units_by_cabinet.items():
            self._words[cabinet_id] = [0] * REGISTER_COUNT
            devices.setdefault(port, []).append(
                SimDevice(
                    id=unit,
                    simdata=[
                        SimData(
                            address=0, count=REGISTER_COUNT, values=0, datatype=DataType.REGISTERS
                        )
                    ],
                    action=functools.partial(self._on_request, cabinet_id),
                )
            )
        self._devices = devices
        self._servers: list[ModbusTcpServer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def _on_request(
        self,
        cabinet_id: str,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        del function_code, address, count
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # read-only: the simulation owns the values
        words = self._words[cabinet_id]
        registers[start_address : start_address + len(words)] = words
        return None

    @property
    def ports(self) -> list[int]:
        """The TCP ports served."""
        return sorted(self._devices)

    def update(self, cabinet_id: str, body: Mapping[str, Any]) -> None:
        """Publish a cabinet's latest reading into its registers (safe from any thread)."""
        if cabinet_id in self._words:
            # replaced whole, so a concurrent read sees either the old or the new block
            self._words[cabinet_id] = encode_cabinet_registers(body)

    async def _serve(self) -> None:
        for port, devices in self._devices.items():
            server = ModbusTcpServer(devices, address=(self._host, port))
            await server.serve_forever(background=True)
            self._servers.append(server)
        self._ready.set()
        await asyncio.gather(*(s.serving for s in self._servers))

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except (OSError, RuntimeError, asyncio.CancelledError) as err:
            self._error = err
            self._ready.set()
        finally:
            loop.close()

    def start(self, timeout_s: float = 5.0) -> None:
        """Start listening; raise if a port cannot be bound."""
        self._thread = threading.Thread(target=self._run, name="modbus-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("Modbus server did not start")
        if self._error is not None:
            raise OSError(f"Modbus server failed on {self._host}:{self.ports}: {self._error}")
        logger.info("Modbus TCP serving cabinets on %s ports %s", self._host, self.ports)

    def stop(self) -> None:
        """Stop the servers and the thread."""
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            for server in self._servers:
                stop_server: Callable[[], Awaitable[None]] = server.shutdown  # untyped upstream
                await stop_server()

        if loop.is_running():
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=5.0)
        self._thread.join(timeout=5.0)


def read_cabinet_registers(host: str, port: int, unit: int) -> list[int]:
    """Read one cabinet's register block with a Modbus TCP client (for checks and tests)."""
    client = ModbusTcpClient(host, port=port, timeout=3)
    connect: Callable[[], bool] = client.connect  # untyped upstream
    close: Callable[[], None] = client.close
    if not connect():
        raise ConnectionError(f"cannot connect to Modbus server at {host}:{port}")
    try:
        response = client.read_holding_registers(0, count=REGISTER_COUNT, device_id=unit)
        if response.isError():
            raise ConnectionError(
                f"Modbus read from unit {unit} at {host}:{port} failed: {response}"
            )
        return list(response.registers)
    finally:
        close()
