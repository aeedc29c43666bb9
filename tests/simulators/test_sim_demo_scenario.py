"""The demo's scenario (simulators/demo.yaml) gives every asset kind an incident the case
policy files as a case, inside the part of the history the demo always replays."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.cases.classification import load_classification
from hub.cases.routing import FilingOutcome, decide_filing, load_case_policy
from hub.devices.kinds import Kind
from hub.rules.alarm_types import Severity
from simulators.city import City
from simulators.engine import Simulation
from simulators.faults import TruthWriter, load_scenario
from simulators.publisher import MemoryPublisher
from simulators.scenario import plan_faults
from tests.simulators.conftest import HOUR_MS

DEMO = Path(__file__).resolve().parents[2] / "simulators" / "demo.yaml"
# the demo's default start: yesterday 16:00 in Suzhou (08:00 UTC), a November day
START_MS = int(datetime(2026, 11, 19, 8, 0, tzinfo=UTC).timestamp() * 1000)
# the demo replays at least 8 h (started at 00:00 local) and at most 32 h
ALWAYS_REPLAYED_H = 8


def test_demo_scenario_files_a_case_for_every_asset_kind(small_city: City, tmp_path: Path) -> None:
    scenario = load_scenario(DEMO)
    faults = plan_faults(small_city, scenario, START_MS, seed=7)
    assert all(f.start_ms - START_MS <= ALWAYS_REPLAYED_H * HOUR_MS for f in faults)
    with (tmp_path / "truth.jsonl").open("wb") as handle:
        truth = TruthWriter(handle)
        simulation = Simulation(
            small_city, MemoryPublisher(), start_ms=START_MS, seed=7, truth=truth
        )
        simulation.add_faults(faults)
        simulation.advance_to(START_MS + ALWAYS_REPLAYED_H * HOUR_MS)
    policy, classes = load_case_policy(), load_classification()
    filed: dict[Kind, list[str]] = {}
    for incident in truth.incidents:
        start = datetime.fromtimestamp(incident.start_ms / 1000, UTC)
        end = datetime.fromtimestamp(incident.end_ms / 1000, UTC)
        decision = decide_filing(
            policy,
            classes,
            alarm_type=incident.type,
            severity=Severity.MAJOR,
            active_since_at=start,
            # the hub files by event time: what the alarm held until it cleared
            now_at=min(end, start + timedelta(days=1)),
            device_class_code=None,
        )
        if decision.outcome is FilingOutcome.FILE:
            filed.setdefault(incident.kind, []).append(incident.type.value)
    assert set(filed) == {Kind.LIGHTING, Kind.CABINET, Kind.TRUCK, Kind.MANHOLE, Kind.PARKING}, (
        filed
    )
    assert "overstay" in filed[Kind.PARKING]
    assert "cabinet_trip" in filed[Kind.CABINET]


def test_random_faults_skip_kinds_whose_devices_are_all_taken(small_city: City) -> None:
    """The demo's scenario takes two trucks; more random truck faults than trucks are left
    out instead of failing the run (the demo stopped with "no free device")."""
    scenario = load_scenario(DEMO)
    faults = plan_faults(
        small_city,
        scenario,
        START_MS,
        seed=7,
        random_count=len(small_city.trucks) * 3,
        random_within_s=36 * 3600,
    )
    on_trucks = [f.device_id for f in faults if f.device_id.startswith("TRK-")]
    assert sorted(on_trucks) == sorted(t.device_id for t in small_city.trucks)  # each once
    assert len(faults) == len(scenario.faults) + len(small_city.trucks) * 3
