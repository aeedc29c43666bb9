"""Generated reading streams of every kind's packaged rules, for the rule properties.

Lamps on a cabinet, muck trucks, parking spots and manhole covers, each device in a mode
(normal, faulty, recovering) for a few minutes at a time, one reading a minute; used by
tests/rules/test_quiet_screening.py and tests/test_native.py. `serve()` plays streams
sent as JSON lines and answers each with its signals' reprs: tests/test_native.py runs it
in a child process on the plain modules to compare with the compiled ones.
"""

import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.payloads import PAYLOAD_MODELS
from hub.rules import lighting, manholes, parking, trucks
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import AnyRule, DeviceInfo
from hub.rules.signals import AlarmSignal
from hub.rules.truck_context import TruckContext, TruckContextSource
from hub.rules.truck_records import Permit, Site, SiteType, Zone, ZoneType

# 22:00 in Nanjing: lamps should be lit.
START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
WHERE = (32.05, 118.78)
CABINET = "CAB-1"
LAMPS = ("LMP-1", "LMP-2", "LMP-3")
TRUCKS = ("TRK-1", "TRK-2")
SPOTS = ("SPOT-1", "SPOT-2")
COVERS = ("MH-1", "MH-2")
DEVICES = (CABINET, *LAMPS, *TRUCKS, *SPOTS, *COVERS)
OFFSET_MS = {d: 53 * n for n, d in enumerate(DEVICES, start=1)}

LAMP_MODES: dict[str, dict[str, Any]] = {
    "lit": {"on": True, "dim_pct": 100, "voltage_v": 221.0, "current_a": 0.48, "power_w": 100.0},
    "out": {"on": True, "dim_pct": 100, "voltage_v": 221.0, "current_a": 0.0, "power_w": 0.0},
    "off": {"on": False, "dim_pct": 0, "voltage_v": 221.0, "current_a": 0.0, "power_w": 0.0},
    "over_voltage": {"on": True, "dim_pct": 100, "voltage_v": 252.0, "current_a": 0.9},
    "under_voltage": {"on": True, "dim_pct": 100, "voltage_v": 190.0, "current_a": 0.5},
    "weak": {"on": True, "dim_pct": 100, "voltage_v": 220.0, "power_w": 40.0, "power_factor": 0.5},
    "no_supply": {"on": True, "dim_pct": 100, "voltage_v": 0.0, "current_a": 0.0, "power_w": 0.0},
}
TRUCK_MODES: dict[str, dict[str, Any]] = {
    "parked": {"acc_on": False, "speed_kmh": 0.0},
    "driving": {"acc_on": True, "speed_kmh": 40.0},
    "speeding": {"acc_on": True, "speed_kmh": 95.0},
    "tipping": {"acc_on": True, "speed_kmh": 0.0, "body_lifted": True, "load": "empty"},
    "cover_open": {"acc_on": True, "speed_kmh": 30.0, "cover_closed": False},
    "jump": {"acc_on": True, "speed_kmh": 40.0, "jump": True},
}
COVER_MODES: dict[str, dict[str, Any]] = {
    "ok": {"tilt_deg": 1.0, "cover_open": False, "water_level_cm": 10.0, "battery_pct": 80.0},
    "tilted": {"tilt_deg": 25.0, "cover_open": False},
    "open": {"tilt_deg": 2.0, "cover_open": True},
    "flooded": {"tilt_deg": 1.0, "cover_open": False, "water_level_cm": 400.0},
    "gas": {"tilt_deg": 1.0, "cover_open": False, "gas_lel_pct": 40.0, "battery_pct": 5.0},
}
CABINET_MODES: dict[str, dict[str, Any]] = {
    "on": {"contactor_on": True, "door_open": False, "voltage": 220.0, "current": 5.0},
    "door": {"contactor_on": True, "door_open": True, "voltage": 220.0, "current": 5.0},
    "tripped": {"contactor_on": False, "door_open": False, "voltage": 220.0, "current": 0.0},
}


def devices() -> list[DeviceInfo]:
    lamp = {"rated_power_w": 100}
    return [
        DeviceInfo(CABINET, Kind.CABINET, lat=WHERE[0], lon=WHERE[1]),
        *(DeviceInfo(d, Kind.LIGHTING, CABINET, lamp, *WHERE) for d in LAMPS),
        *(DeviceInfo(d, Kind.TRUCK, lat=WHERE[0], lon=WHERE[1]) for d in TRUCKS),
        *(DeviceInfo(d, Kind.PARKING, None, {"max_stay_min": 5}, *WHERE) for d in SPOTS),
        *(DeviceInfo(d, Kind.MANHOLE, lat=WHERE[0], lon=WHERE[1]) for d in COVERS),
    ]


def kind_of(device_id: str) -> Kind:
    return {"CAB": Kind.CABINET, "LMP": Kind.LIGHTING, "TRK": Kind.TRUCK, "SPOT": Kind.PARKING}.get(
        device_id.split("-", maxsplit=1)[0], Kind.MANHOLE
    )


def payload_of(device_id: str, mode: str, minute: int) -> dict[str, Any]:
    kind = kind_of(device_id)
    if kind is Kind.LIGHTING:
        body = {"current_a": 0.48, "power_w": 100.0, "power_factor": 0.95, "energy_kwh": 1.0}
        return body | LAMP_MODES[mode]
    if kind is Kind.CABINET:
        m = CABINET_MODES[mode]
        volts, amps = m["voltage"], m["current"]
        return {
            "contactor_on": m["contactor_on"],
            "door_open": m["door_open"],
            **{f"voltage_{p}_v": volts for p in "abc"},
            **{f"current_{p}_a": amps for p in "abc"},
            "power_w": 3 * volts * amps,
            "energy_kwh": 10.0 + minute,
        }
    if kind is Kind.TRUCK:
        m = dict(TRUCK_MODES[mode])
        jump = m.pop("jump", False)
        lat = WHERE[0] + minute * 0.005 + (0.2 if jump else 0.0)
        body = {"lat": lat, "lon": WHERE[1], "heading_deg": 0.0, "body_lifted": False}
        return body | {"cover_closed": True, "load": "full"} | m
    if kind is Kind.PARKING:
        return {"occupied": mode == "occupied"}
    return dict(COVER_MODES[mode])


def mode_strategy(device_id: str) -> st.SearchStrategy[str]:
    kind = kind_of(device_id)
    modes: Sequence[str] = {
        Kind.LIGHTING: list(LAMP_MODES),
        Kind.CABINET: list(CABINET_MODES),
        Kind.TRUCK: list(TRUCK_MODES),
        Kind.PARKING: ["occupied", "free"],
        Kind.MANHOLE: list(COVER_MODES),
    }[kind]
    return st.sampled_from(modes)


def reading(device_id: str, mode: str, minute: int) -> Reading:
    kind = kind_of(device_id)
    ts = START + timedelta(minutes=minute, milliseconds=OFFSET_MS[device_id])
    body = payload_of(device_id, mode, minute) | {"ts": round(ts.timestamp() * 1000)}
    model = PAYLOAD_MODELS[kind].model_validate(body)
    return Reading(kind, device_id, Channel.TELEMETRY, ts, ts + timedelta(milliseconds=300), model)


# A device keeps a mode for a few minutes: (mode, minutes) runs, one list per device.
RUNS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 6)), min_size=1, max_size=8)


def _square(lat: float, lon: float, half_deg: float) -> list[tuple[float, float]]:
    """A closed [lon, lat] ring around a point."""
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
    return [(lon + dx * half_deg, lat + dy * half_deg) for dx, dy in corners]


def truck_context() -> TruckContext:
    """The trucks' world, loaded: their start is a construction site, a disposal site lies up
    the road they drive north, TRK-1's night permit follows the first 13 km of it (TRK-2 has
    none), a speed zone lies across it; a jump lands off the route, near a known illegal site."""
    lat, lon = WHERE
    sites = [
        Site(site_id="CS-1", site_type=SiteType.CONSTRUCTION, ring=_square(lat, lon, 0.001)),
        Site(site_id="DS-1", site_type=SiteType.DISPOSAL, ring=_square(lat + 0.1, lon, 0.001)),
        Site(site_id="IL-1", site_type=SiteType.ILLEGAL, ring=_square(lat + 0.25, lon, 0.002)),
    ]
    permit = Permit.model_validate(
        {
            "permit_id": "PMT-1",
            "truck_id": "TRK-1",
            "company": "南京市测试渣土运输有限公司",
            "origin_site_id": "CS-1",
            "disposal_site_ids": ["DS-1"],
            "route": [(lon, lat), (lon, lat + 0.12)],
            "corridor_m": 100.0,
            "allowed_hours": "20:00-06:00",
            "valid_from": date(2025, 1, 1),
            "valid_to": date(2030, 12, 31),
        }
    )
    zones = [
        Zone(
            zone_id="SZ-1",
            zone_type=ZoneType.SPEED,
            ring=_square(lat + 0.05, lon, 0.01),
            speed_limit_kmh=30,
        )
    ]
    return TruckContext.build(sites, [permit], zones)


def packaged_rules() -> tuple[AnyRule, ...]:
    """The packaged rules, with a truck tracker of their own (it holds per-truck memory) on
    a loaded truck context (sites, a permit, a zone)."""
    source = TruckContextSource()
    source.replace(truck_context())
    return (
        *lighting.RULES,
        *trucks.build_rules(source),
        *manholes.RULES,
        *parking.RULES,
    )


def engine(*, screen_quiet: bool) -> RuleEngine:
    return RuleEngine(
        load_rules_config(),
        devices(),
        now=START,
        rules=packaged_rules(),
        group_rules=lighting.GROUP_RULES,
        screen_quiet=screen_quiet,
    )


def play(judge: RuleEngine, stream: list[list[Reading]]) -> list[AlarmSignal]:
    signals: list[AlarmSignal] = []
    for minute, batch in enumerate(stream):
        signals += judge.process(batch)
        signals += judge.tick(START + timedelta(minutes=minute, seconds=1))
    return signals


def draw_modes(data: st.DataObject) -> dict[str, list[str]]:
    """Each device's mode minute by minute: runs of a few minutes, repeated to the length."""
    minutes = data.draw(st.integers(5, 40), label="minutes")
    modes: dict[str, list[str]] = {}
    for device_id in DEVICES:
        choices = mode_strategy(device_id)
        runs = data.draw(RUNS, label=f"{device_id} runs")
        sequence: list[str] = []
        for seed, length in runs:
            sequence += [data.draw(choices, label=f"{device_id} mode {seed}")] * length
        modes[device_id] = (sequence * (minutes // len(sequence) + 1))[:minutes]
    return modes


def stream_of(modes: dict[str, list[str]]) -> list[list[Reading]]:
    """The readings of every device, minute by minute."""
    minutes = len(next(iter(modes.values())))
    return [[reading(d, modes[d][minute], minute) for d in DEVICES] for minute in range(minutes)]


def serve() -> None:
    """Play each stream of modes read from stdin; write its signals' reprs as a JSON line."""
    for line in sys.stdin:
        signals = play(engine(screen_quiet=True), stream_of(json.loads(line)))
        sys.stdout.write(json.dumps([repr(s) for s in signals]) + "\n")
        sys.stdout.flush()
