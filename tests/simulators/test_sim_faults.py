"""Every injected fault shows in the published data, and is written as ground truth."""

import itertools
from collections.abc import Callable

import pytest

from hub.rules.alarm_types import AlarmType
from simulators.city import City
from simulators.faults import FAULTS, ActiveFault, Incident, NoiseModel
from simulators.geo import distance_m
from simulators.scenario import eligible_devices
from simulators.sun import SunClock
from tests.simulators.conftest import HOUR_MS, START_MS, RunResult, Sent, run_city

MIN_MS = 60_000


def _faults(city: City) -> list[ActiveFault]:
    lamps = [
        lamp.device_id for lamp in city.lamps if lamp.cabinet_id == city.cabinets[-1].device_id
    ]
    # the longest route first: a deviation the hub can see needs 5 min of driving off it
    route_m = {p.truck_id: p.route.length_m for p in city.permits}
    trucks = sorted((t.device_id for t in city.trucks), key=lambda t: -route_m.get(t, 0.0))
    covers = eligible_devices(city, "manhole_water_rising")
    other_covers = [m.device_id for m in city.manholes if m.device_id not in covers]
    street_spots = eligible_devices(city, "parking_overstay")
    lot_spots = [s.device_id for s in city.spots if s.device_id not in street_spots]
    night = START_MS + 8 * HOUR_MS  # 20:00 local
    plan: list[tuple[str, str, int, int]] = [
        ("lit_by_day", lamps[0], START_MS + HOUR_MS, 2 * HOUR_MS),
        ("lamp_out", lamps[1], night, HOUR_MS),
        ("voltage_sag", lamps[2], night, HOUR_MS),
        ("voltage_surge", lamps[3], night, HOUR_MS),
        ("power_degradation", lamps[4], night, HOUR_MS),
        ("flicker", lamps[5], night, 30 * MIN_MS),
        ("lamp_offline", lamps[6], START_MS + HOUR_MS, 2 * HOUR_MS),
        ("cabinet_trip", city.cabinets[0].device_id, night + HOUR_MS, HOUR_MS),
        ("circuit_loss", city.cabinets[1].device_id, night + HOUR_MS, HOUR_MS),
        ("cabinet_offline", city.cabinets[2].device_id, START_MS, HOUR_MS),
        ("cabinet_door_open", city.cabinets[3].device_id, START_MS + HOUR_MS, HOUR_MS),
        ("truck_off_route", trucks[0], START_MS, 10 * MIN_MS),
        ("truck_illegal_dump", trucks[1], START_MS, 5 * MIN_MS),
        ("truck_unapproved_disposal", trucks[2], START_MS, 8 * MIN_MS),
        ("truck_outside_hours", trucks[3], START_MS, 0),
        ("truck_cover_open", trucks[4], START_MS, 8 * MIN_MS),
        ("truck_overspeed", trucks[5], START_MS, 4 * MIN_MS),
        ("truck_gps_gap", trucks[6], START_MS, 8 * MIN_MS),
        ("truck_gps_jump", trucks[7], START_MS, 0),
        ("truck_offline", trucks[8], START_MS, HOUR_MS),
        ("manhole_tilt", other_covers[0], START_MS + HOUR_MS, 2 * HOUR_MS),
        ("manhole_displaced", other_covers[1], START_MS + HOUR_MS, 2 * HOUR_MS),
        ("manhole_open", other_covers[2], START_MS + HOUR_MS, 2 * HOUR_MS),
        ("manhole_water_rising", covers[0], START_MS + HOUR_MS, 4 * HOUR_MS),
        ("manhole_low_battery", other_covers[3], START_MS + HOUR_MS, 6 * HOUR_MS),
        ("manhole_offline", other_covers[4], START_MS + HOUR_MS, 3 * HOUR_MS),
        ("parking_overstay", street_spots[0], START_MS + HOUR_MS, HOUR_MS),
        ("parking_stuck", lot_spots[0], START_MS + 2 * HOUR_MS, 12 * HOUR_MS),
        ("parking_offline", lot_spots[1], START_MS + HOUR_MS, 3 * HOUR_MS),
    ]
    return [ActiveFault(name, device, at, at + dur) for name, device, at, dur in plan]


@pytest.fixture(scope="module")
def faulty_run(small_city: City) -> RunResult:
    """48 simulated hours with one fault of every kind, no noise."""
    return run_city(small_city, hours=48, faults=_faults(small_city), noise=NoiseModel.silent())


def test_every_fault_type_is_covered_by_the_plan(small_city: City) -> None:
    assert {f.name for f in _faults(small_city)} == set(FAULTS)


def test_every_fault_produced_ground_truth(faulty_run: RunResult) -> None:
    incidents = faulty_run.simulation.incidents
    assert {i.fault for i in incidents} == set(FAULTS)
    for incident in incidents:
        assert incident.end_ms > incident.start_ms
        assert incident.type in FAULTS[incident.fault].alarm_types
    expected_types = {t for f in FAULTS.values() for t in f.alarm_types}
    assert {i.type for i in incidents} == expected_types


def _window(items: list[Sent], incident: Incident) -> list[Sent]:
    return [s for s in items if incident.start_ms <= int(s.body["ts"]) <= incident.end_ms]


def test_every_incident_is_visible_in_published_data(
    small_city: City, faulty_run: RunResult
) -> None:
    readings = faulty_run.readings()
    sun = SunClock(small_city.spec.centre_lat, small_city.spec.centre_lon, small_city.spec.timezone)
    lamps = {lamp.device_id: lamp for lamp in small_city.lamps}
    permits = {t.device_id: small_city.permit_by_id()[t.permit_id] for t in small_city.trucks}
    covers = {m.device_id: m for m in small_city.manholes}
    disposal = [s for s in small_city.sites if s.prop("site_type") == "disposal"]

    def xy(s: Sent) -> tuple[float, float]:
        return small_city.projection.to_metres(s.body["lat"], s.body["lon"])

    def any_of(pred: Callable[[Sent], bool]) -> Callable[[Incident, list[Sent]], bool]:
        return lambda _incident, window: any(pred(s) for s in window)

    def rated(s: Sent) -> float:
        return float(lamps[s.device_id].rated_power_w)

    def tilt_off(s: Sent) -> float:
        return abs(float(s.body["tilt_deg"]) - covers[s.device_id].baseline_tilt_deg)

    def gap(incident: Incident, window: list[Sent]) -> bool:
        items = readings[incident.device_id]
        stamps = [int(s.body["ts"]) for s in items]
        inside = [t for t in stamps if incident.start_ms < t < incident.end_ms]
        return (
            not inside
            and any(t < incident.start_ms for t in stamps)
            and any(t > incident.end_ms for t in stamps)
        )

    def jump(incident: Incident, window: list[Sent]) -> bool:
        items = readings[incident.device_id]
        return any(
            distance_m(xy(a), xy(b)) > 2_000
            for a, b in itertools.pairwise(items)
            if incident.start_ms <= int(b.body["ts"]) <= incident.end_ms + 60_000
        )

    def offline(incident: Incident, window: list[Sent]) -> bool:
        inner = [
            s
            for s in window
            if incident.start_ms + 1_000 < int(s.body["ts"]) < incident.end_ms - 1_000
        ]
        statuses = faulty_run.statuses(incident.device_id)
        return not inner and any(b'"offline"' in status for status in statuses)

    def flicker(incident: Incident, window: list[Sent]) -> bool:
        return {s.body["on"] for s in window} == {True, False}

    def stuck(incident: Incident, window: list[Sent]) -> bool:
        return (
            not [s for s in window if s.channel == "event"]
            and len({s.body["occupied"] for s in window}) == 1
            and len(window) >= 4
        )

    def overstay(incident: Incident, window: list[Sent]) -> bool:
        before_end = [s for s in window if int(s.body["ts"]) < incident.end_ms]
        return bool(before_end) and all(s.body["occupied"] for s in before_end)

    def cabinet_trip(incident: Incident, window: list[Sent]) -> bool:
        return any(
            s.body["contactor_on"]
            and s.body["current_a_a"] == s.body["current_b_a"] == s.body["current_c_a"] == 0
            for s in window
        )

    def circuit_dark(incident: Incident, window: list[Sent]) -> bool:
        lamp_ids = [
            lamp.device_id for lamp in small_city.lamps if lamp.cabinet_id == incident.device_id
        ]
        return any(
            s.body.get("fault_code") == "SUPPLY_LOSS"
            for d in lamp_ids
            for s in _window(readings[d], incident)
        )

    checks: dict[AlarmType, Callable[[Incident, list[Sent]], bool]] = {
        AlarmType.LAMP_OUT: any_of(lambda s: s.body["on"] and s.body["power_w"] < 0.1 * rated(s)),
        AlarmType.LIT_BY_DAY: any_of(lambda s: s.body["on"] and not sun.is_dark(int(s.body["ts"]))),
        AlarmType.UNDER_VOLTAGE: any_of(lambda s: 0 < s.body["voltage_v"] < 198),
        AlarmType.OVER_VOLTAGE: any_of(lambda s: s.body["voltage_v"] > 242),
        AlarmType.POWER_ABNORMAL: any_of(
            lambda s: s.body["on"] and s.body["power_w"] < 0.7 * rated(s) * s.body["dim_pct"] / 100
        ),
        AlarmType.FLICKER: flicker,
        AlarmType.OFFLINE: offline,
        AlarmType.CABINET_TRIP: cabinet_trip,
        AlarmType.CIRCUIT_DARK: circuit_dark,
        AlarmType.DOOR_OPEN: any_of(lambda s: s.body["door_open"]),
        AlarmType.ROUTE_DEVIATION: any_of(
            lambda s: (
                permits[s.device_id].route.distance_to(xy(s)) > permits[s.device_id].corridor_m
            )
        ),
        AlarmType.ILLEGAL_DUMPING: any_of(
            lambda s: (
                s.body["body_lifted"] and all(distance_m(xy(s), d.centre) > 500 for d in disposal)
            )
        ),
        AlarmType.UNAPPROVED_DISPOSAL: any_of(
            lambda s: (
                s.body["body_lifted"]
                and any(
                    distance_m(xy(s), d.centre) < 500
                    and d.area_id not in permits[s.device_id].disposal_site_ids
                    for d in disposal
                )
            )
        ),
        AlarmType.OUTSIDE_HOURS: any_of(
            lambda s: (
                s.body["acc_on"]
                and not permits[s.device_id].allows_local_minute(
                    sun.local_minute(int(s.body["ts"]))
                )
            )
        ),
        AlarmType.COVER_OPEN_MOVING: any_of(
            lambda s: (
                not s.body["cover_closed"] and s.body["speed_kmh"] > 0 and s.body["load"] == "full"
            )
        ),
        AlarmType.OVERSPEED: any_of(lambda s: s.body["speed_kmh"] > 60),
        AlarmType.TRACK_GAP: gap,
        AlarmType.TRACK_JUMP: jump,
        AlarmType.TILT: any_of(lambda s: tilt_off(s) > 10),
        AlarmType.COVER_OPEN: any_of(lambda s: s.body["cover_open"]),
        AlarmType.WATER_ALERT: any_of(lambda s: s.body.get("water_level_cm", 0) >= 100),
        AlarmType.WATER_DANGER: any_of(lambda s: s.body.get("water_level_cm", 0) >= 150),
        AlarmType.LOW_BATTERY: any_of(lambda s: s.body.get("battery_pct", 100) < 20),
        AlarmType.OVERSTAY: overstay,
        AlarmType.STUCK_SENSOR: stuck,
    }
    for incident in faulty_run.simulation.incidents:
        window = _window(readings[incident.device_id], incident)
        assert checks[incident.type](incident, window), f"not visible: {incident}"


def test_fault_free_devices_show_none_of_it(small_city: City, faulty_run: RunResult) -> None:
    faulty = {i.device_id for i in faulty_run.simulation.incidents}
    tripped_cabinets = {
        i.device_id for i in faulty_run.simulation.incidents if i.kind.value == "cabinet"
    }
    for device_id, items in faulty_run.readings().items():
        if device_id in faulty:
            continue
        for sent in items:
            body = sent.body
            if sent.kind == "truck":
                assert body["speed_kmh"] <= 55
                assert not (body["body_lifted"] and body["speed_kmh"] > 0)
            if sent.kind == "lighting" and body.get("fault_code") is None:
                assert 198 < body["voltage_v"] < 242
            if sent.kind == "lighting" and body.get("fault_code") == "SUPPLY_LOSS":
                assert any(
                    lamp.cabinet_id in tripped_cabinets
                    for lamp in small_city.lamps
                    if lamp.device_id == device_id
                )
