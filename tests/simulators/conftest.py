"""Shared fixtures for the simulator tests: a small city and a way to run it into memory."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from simulators.city import City, CitySpec
from simulators.engine import Simulation
from simulators.faults import ActiveFault, NoiseModel
from simulators.generator import generate_city
from simulators.publisher import MemoryPublisher

# 12:00 local in Suzhou: the run sees an afternoon, a night and the next day
START_MS = int(datetime(2026, 11, 20, 4, 0, tzinfo=UTC).timestamp() * 1000)
HOUR_MS = 3_600_000
SMALL_SPEC = CitySpec(seed=11, lamps=240, trucks=10, manholes=60, spots=80, lamps_per_cabinet=60)


@dataclass(frozen=True, slots=True)
class Sent:
    """One reading as published: device, channel, fields."""

    device_id: str
    kind: str
    channel: str
    body: dict[str, Any]


@dataclass(slots=True)
class RunResult:
    """A finished in-memory run."""

    simulation: Simulation
    publisher: MemoryPublisher

    def readings(self) -> dict[str, list[Sent]]:
        """Telemetry and event readings per device, batches flattened, in ts order."""
        out: dict[str, list[Sent]] = defaultdict(list)
        for message in self.publisher.messages:
            _, kind, device_id, channel = message.topic.split("/", 3)
            if channel == "status":
                continue
            data = orjson.loads(message.payload)
            for body in data if isinstance(data, list) else [data]:
                out[device_id].append(Sent(device_id, kind, channel, body))
        for items in out.values():
            items.sort(key=lambda s: int(s.body["ts"]))
        return out

    def statuses(self, device_id: str) -> list[bytes]:
        """Status payloads of a device in publish order."""
        return [
            m.payload for m in self.publisher.messages if m.topic.endswith(f"/{device_id}/status")
        ]


@pytest.fixture(scope="session")
def small_city() -> City:
    """A city of a few hundred devices, generated once."""
    return generate_city(SMALL_SPEC)


def run_city(
    city: City,
    *,
    hours: float,
    faults: Sequence[ActiveFault] = (),
    noise: NoiseModel | None = None,
    seed: int = 5,
) -> RunResult:
    """Simulate `hours` from START_MS into a MemoryPublisher."""
    publisher = MemoryPublisher()
    simulation = Simulation(city, publisher, start_ms=START_MS, seed=seed, noise=noise)
    simulation.add_faults(faults)
    simulation.advance_to(START_MS + int(hours * HOUR_MS))
    return RunResult(simulation, publisher)
