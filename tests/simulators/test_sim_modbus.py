"""Cabinets read back over Modbus TCP match the simulated values."""

import socket
from collections.abc import Iterator

import pytest

from simulators.city import City
from simulators.engine import Simulation
from simulators.modbus import (
    CabinetModbusServer,
    decode_cabinet_registers,
    encode_cabinet_registers,
    read_cabinet_registers,
)
from simulators.publisher import MemoryPublisher
from tests.simulators.conftest import HOUR_MS, START_MS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(small_city: City) -> Iterator[tuple[Simulation, CabinetModbusServer, int]]:
    port = _free_port()
    server = CabinetModbusServer(
        "127.0.0.1", {c.device_id: (port, c.modbus_unit) for c in small_city.cabinets}
    )
    server.start()
    simulation = Simulation(small_city, MemoryPublisher(), start_ms=START_MS)
    simulation.world.cabinet_listeners.append(server.update)
    try:
        yield simulation, server, port
    finally:
        server.stop()


def test_register_map_round_trips() -> None:
    body = {
        "ts": 1_795_000_000_123,
        "contactor_on": True,
        "door_open": True,
        "voltage_a_v": 221.3,
        "voltage_b_v": 219.9,
        "voltage_c_v": 220.4,
        "current_a_a": 12.34,
        "current_b_a": 10.0,
        "current_c_a": 7.5,
        "power_w": 76_543.2,
        "energy_kwh": 123_456.78,
    }
    values = decode_cabinet_registers(encode_cabinet_registers(body))
    assert values["contactor_on"] is True
    assert values["door_open"] is True
    assert values["phase_dead"] is False
    for name in ("voltage_a_v", "current_b_a", "energy_kwh"):
        assert values[name] == pytest.approx(body[name], abs=0.01)
    assert values["power_w"] == 76_543
    assert values["ts_s"] == 1_795_000_000


def test_cabinets_read_over_modbus_match_the_simulation(
    small_city: City, served: tuple[Simulation, CabinetModbusServer, int]
) -> None:
    simulation, _, port = served
    simulation.advance_to(START_MS + 9 * HOUR_MS)  # 21:00 local: lamps lit
    lit = 0
    for cabinet in small_city.cabinets:
        sim_cabinet = simulation.world.devices[cabinet.device_id]
        body = getattr(sim_cabinet, "last_body", None)
        assert body is not None
        words = read_cabinet_registers("127.0.0.1", port, cabinet.modbus_unit)
        values = decode_cabinet_registers(words)
        assert values["contactor_on"] == body["contactor_on"]
        assert values["door_open"] == body["door_open"]
        for phase in "abc":
            assert values[f"voltage_{phase}_v"] == pytest.approx(
                body[f"voltage_{phase}_v"], abs=0.05
            )
            assert values[f"current_{phase}_a"] == pytest.approx(
                body[f"current_{phase}_a"], abs=0.005
            )
        assert values["power_w"] == round(body["power_w"])
        assert values["energy_kwh"] == pytest.approx(body["energy_kwh"], abs=0.005)
        assert values["ts_s"] == body["ts"] // 1000
        lit += bool(body["contactor_on"]) and body["power_w"] > 0
    assert lit == len(small_city.cabinets)
