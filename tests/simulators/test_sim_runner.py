"""Pacing: acceleration, catching up with real time, stopping; with an injected clock."""

from dataclasses import dataclass

from simulators.city import City
from simulators.engine import Simulation, run_paced
from simulators.publisher import MemoryPublisher
from tests.simulators.conftest import HOUR_MS, START_MS


@dataclass
class FakeClock:
    """Monotonic and wall time that only move when the publisher waits."""

    mono_s: float = 0.0
    wall_ms: int = START_MS + 1000 * HOUR_MS

    def monotonic(self) -> float:
        return self.mono_s

    def wall(self) -> int:
        return self.wall_ms

    def advance(self, seconds: float) -> None:
        self.mono_s += seconds
        self.wall_ms += int(seconds * 1000)


class _ClockAdapter:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def wall_ms(self) -> int:
        return self.clock.wall()


def test_speed_maps_real_seconds_to_simulated_ones(small_city: City) -> None:
    clock = FakeClock()
    publisher = MemoryPublisher(on_wait=clock.advance)
    simulation = Simulation(small_city, publisher, start_ms=START_MS)
    ticks = {"n": 0}

    def stop_after_a_minute() -> bool:
        ticks["n"] += 1
        return clock.mono_s >= 60.0

    report = run_paced(
        simulation, publisher, _ClockAdapter(clock), speed=60.0, should_stop=stop_after_a_minute
    )
    assert report.sim_end_ms - START_MS == HOUR_MS - 100 * 60  # last tick started at 59.9 s
    assert not report.caught_up
    assert publisher.messages


def test_simulated_time_never_passes_the_wall_clock(small_city: City) -> None:
    clock = FakeClock(wall_ms=START_MS + HOUR_MS)
    publisher = MemoryPublisher(on_wait=clock.advance)
    simulation = Simulation(small_city, publisher, start_ms=START_MS)
    report = run_paced(
        simulation,
        publisher,
        _ClockAdapter(clock),
        speed=0,
        should_stop=lambda: clock.mono_s > 5.0,
    )
    assert report.caught_up
    assert report.sim_end_ms <= clock.wall_ms
    for message in publisher.messages:
        if not message.topic.endswith("/status"):
            assert b'"ts":' in message.payload


def test_duration_stops_the_run(small_city: City) -> None:
    clock = FakeClock()
    publisher = MemoryPublisher(on_wait=clock.advance)
    simulation = Simulation(small_city, publisher, start_ms=START_MS)
    report = run_paced(
        simulation,
        publisher,
        _ClockAdapter(clock),
        speed=0,
        should_stop=lambda: False,
        until_ms=START_MS + 2 * HOUR_MS,
    )
    assert report.sim_end_ms == START_MS + 2 * HOUR_MS
    assert clock.mono_s == 0.0  # as fast as possible: no waiting
