"""Physical sanity of a fault-free day and night, with realistic noise switched on."""

import math
from collections import defaultdict
from datetime import timedelta

import orjson
import pytest

from hub.devices.decode import DecodeLimits, StatusChange, decode_message
from hub.devices.kinds import Kind
from simulators.city import City
from simulators.faults import NoiseModel
from simulators.sun import SunClock
from tests.simulators.conftest import HOUR_MS, START_MS, RunResult, run_city


@pytest.fixture(scope="module")
def noisy_day(small_city: City) -> RunResult:
    """36 simulated hours with default noise and no faults."""
    return run_city(small_city, hours=36, noise=NoiseModel())


def test_every_message_passes_the_hub_decoder(small_city: City, noisy_day: RunResult) -> None:
    registry = {d.device_id: d.kind for d in noisy_day.simulation.devices}
    limits = DecodeLimits(max_age=timedelta(days=36500), max_ahead=timedelta(days=36500))
    end = noisy_day.simulation.now_ms
    from datetime import UTC, datetime

    received = datetime.fromtimestamp(end / 1000, tz=UTC)
    statuses = 0
    for message in noisy_day.publisher.messages:
        decoded = decode_message(
            message.topic, message.payload, received, root="city", registry=registry, limits=limits
        )
        if isinstance(decoded, StatusChange):
            statuses += 1
            assert message.retain
        else:
            assert not message.retain
    assert statuses >= small_city.device_count()
    kinds = {m.topic.split("/")[1] for m in noisy_day.publisher.messages}
    assert kinds == {k.value for k in Kind}


def test_lamps_are_lit_only_between_dusk_and_dawn(small_city: City, noisy_day: RunResult) -> None:
    sun = SunClock(small_city.spec.centre_lat, small_city.spec.centre_lon, small_city.spec.timezone)
    lit = dark_total = 0
    rated = {lamp.device_id: lamp.rated_power_w for lamp in small_city.lamps}
    for device_id, items in noisy_day.readings().items():
        if device_id not in rated:
            continue
        for sent in items:
            ts = int(sent.body["ts"])
            if sent.body["on"]:
                lit += 1
                assert sun.is_dark(ts), f"{device_id} lit at {ts}"
                expected = rated[device_id] * sent.body["dim_pct"] / 100
                assert abs(sent.body["power_w"] - expected) < 0.1 * expected
            if sun.is_dark(ts):
                dark_total += 1
    assert lit > 0.9 * dark_total * 0.9  # nearly every night reading is lit (switching edges aside)


def test_trucks_stay_in_their_corridor_and_do_their_work(
    small_city: City, noisy_day: RunResult
) -> None:
    permits = small_city.permit_by_id()
    readings = noisy_day.readings()
    lifted = moving = 0
    for truck in small_city.trucks:
        permit = permits[truck.permit_id]
        items = readings[truck.device_id]
        assert items, f"{truck.device_id} never reported"
        for sent in items:
            x, y = small_city.projection.to_metres(sent.body["lat"], sent.body["lon"])
            distance = permit.route.distance_to((x, y))
            assert distance <= permit.corridor_m, f"{truck.device_id} {distance:.0f} m off"
            assert sent.body["speed_kmh"] <= 55
            lifted += sent.body["body_lifted"]
            moving += sent.body["speed_kmh"] > 0
    assert lifted > 0
    assert moving > 0


def test_parking_occupancy_stays_within_bounds(small_city: City, noisy_day: RunResult) -> None:
    state: dict[str, bool] = {}
    lot_of = {s.device_id: s.lot_id or s.zone_id or "" for s in small_city.spots}
    size: dict[str, int] = defaultdict(int)
    for lot in lot_of.values():
        size[lot] += 1
    occupancies: list[float] = []
    changes = 0
    events = sorted(
        (int(orjson.loads(m.payload)["ts"]), m.topic.split("/")[2], orjson.loads(m.payload))
        for m in noisy_day.publisher.messages
        if m.topic.startswith("city/parking/") and not m.topic.endswith("/status")
    )
    for _, device_id, body in events:
        changes += state.get(device_id) is not None and state[device_id] != body["occupied"]
        state[device_id] = body["occupied"]
        lot = lot_of[device_id]
        occupied = sum(1 for d, v in state.items() if v and lot_of[d] == lot)
        occupancies.append(occupied / size[lot])
    assert occupancies
    assert all(0.0 <= o <= 1.0 for o in occupancies)
    assert changes > 20
    assert 0.0 < max(occupancies) <= 1.0


def test_noise_produces_duplicates_late_reports_and_batches(noisy_day: RunResult) -> None:
    seen: set[tuple[str, bytes]] = set()
    duplicates = batches = late = 0
    last_ts: dict[str, int] = {}
    for message in noisy_day.publisher.messages:
        if message.topic.endswith("/status"):
            continue
        key = (message.topic, message.payload)
        duplicates += key in seen
        seen.add(key)
        data = orjson.loads(message.payload)
        batches += isinstance(data, list)
        first = data[0] if isinstance(data, list) else data
        ts = int(first["ts"])
        late += ts < last_ts.get(message.topic, 0) - 60_000
        last_ts[message.topic] = max(ts, last_ts.get(message.topic, 0))
    assert duplicates > 0
    assert late > 0
    assert batches > 0


def test_tilt_spikes_are_brief(small_city: City, noisy_day: RunResult) -> None:
    baseline = {m.device_id: m.baseline_tilt_deg for m in small_city.manholes}
    readings = noisy_day.readings()
    spikes = 0
    for device_id, base in baseline.items():
        items = [s for s in readings[device_id] if s.channel != "status"]
        for i, sent in enumerate(items):
            if abs(sent.body["tilt_deg"] - base) > 5:
                spikes += 1
                nxt = next(
                    (s for s in items[i + 1 :] if int(s.body["ts"]) > int(sent.body["ts"])), None
                )
                assert nxt is not None
                assert int(nxt.body["ts"]) - int(sent.body["ts"]) <= 20_000
                assert abs(nxt.body["tilt_deg"] - base) < 2
    assert spikes > 0


def test_run_covers_the_requested_time(noisy_day: RunResult) -> None:
    assert noisy_day.simulation.now_ms == START_MS + 36 * HOUR_MS
    assert math.isclose(noisy_day.publisher.waited_s, 0.0)
