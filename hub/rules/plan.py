"""What the engine runs for a device: its kind's enabled rules, each with its state table,
parameters and policy, and the cheaper call it makes when the rule's verdicts can change
nothing but by a FAULT.

A condition is live while it is active, pending or in a suppression window. When none of
a rule's alarm types has a live condition of the device (most rules of most devices, most
of the time), an OK or HOLD verdict of that rule changes nothing: only a FAULT does. And
building the observations of those OK verdicts (a tuple, a values dict, a message) was
most of what the rules cost. A rule whose `evaluate` takes `faults_only` as its fifth
parameter is called with it set then, by position (not a `functools.partial`: a partial with
a keyword copies its keywords into a new dict at every call, ~5 % of a lamp reading's rules;
nor a keyword: a compiled function's wrapper unpacks positional arguments directly and parses
keywords the slow way, and a keyword-only parameter puts every call on that way), and may
leave out what is not a FAULT; its state changes must be
the same either way, and it observes only its own `alarm_types` (tests/rules/
test_quiet_screening.py holds every packaged rule to both). Issue 23, docs/performance.md.
"""

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from hub.devices.decode import Reading
from hub.rules.alarm_types import AlarmType
from hub.rules.condition import ConditionPolicy, Observation
from hub.rules.config import ResolvedRule
from hub.rules.interface import AnyRule, DeviceInfo

Evaluate = Callable[[Reading, DeviceInfo, Any, Any], Iterable[Observation]]
# An `Evaluate` of a rule that screens: it also takes `faults_only`, fifth, by position.
Screening = Callable[..., Iterable[Observation]]


class PlanStep(NamedTuple):
    """One rule as the engine runs it for a device."""

    evaluate: Evaluate  # every observation
    screens: bool  # takes faults_only (True for a quiet device: at least its FAULT observations)
    states: dict[str, Any]  # the rule's state per device id
    stateful: bool
    params: Any
    policy: ConditionPolicy
    initial: Callable[[], Any]  # the rule's initial_state
    alarm_types: frozenset[AlarmType]  # the rule's, the only types it observes


Plan = tuple[PlanStep, ...]


def screens_faults(rule: AnyRule) -> bool:
    """Whether the rule's `evaluate` takes `faults_only` as its fifth parameter, by position.

    A rule that takes it only by keyword is called without it (it still works, unscreened).
    """
    parameters = list(inspect.signature(rule.evaluate).parameters.values())
    return (
        len(parameters) >= 5
        and parameters[4].name == "faults_only"
        and parameters[4].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    )


def build_plan(
    rules: Iterable[AnyRule],
    resolved: Mapping[str, ResolvedRule],
    states: Mapping[str, dict[str, Any]],
    stateful: Mapping[str, bool],
    *,
    screen_quiet: bool = True,
) -> Plan:
    """The steps of the enabled rules among `rules`, in order.

    With `screen_quiet` False every rule is asked for every observation (the same alarms,
    slower: what the tests compare the screened engine with).
    """
    steps = []
    for rule in rules:
        effective = resolved[rule.name]
        if not effective.enabled:
            continue
        steps.append(
            PlanStep(
                rule.evaluate,
                screen_quiet and screens_faults(rule),
                states[rule.name],
                stateful[rule.name],
                effective.values,
                effective.policy,
                rule.initial_state,
                rule.alarm_types,
            )
        )
    return tuple(steps)
