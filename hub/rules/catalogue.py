"""The domain rules the hub runs: each domain module's rules, registered by importing it.

A domain module (e.g. `hub.rules.lighting`) defines `RULES: tuple[Rule, ...]` and may
define `GROUP_RULES: tuple[GroupRule, ...]`. Registration is an import: a renamed or
missing module fails at start-up and in the type checker instead of vanishing.
"""

from hub.rules import lighting, manholes, parking, trucks
from hub.rules.engine import GroupRule, Rule

RULES: tuple[Rule, ...] = (*lighting.RULES, *trucks.RULES, *manholes.RULES, *parking.RULES)
GROUP_RULES: tuple[GroupRule, ...] = lighting.GROUP_RULES


def domain_rules() -> tuple[Rule, ...]:
    """Every per-device rule of every domain."""
    return RULES


def domain_group_rules() -> tuple[GroupRule, ...]:
    """Every group rule of every domain."""
    return GROUP_RULES
