"""Scenario files and --fault flags become concrete, deterministic faults."""

from pathlib import Path

import pytest

from simulators.city import City
from simulators.faults import (
    ScenarioModel,
    load_scenario,
    parse_duration_s,
    parse_fault_flag,
    read_truth,
)
from simulators.scenario import plan_faults
from tests.simulators.conftest import HOUR_MS, START_MS

SCENARIO = """
start: 2026-11-20T12:00:00+08:00
noise:
  duplicate_ratio: 0.0
faults:
  - fault: lamp_out
    device: LMP-000002
    at: 8h
    duration: 30m
random:
  count: 5
  within: 6h
  faults: [manhole_tilt, parking_stuck]
"""


def test_scenario_file_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    scenario = load_scenario(path)
    assert scenario.faults[0].device == "LMP-000002"
    assert scenario.noise.duplicate_ratio == 0.0
    path.write_text("faults:\n  - fault: no_such_fault\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown fault"):
        load_scenario(path)


def test_fault_flags_parse() -> None:
    spec = parse_fault_flag("manhole_water_rising,device=MH-000003,at=1h,duration=2h,peak_cm=180")
    assert (spec.fault, spec.device, spec.at, spec.duration) == (
        "manhole_water_rising",
        "MH-000003",
        "1h",
        "2h",
    )
    assert spec.params == {"peak_cm": 180}
    with pytest.raises(ValueError, match="key=value"):
        parse_fault_flag("lamp_out,oops")
    assert parse_duration_s("90s") == 90
    assert parse_duration_s("2h") == 7200


def test_planning_is_deterministic_and_uses_distinct_devices(
    small_city: City, tmp_path: Path
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    scenario = load_scenario(path)
    first = plan_faults(small_city, scenario, START_MS, seed=3, random_count=4)
    again = plan_faults(small_city, scenario, START_MS, seed=3, random_count=4)
    assert first == again
    assert len(first) == 10
    assert len({f.device_id for f in first}) == 10
    assert first[0].start_ms == START_MS + 8 * HOUR_MS
    assert all(START_MS <= f.start_ms <= START_MS + 8 * HOUR_MS for f in first)


def test_truth_file_round_trips(small_city: City, tmp_path: Path) -> None:
    from simulators.engine import Simulation
    from simulators.faults import TruthWriter
    from simulators.publisher import MemoryPublisher

    faults = plan_faults(
        small_city,
        ScenarioModel(),
        START_MS,
        seed=1,
        extra=[parse_fault_flag("manhole_open,at=1h,duration=1h")],
    )
    path = tmp_path / "truth.jsonl"
    with path.open("wb") as handle:
        sim = Simulation(
            small_city, MemoryPublisher(), start_ms=START_MS, truth=TruthWriter(handle)
        )
        sim.add_faults(faults)
        sim.advance_to(START_MS + 3 * HOUR_MS)
    incidents = read_truth(path)
    assert incidents == sim.incidents
    assert [i.type.value for i in incidents] == ["cover_open"]
    assert incidents[0].end_ms - incidents[0].start_ms == HOUR_MS
