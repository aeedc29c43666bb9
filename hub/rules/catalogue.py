"""The domain rules the hub runs: each domain module's rules, registered by importing it.

A domain module (e.g. `hub.rules.lighting`) defines `RULES: tuple[AnyRule, ...]` (each rule
typed `Rule[StateT, ParamsT]` where it is written) and may
define `GROUP_RULES: tuple[AnyGroupRule, ...]`. Registration is an import: a renamed or
missing module fails at start-up and in the type checker instead of vanishing.
"""

from hub.rules import lighting, manholes, parking, trucks
from hub.rules.interface import AnyGroupRule, AnyRule

RULES: tuple[AnyRule, ...] = (*lighting.RULES, *trucks.RULES, *manholes.RULES, *parking.RULES)
GROUP_RULES: tuple[AnyGroupRule, ...] = lighting.GROUP_RULES


def domain_rules() -> tuple[AnyRule, ...]:
    """Every per-device rule of every domain."""
    return RULES


def domain_group_rules() -> tuple[AnyGroupRule, ...]:
    """Every group rule of every domain."""
    return GROUP_RULES
