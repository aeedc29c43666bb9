"""A sensor stuck at occupied on a spot with a maximum stay is also recorded as an overstay."""

from hub.rules.alarm_types import AlarmType
from simulators.city import City
from simulators.faults import FAULTS, ActiveFault, NoiseModel
from simulators.scenario import eligible_devices
from tests.simulators.conftest import HOUR_MS, START_MS, run_city

MIN_MS = 60_000


def test_stuck_occupied_street_spots_read_as_overstays(small_city: City) -> None:
    assert FAULTS["parking_stuck"].default_duration_s > 24 * 3600  # outlasts the hub's window
    street = eligible_devices(small_city, "parking_overstay")[:12]
    at = START_MS + HOUR_MS
    faults = [ActiveFault("parking_stuck", d, at, at + 30 * HOUR_MS) for d in street]
    run = run_city(small_city, hours=6, faults=faults, noise=NoiseModel.silent())
    readings = run.readings()
    max_stay_ms = {s.device_id: (s.max_stay_min or 0) * MIN_MS for s in small_city.spots}
    overstays = {
        i.device_id: i
        for i in run.simulation.incidents
        if i.type is AlarmType.OVERSTAY and i.fault == "parking_stuck"
    }
    stuck_occupied = set()
    for device_id in street:
        before = [s for s in readings[device_id] if int(s.body["ts"]) < at]
        if before and before[-1].body["occupied"]:
            stuck_occupied.add(device_id)
    assert stuck_occupied, "no spot was occupied when its sensor stuck"
    assert set(overstays) == stuck_occupied
    for device_id, incident in overstays.items():
        reported_since_ms = incident.start_ms - max_stay_ms[device_id]
        assert reported_since_ms < at  # the sensor reported this car before it stuck
        earlier = [s for s in readings[device_id] if int(s.body["ts"]) < reported_since_ms]
        after = [s for s in readings[device_id] if int(s.body["ts"]) >= reported_since_ms]
        assert not earlier or not earlier[-1].body["occupied"]  # the car's arrival
        assert after
        assert all(s.body["occupied"] for s in after)
        assert incident.end_ms == at + 30 * HOUR_MS
