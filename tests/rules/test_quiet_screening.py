"""Property: screening quiet rules (hub/rules/plan.py) changes no alarm.

When none of a rule's alarm types has a live condition of the device, the engine asks a
rule that takes `faults_only` for its FAULT observations only. Generated streams of every
kind's packaged rules (lamps on a cabinet, muck trucks, parking spots, manhole covers:
normal, faulty and recovering readings, minute by minute) are judged by two engines, one
screening and one asking every rule for every observation; their signals, evidence
included, must be the same. And each screening rule, asked both ways about one reading
from the same state, must give the same FAULT observations, leave the same state and
observe no alarm type it does not list.
"""

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.payloads import PAYLOAD_MODELS
from hub.rules import lighting, manholes, parking, trucks
from hub.rules.condition import Verdict
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import AnyRule, DeviceInfo
from hub.rules.plan import screens_faults
from hub.rules.signals import AlarmSignal
from hub.rules.truck_context import TruckContextSource

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


def _devices() -> list[DeviceInfo]:
    lamp = {"rated_power_w": 100}
    return [
        DeviceInfo(CABINET, Kind.CABINET, lat=WHERE[0], lon=WHERE[1]),
        *(DeviceInfo(d, Kind.LIGHTING, CABINET, lamp, *WHERE) for d in LAMPS),
        *(DeviceInfo(d, Kind.TRUCK, lat=WHERE[0], lon=WHERE[1]) for d in TRUCKS),
        *(DeviceInfo(d, Kind.PARKING, None, {"max_stay_min": 5}, *WHERE) for d in SPOTS),
        *(DeviceInfo(d, Kind.MANHOLE, lat=WHERE[0], lon=WHERE[1]) for d in COVERS),
    ]


def _kind(device_id: str) -> Kind:
    return {"CAB": Kind.CABINET, "LMP": Kind.LIGHTING, "TRK": Kind.TRUCK, "SPOT": Kind.PARKING}.get(
        device_id.split("-", maxsplit=1)[0], Kind.MANHOLE
    )


def _payload(device_id: str, mode: str, minute: int) -> dict[str, Any]:
    kind = _kind(device_id)
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


def _mode_strategy(device_id: str) -> st.SearchStrategy[str]:
    kind = _kind(device_id)
    modes: Sequence[str] = {
        Kind.LIGHTING: list(LAMP_MODES),
        Kind.CABINET: list(CABINET_MODES),
        Kind.TRUCK: list(TRUCK_MODES),
        Kind.PARKING: ["occupied", "free"],
        Kind.MANHOLE: list(COVER_MODES),
    }[kind]
    return st.sampled_from(modes)


def _reading(device_id: str, mode: str, minute: int) -> Reading:
    kind = _kind(device_id)
    ts = START + timedelta(minutes=minute, milliseconds=OFFSET_MS[device_id])
    body = _payload(device_id, mode, minute) | {"ts": round(ts.timestamp() * 1000)}
    payload = PAYLOAD_MODELS[kind].model_validate(body)
    return Reading(
        kind, device_id, Channel.TELEMETRY, ts, ts + timedelta(milliseconds=300), payload
    )


# A device keeps a mode for a few minutes: (mode, minutes) runs, one list per device.
_runs = st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 6)), min_size=1, max_size=8)


def _rules() -> tuple[AnyRule, ...]:
    """The packaged rules, with a truck tracker of their own (it holds per-truck memory)."""
    return (
        *lighting.RULES,
        *trucks.build_rules(TruckContextSource()),
        *manholes.RULES,
        *parking.RULES,
    )


def _engine(*, screen_quiet: bool) -> RuleEngine:
    return RuleEngine(
        load_rules_config(),
        _devices(),
        now=START,
        rules=_rules(),
        group_rules=lighting.GROUP_RULES,
        screen_quiet=screen_quiet,
    )


def _play(engine: RuleEngine, stream: list[list[Reading]]) -> list[AlarmSignal]:
    signals: list[AlarmSignal] = []
    for minute, batch in enumerate(stream):
        signals += engine.process(batch)
        signals += engine.tick(START + timedelta(minutes=minute, seconds=1))
    return signals


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_screening_engine_gives_the_alarms_of_one_that_asks_for_everything(
    data: st.DataObject,
) -> None:
    minutes = data.draw(st.integers(5, 40), label="minutes")
    modes: dict[str, list[str]] = {}
    for device_id in DEVICES:
        choices = _mode_strategy(device_id)
        runs = data.draw(_runs, label=f"{device_id} runs")
        sequence: list[str] = []
        for seed, length in runs:
            sequence += [data.draw(choices, label=f"{device_id} mode {seed}")] * length
        modes[device_id] = (sequence * (minutes // len(sequence) + 1))[:minutes]
    stream = [[_reading(d, modes[d][minute], minute) for d in DEVICES] for minute in range(minutes)]

    screened = _play(_engine(screen_quiet=True), stream)
    asked = _play(_engine(screen_quiet=False), stream)

    assert screened == asked


def test_the_streams_raise_and_clear_alarms_of_every_kind() -> None:
    """The generator reaches faults of every kind, so the property above is not vacuous."""
    faulty = {"LMP": "out", "TRK": "speeding", "SPOT": "occupied", "MH": "tilted", "CAB": "door"}
    healthy = {"LMP": "lit", "TRK": "driving", "SPOT": "free", "MH": "ok", "CAB": "on"}
    # One lamp out, not all: a whole circuit dark is the cabinet's group alarm.
    stream = [
        [
            _reading(
                d,
                (faulty if 3 <= minute < 15 and d != "LMP-2" else healthy)[d.split("-")[0]],
                minute,
            )
            for d in DEVICES
        ]
        for minute in range(30)
    ]

    signals = _play(_engine(screen_quiet=True), stream)

    kinds = {_kind(s.source_id) for s in signals}
    assert kinds == {Kind.LIGHTING, Kind.CABINET, Kind.TRUCK, Kind.PARKING, Kind.MANHOLE}
    assert {s.action.value for s in signals} >= {"raise", "clear"}
    assert signals == _play(_engine(screen_quiet=False), stream)


SCREENING = [rule for rule in _rules() if screens_faults(rule)]


def test_every_hot_rule_screens() -> None:
    names = {rule.name for rule in SCREENING}
    assert {"lamp_out", "lamp_voltage", "power_factor", "truck_track", "parking_spot"} <= names
    assert {"manhole_tilt", "manhole_cover_open", "manhole_water_alert"} <= names


@pytest.mark.parametrize("rule", SCREENING, ids=lambda rule: rule.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_rule_asked_for_faults_only_gives_the_same_faults_and_state(
    rule: AnyRule, data: st.DataObject
) -> None:
    device_id = next(d for d in DEVICES if _kind(d) in rule.kinds)
    device = next(info for info in _devices() if info.device_id == device_id)
    params = rule.params_model()
    state = rule.initial_state()
    # A history first, so stateful rules (trends, flicker, debounce, episodes) are mid-way.
    history = data.draw(st.lists(_mode_strategy(device_id), min_size=1, max_size=12))
    for minute, mode in enumerate(history):
        list(rule.evaluate(_reading(device_id, mode, minute), device, state, params))
    reading = _reading(device_id, data.draw(_mode_strategy(device_id)), len(history))
    twin = copy.deepcopy(state)
    evaluate: Any = rule.evaluate

    some = list(evaluate(reading, device, state, params, faults_only=True))
    every = list(rule.evaluate(reading, device, twin, params))

    def faults(observations: list[Any]) -> list[Any]:
        return [o for o in observations if o.verdict is Verdict.FAULT]

    assert faults(some) == faults(every)
    assert _fields(state) == _fields(twin)
    # The engine screens by the rule's own types: a rule must observe no other.
    assert {o.alarm_type for o in every} <= rule.alarm_types


def _fields(state: object) -> object:
    """A rule state's contents, for comparing two copies (slotted or not)."""
    if state is None:
        return None
    slots = getattr(type(state), "__slots__", ())
    names = list(slots) + list(getattr(state, "__dict__", {}))
    return {name: getattr(state, name, None) for name in names}
