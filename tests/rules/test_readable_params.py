"""The rules read their parameters from plain twins of the validated models
(hub/rules/readable_params.py): the same values, methods and properties, read-only."""

import inspect

import pytest
from pydantic import BaseModel

from hub.rules.catalogue import domain_group_rules, domain_rules
from hub.rules.config import BUILTIN_PARAM_MODELS, RulesConfig, resolve_rule
from hub.rules.readable_params import readable

MODELS: dict[str, type[BaseModel]] = {
    **{rule.name: rule.params_model for rule in domain_rules()},
    **{rule.name: rule.params_model for rule in domain_group_rules()},
    **BUILTIN_PARAM_MODELS,
}


def _resolved(name: str) -> BaseModel:
    config = RulesConfig.model_validate({"rules": {"offline": {"expected_interval_s": 60}}})
    params: BaseModel = resolve_rule(config, name, MODELS[name], None).params
    return params


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_rules_twin_reads_as_its_model(name: str) -> None:
    params = _resolved(name)
    twin = readable(params)
    assert len(MODELS) > 20  # every rule of the catalogue
    for field in type(params).model_fields:
        assert getattr(twin, field) == getattr(params, field)
    own = {
        attr: member
        for klass in type(params).__mro__
        if issubclass(klass, BaseModel) and klass is not BaseModel
        for attr, member in vars(klass).items()
        if not attr.startswith("_")
    }
    for attr, member in own.items():
        if isinstance(member, property):
            assert getattr(twin, attr) == getattr(params, attr)
        elif inspect.isfunction(member):
            assert hasattr(twin, attr), f"{attr} of {type(params).__name__} missing"
    assert twin == readable(params)
    assert repr(twin) == repr(params)
    with pytest.raises(AttributeError, match="read-only"):
        twin.anything = 1
    assert not hasattr(twin, "__dict__")  # slots: no per-read hook, no dictionary


def test_a_method_of_the_model_works_on_the_twin() -> None:
    from hub.rules.manhole_params import TiltParams

    params = TiltParams(threshold_deg=12, threshold_by_cover_type_deg={"composite": 7})
    twin = readable(params)
    assert twin.threshold_for("composite") == params.threshold_for("composite") == 7
    assert twin.threshold_for("iron") == params.threshold_for("iron") == 12


def test_the_resolved_rule_gives_the_rules_the_twin() -> None:
    config = RulesConfig.model_validate({})
    name = next(iter(sorted(set(MODELS) - set(BUILTIN_PARAM_MODELS))))
    resolved = resolve_rule(config, name, MODELS[name], None)
    assert resolved.values == readable(resolved.params)
    assert not isinstance(resolved.values, BaseModel)
