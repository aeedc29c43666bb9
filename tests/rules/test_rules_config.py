"""The rules file: the packaged one loads; bad files and bad overrides name the field."""

from pathlib import Path

import pytest

from hub.devices.kinds import Kind
from hub.rules.alarm_types import Severity
from hub.rules.config import OfflineParams, RuleConfigError, load_rules_config, parse_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo
from tests.rules.rule_fixtures import TiltRule, at, make_config


def test_packaged_file_loads_with_per_kind_defaults() -> None:
    config = load_rules_config()
    offline = config.rules["offline"]
    assert offline.kinds[Kind.CABINET].severity is Severity.CRITICAL
    assert config.reorder_tolerance_s == 0


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"rules": {"offline": {"severity": "loud"}}}, "rules.offline.severity"),
        ({"rules": {"offline": {"raise_after_s": -5}}}, "rules.offline.raise_after_s"),
        ({"rules": {"offline": {"kinds": {"lamp": {}}}}}, "rules.offline.kinds.lamp"),
        ({"reorder_tolerance": 5}, "reorder_tolerance"),
        ({"evidence_max": 0}, "evidence_max"),
        (
            {"rules": {"offline": {"expected_interval_s": 60, "missed_report": 3}}},
            "rules.offline.missed_report",
        ),
        (
            {
                "rules": {
                    "offline": {
                        "expected_interval_s": 60,
                        "kinds": {"truck": {"expected_interval_s": 0}},
                    }
                }
            },
            "rules.offline.kinds.truck.expected_interval_s",
        ),
    ],
)
def test_bad_documents_raise_an_error_naming_the_field(document: object, named: str) -> None:
    with pytest.raises(RuleConfigError, match=named.replace(".", r"\.")):
        parse_rules_config(document)


def test_missing_interval_names_the_kind() -> None:
    document = {"rules": {"offline": {"kinds": {"lighting": {"expected_interval_s": 60}}}}}
    with pytest.raises(RuleConfigError, match=r"rules\.offline\.kinds\.cabinet.*expected_interval"):
        parse_rules_config(document)


def test_bad_file_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  offline:\n    expected_interval_s: 60\n    suppress_s: soon\n")
    with pytest.raises(RuleConfigError, match=r"rules\.yaml: rules\.offline\.suppress_s"):
        load_rules_config(path)
    path.write_text("rules: [unclosed\n")
    with pytest.raises(RuleConfigError, match="cannot read"):
        load_rules_config(path)


def test_plugin_rule_params_are_checked_when_the_engine_is_built() -> None:
    config = make_config({"tilt": {"raise_degrees": 12}})
    with pytest.raises(RuleConfigError, match=r"rules\.tilt\.raise_degrees"):
        RuleEngine(config, [], now=at(0), rules=[TiltRule()])


def test_bad_device_override_names_device_and_field() -> None:
    config = make_config()
    bad = DeviceInfo(
        "mh-9", Kind.MANHOLE, attributes={"rules": {"offline": {"missed_reports": "many"}}}
    )
    with pytest.raises(RuleConfigError, match=r"device mh-9\.attributes\.rules\.offline"):
        RuleEngine(config, [bad], now=at(0))
    worse = DeviceInfo("mh-8", Kind.MANHOLE, attributes={"rules.offline.raise_after_s": -1})
    with pytest.raises(RuleConfigError, match=r"mh-8.*raise_after_s"):
        RuleEngine(config, [worse], now=at(0))


def test_offline_threshold_is_interval_times_missed_reports() -> None:
    assert OfflineParams(expected_interval_s=30, missed_reports=20).threshold_s == 600
