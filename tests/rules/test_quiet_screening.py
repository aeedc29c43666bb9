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
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.devices.kinds import Kind
from hub.rules.condition import Verdict
from hub.rules.interface import AnyRule
from hub.rules.plan import screens_faults
from tests.rules.streams import (
    DEVICES,
    devices,
    draw_modes,
    engine,
    kind_of,
    mode_strategy,
    packaged_rules,
    play,
    reading,
    stream_of,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_screening_engine_gives_the_alarms_of_one_that_asks_for_everything(
    data: st.DataObject,
) -> None:
    stream = stream_of(draw_modes(data))

    screened = play(engine(screen_quiet=True), stream)
    asked = play(engine(screen_quiet=False), stream)

    assert screened == asked


def test_the_streams_raise_and_clear_alarms_of_every_kind() -> None:
    """The generator reaches faults of every kind, so the property above is not vacuous."""
    faulty = {"LMP": "out", "TRK": "speeding", "SPOT": "occupied", "MH": "tilted", "CAB": "door"}
    healthy = {"LMP": "lit", "TRK": "driving", "SPOT": "free", "MH": "ok", "CAB": "on"}
    # One lamp out, not all: a whole circuit dark is the cabinet's group alarm.
    stream = [
        [
            reading(
                d,
                (faulty if 3 <= minute < 15 and d != "LMP-2" else healthy)[d.split("-")[0]],
                minute,
            )
            for d in DEVICES
        ]
        for minute in range(30)
    ]

    signals = play(engine(screen_quiet=True), stream)

    kinds = {kind_of(s.source_id) for s in signals}
    assert kinds == {Kind.LIGHTING, Kind.CABINET, Kind.TRUCK, Kind.PARKING, Kind.MANHOLE}
    assert {s.action.value for s in signals} >= {"raise", "clear"}
    # The truck context is loaded: TRK-2, driving without a permit, raises no_permit.
    assert ("TRK-2", "no_permit") in {(s.source_id, s.alarm_type.value) for s in signals}
    assert signals == play(engine(screen_quiet=False), stream)


SCREENING = [rule for rule in packaged_rules() if screens_faults(rule)]


def test_every_hot_rule_screens() -> None:
    names = {rule.name for rule in SCREENING}
    assert {"lamp_out", "lamp_voltage", "power_factor", "truck_track", "parking_spot"} <= names
    assert {"manhole_tilt", "manhole_cover_open", "manhole_water_alert"} <= names


def test_a_rule_screens_only_when_it_takes_faults_only_fifth_by_position() -> None:
    class Positional:
        def evaluate(
            self, reading: Any, device: Any, state: Any, params: Any, faults_only: bool = False
        ) -> list[Any]:
            return []

    class KeywordOnly:
        def evaluate(
            self, reading: Any, device: Any, state: Any, params: Any, *, faults_only: bool = False
        ) -> list[Any]:
            return []

    class Without:
        def evaluate(self, reading: Any, device: Any, state: Any, params: Any) -> list[Any]:
            return []

    screens: Any = screens_faults
    assert screens(Positional())
    # The engine passes it by position: a keyword-only one would fail; it runs unscreened.
    assert not screens(KeywordOnly())
    assert not screens(Without())


@pytest.mark.parametrize("rule", SCREENING, ids=lambda rule: rule.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_rule_asked_for_faults_only_gives_the_same_faults_and_state(
    rule: AnyRule, data: st.DataObject
) -> None:
    device_id = next(d for d in DEVICES if kind_of(d) in rule.kinds)
    device = next(info for info in devices() if info.device_id == device_id)
    params = rule.params_model()
    state = rule.initial_state()
    # A history first, so stateful rules (trends, flicker, debounce, episodes) are mid-way.
    history = data.draw(st.lists(mode_strategy(device_id), min_size=1, max_size=12))
    for minute, mode in enumerate(history):
        list(rule.evaluate(reading(device_id, mode, minute), device, state, params))
    last = reading(device_id, data.draw(mode_strategy(device_id)), len(history))
    twin = copy.deepcopy(state)
    evaluate: Any = rule.evaluate

    some = list(evaluate(last, device, state, params, True))  # by position, as the engine
    every = list(rule.evaluate(last, device, twin, params))

    def faults(observations: list[Any]) -> list[Any]:
        return [o for o in observations if o.verdict is Verdict.FAULT]

    assert faults(some) == faults(every)
    assert _fields(state) == _fields(twin)
    # The engine screens by the rule's own types: a rule must observe no other.
    assert {o.alarm_type for o in every} <= rule.alarm_types


def _fields(state: object) -> object:
    """A rule state's contents, for comparing two copies (slotted, compiled or not)."""
    if state is None:
        return None
    cls = type(state)
    # A plain class lists __slots__ or has a __dict__; a mypyc-compiled one (hub/native.py)
    # lists __mypyc_attrs__.
    names = [
        *getattr(cls, "__slots__", ()),
        *getattr(cls, "__mypyc_attrs__", ()),
        *getattr(state, "__dict__", {}),
    ]
    assert names, f"the fields of {cls.__name__} cannot be read"
    # A compiled class keeps a float unboxed and boxes a new one per read, and NaN equals
    # no other NaN object (a plain copy shared the one object, which dict equality accepts).
    return {name: _same_nan(getattr(state, name, None)) for name in names}


def _same_nan(value: object) -> object:
    return "NaN" if isinstance(value, float) and math.isnan(value) else value
