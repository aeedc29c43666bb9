"""Rule thresholds and policies: the validated rules file, per-kind defaults, per-device overrides.

The file (`rules.yaml` next to this module by default) has engine-wide settings and one
section per rule name. A section holds the policy keys (`enabled`, `severity`,
`raise_after_s`, `clear_after_s`, `suppress_s`, `update_interval_s`, `assume_persists`)
and the rule's own parameters side by side (flat), plus `kinds:` with the same keys per
asset kind. Layers apply in this order, later wins: built-in policy defaults, rule
section, `kinds.<kind>`, the device's attributes.

Per-device overrides come from the registry attributes, in either form (flat keys win
when both are present):

- nested: ``{"rules": {"offline": {"expected_interval_s": 600}}}``
- flat (CSV friendly): ``{"rules.offline.expected_interval_s": 600}``
"""

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.devices.kinds import Kind
from hub.rules.alarm_types import Severity
from hub.rules.condition import ConditionPolicy
from hub.rules.readable_params import readable

OFFLINE_RULE = "offline"
POLICY_KEYS = frozenset(
    {
        "enabled",
        "severity",
        "raise_after_s",
        "clear_after_s",
        "suppress_s",
        "update_interval_s",
        "assume_persists",
    }
)
_FLAT_PREFIX = "rules."

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class RuleConfigError(ValueError):
    """The rules file or a device's rule overrides are invalid; the message names the field."""


class PolicyOverride(BaseModel):
    """Policy keys (all optional) plus the rule's own parameters as extra keys."""

    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: bool | None = None
    severity: Severity | None = None
    raise_after_s: Seconds | None = None
    clear_after_s: Seconds | None = None
    suppress_s: Seconds | None = None
    update_interval_s: Seconds | None = None
    assume_persists: bool | None = None


class RuleSection(PolicyOverride):
    """One rule's section: its defaults and the per-kind overrides."""

    kinds: dict[Kind, PolicyOverride] = Field(default_factory=dict)


class RulesConfig(BaseModel):
    """The whole rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reorder_tolerance_s: Seconds = 0.0
    evidence_max: int = Field(default=5, ge=1, le=50)
    rules: dict[str, RuleSection] = Field(default_factory=dict)


class NoParams(BaseModel):
    """Parameters of a rule that has none beyond its policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OfflineParams(BaseModel):
    """Offline rule: silent for `missed_reports` × `expected_interval_s` of receive time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expected_interval_s: float = Field(gt=0, allow_inf_nan=False)
    missed_reports: int = Field(default=3, ge=1, le=1000)

    @property
    def threshold_s(self) -> float:
        """Seconds without a reading after which the device is offline."""
        return self.expected_interval_s * self.missed_reports


BUILTIN_PARAM_MODELS: Mapping[str, type[BaseModel]] = {OFFLINE_RULE: OfflineParams}


@dataclass(frozen=True, slots=True)
class ResolvedRule:
    """A rule's effective policy and validated parameters for one kind or one device."""

    enabled: bool
    policy: ConditionPolicy
    params: Any
    # The same values as a plain object, what the rules are given (hub/rules/readable_params.py).
    values: Any


def _describe(err: ValidationError, where: str) -> str:
    parts = []
    for item in err.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in item["loc"])
        path = f"{where}.{loc}" if where and loc else (where or loc or "file")
        parts.append(f"{path}: {item['msg']}")
    return "; ".join(parts)


def parse_rules_config(
    data: object,
    param_models: Mapping[str, type[BaseModel]] = BUILTIN_PARAM_MODELS,
) -> RulesConfig:
    """Validate a decoded rules document; check every known rule's parameters for every kind."""
    if data is None:
        data = {}
    try:
        config = RulesConfig.model_validate(data)
    except ValidationError as err:
        raise RuleConfigError(_describe(err, "")) from err
    for name, model in param_models.items():
        kinds = config.rules[name].kinds if name in config.rules else {}
        targets = tuple(Kind) if name == OFFLINE_RULE else tuple(kinds)
        if not targets:
            resolve_rule(config, name, model, None)
        for kind in targets:
            resolve_rule(config, name, model, kind)
    return config


def load_rules_config(
    path: Path | None = None,
    param_models: Mapping[str, type[BaseModel]] = BUILTIN_PARAM_MODELS,
) -> RulesConfig:
    """Read and validate a rules file (the packaged `rules.yaml` when no path is given)."""
    where = str(path) if path is not None else "hub/rules/rules.yaml"
    try:
        if path is None:
            text = resources.files("hub.rules").joinpath("rules.yaml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as err:
        raise RuleConfigError(f"{where}: cannot read rules file: {err}") from err
    try:
        return parse_rules_config(data, param_models)
    except RuleConfigError as err:
        raise RuleConfigError(f"{where}: {err}") from err


def device_overrides(attributes: Mapping[str, object], rule_name: str) -> dict[str, object]:
    """The override keys of one rule in a device's attributes (nested and flat forms)."""
    found: dict[str, object] = {}
    nested = attributes.get("rules")
    if isinstance(nested, Mapping):
        section = nested.get(rule_name)
        if isinstance(section, Mapping):
            found.update({str(k): v for k, v in section.items()})
        elif section is not None:
            raise RuleConfigError(f"attributes.rules.{rule_name}: must be an object")
    prefix = f"{_FLAT_PREFIX}{rule_name}."
    for key, value in attributes.items():
        if key.startswith(prefix):
            found[key[len(prefix) :]] = value
    return found


def has_device_overrides(attributes: Mapping[str, object]) -> bool:
    """Whether a device's attributes carry any rule override at all (the fast path says no)."""
    if not attributes:
        return False
    return "rules" in attributes or any(k.startswith(_FLAT_PREFIX) for k in attributes)


def resolve_rule(
    config: RulesConfig,
    rule_name: str,
    params_model: type[BaseModel],
    kind: Kind | None,
    overrides: Mapping[str, object] | None = None,
    where: str = "",
) -> ResolvedRule:
    """Merge defaults, the rule section, its kind section and device overrides, then validate."""
    merged: dict[str, Any] = {}
    section = config.rules.get(rule_name)
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if section is not None:
        layers.append(
            (
                f"rules.{rule_name}",
                section.model_dump(exclude_unset=True, exclude_none=True, exclude={"kinds"}),
            )
        )
        if kind is not None and kind in section.kinds:
            layers.append(
                (
                    f"rules.{rule_name}.kinds.{kind}",
                    section.kinds[kind].model_dump(exclude_unset=True, exclude_none=True),
                )
            )
    if overrides:
        device_where = where or "device"
        try:
            checked = PolicyOverride.model_validate(dict(overrides))
        except ValidationError as err:
            raise RuleConfigError(
                _describe(err, f"{device_where}.attributes.rules.{rule_name}")
            ) from err
        layers.append(
            (
                f"{device_where}.attributes.rules.{rule_name}",
                checked.model_dump(exclude_unset=True, exclude_none=True),
            )
        )
    origin: dict[str, str] = {}
    for layer_where, values in layers:
        for key, value in values.items():
            merged[key] = value
            origin[key] = layer_where
    params_raw = {k: v for k, v in merged.items() if k not in POLICY_KEYS}
    try:
        params = params_model.model_validate(params_raw)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]["loc"]
        key = str(first[0]) if first else ""
        base = origin.get(key) or (
            f"rules.{rule_name}.kinds.{kind}" if kind is not None else f"rules.{rule_name}"
        )
        raise RuleConfigError(_describe(err, base)) from err
    policy = ConditionPolicy(
        severity=merged.get("severity") or Severity.MAJOR,
        raise_after_s=float(merged.get("raise_after_s", 0.0)),
        clear_after_s=float(merged.get("clear_after_s", 0.0)),
        suppress_s=float(merged.get("suppress_s", 0.0)),
        update_interval_s=float(merged.get("update_interval_s", 300.0)),
        assume_persists=bool(merged.get("assume_persists", False)),
        evidence_max=config.evidence_max,
    )
    return ResolvedRule(
        enabled=bool(merged.get("enabled", True)),
        policy=policy,
        params=params,
        values=readable(params),
    )
