"""The domain rules the hub runs: each domain module contributes its rules here by name.

A domain module (e.g. `hub.rules.lighting`) defines `RULES: tuple[Rule, ...]` and may
define `GROUP_RULES: tuple[GroupRule, ...]`. Listing modules by name keeps the domains
independent of each other: adding one is one line here.
"""

import importlib
import importlib.util
from collections.abc import Sequence

from hub.rules.engine import GroupRule, Rule

DOMAIN_MODULES: tuple[str, ...] = (
    "hub.rules.lighting",
    "hub.rules.trucks",
    "hub.rules.manholes",
    "hub.rules.parking",
)


def _present(module_name: str) -> bool:
    return importlib.util.find_spec(module_name) is not None


def domain_rules(modules: Sequence[str] = DOMAIN_MODULES) -> tuple[Rule, ...]:
    """Every per-device rule of the domain modules that exist."""
    found: list[Rule] = []
    for name in modules:
        if _present(name):
            found.extend(getattr(importlib.import_module(name), "RULES", ()))
    return tuple(found)


def domain_group_rules(modules: Sequence[str] = DOMAIN_MODULES) -> tuple[GroupRule, ...]:
    """Every group rule of the domain modules that exist."""
    found: list[GroupRule] = []
    for name in modules:
        if _present(name):
            found.extend(getattr(importlib.import_module(name), "GROUP_RULES", ()))
    return tuple(found)
