"""Tests of the case policy file: routing precedence, filing decisions, validation errors."""

from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
import yaml

from hub.cases.calendar import Urgency
from hub.cases.classification import ClassificationError, ClassKind, load_classification
from hub.cases.routing import (
    RECURRENCE,
    FilingOutcome,
    JoinScope,
    PolicyError,
    RoutingModel,
    decide_filing,
    load_case_policy,
    parse_case_policy,
)
from hub.rules.alarm_types import AlarmType, Severity

TABLE = load_classification()
POLICY = load_case_policy()
T0 = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)

ROUTING = RoutingModel.model_validate(
    {
        "default_department": "city",
        "routes": [
            {"class_codes": ["01"], "department": "utilities"},
            {"class_codes": ["01037"], "department": "lighting"},
            {"class_codes": ["01037"], "area": "320102", "department": "xuanwu_lighting"},
            {"class_codes": ["01037"], "area": "320102001", "department": "street1_lighting"},
            {"area": "320104", "department": "qinhuai_city"},
            {"class_codes": ["06"], "area": "320104", "department": "qinhuai_sanitation"},
        ],
    }
)


@pytest.mark.parametrize(
    ("class_code", "grid_code", "department"),
    [
        ("01037", "320102001002003", "street1_lighting"),  # longest area prefix
        ("01037", "320102002002003", "xuanwu_lighting"),
        ("01037", "320105001002003", "lighting"),  # exact class, no area match
        ("01037", None, "lighting"),  # no location: area rules cannot apply
        ("01003", "320102001002003", "utilities"),  # major match
        ("01003", "320104001002003", "utilities"),  # class beats an any-class area rule
        ("06011", "320104001002003", "qinhuai_sanitation"),
        ("09009", "320104001002003", "qinhuai_city"),
        ("09009", "320105001002003", "city"),  # default
    ],
)
def test_routing_precedence(class_code: str, grid_code: str | None, department: str) -> None:
    assert ROUTING.route(class_code, grid_code) == department


def test_routing_refuses_bad_codes() -> None:
    with pytest.raises(ClassificationError):
        ROUTING.route("0103", None)
    with pytest.raises(ClassificationError):
        ROUTING.route("01003", "3201")


def test_packaged_policy_routes() -> None:
    route = POLICY.routing.route
    assert route("01037", "320102001002003") == "street_lighting"
    assert route("01011", "320102001002003") == "gas"
    assert route("01023", "320102001002003") == "city_management"
    assert route("06011", None) == "sanitation"
    assert route("02001", None) == "traffic"


def test_packaged_policy_covers_every_alarm_type() -> None:
    assert set(POLICY.filing) == set(AlarmType)


def test_lamp_out_waits_then_files_under_the_lamps_code() -> None:
    waiting = decide_filing(
        POLICY,
        TABLE,
        alarm_type=AlarmType.LAMP_OUT,
        severity=Severity.MINOR,
        active_since_at=T0,
        now_at=T0 + timedelta(minutes=10),
        device_class_code="01039",
    )
    assert waiting.outcome is FilingOutcome.WAIT
    assert waiting.file_at == T0 + timedelta(minutes=30)
    filed = decide_filing(
        POLICY,
        TABLE,
        alarm_type=AlarmType.LAMP_OUT,
        severity=Severity.MINOR,
        active_since_at=T0,
        now_at=T0 + timedelta(minutes=30),
        device_class_code="01039",
    )
    assert filed.outcome is FilingOutcome.FILE
    assert filed.case_class is not None
    assert filed.case_class.key == (ClassKind.MATTER, "01039")
    assert filed.case_class.name_zh == "景观灯异常"
    assert filed.auto_register
    assert filed.auto_dispatch


def test_lamp_out_without_device_class_falls_back_to_street_lamp() -> None:
    filed = decide_filing(
        POLICY,
        TABLE,
        alarm_type=AlarmType.LAMP_OUT,
        severity=Severity.MINOR,
        active_since_at=T0,
        now_at=T0 + timedelta(hours=1),
    )
    assert filed.case_class == TABLE.get(ClassKind.MATTER, "01037")


@pytest.mark.parametrize(
    ("severity", "urgency"),
    [(Severity.CRITICAL, Urgency.URGENT), (Severity.MAJOR, Urgency.NORMAL)],
    ids=["main road", "side street"],
)
def test_tilted_gas_cover_files_at_once_urgent_on_main_roads(
    severity: Severity, urgency: Urgency
) -> None:
    filed = decide_filing(
        POLICY,
        TABLE,
        alarm_type=AlarmType.TILT,
        severity=severity,
        active_since_at=T0,
        now_at=T0,
        device_class_code="01011",
    )
    assert filed.outcome is FilingOutcome.FILE
    assert filed.case_class is not None
    assert filed.case_class.name_zh == "燃气井盖异常"
    assert filed.urgency is urgency
    assert filed.description == "井盖移位、倾斜"


def test_illegal_dumping_is_06011() -> None:
    filed = decide_filing(
        POLICY,
        TABLE,
        alarm_type=AlarmType.ILLEGAL_DUMPING,
        severity=Severity.MAJOR,
        active_since_at=T0,
        now_at=T0,
    )
    assert filed.case_class == TABLE.get(ClassKind.MATTER, "06011")
    assert not filed.auto_register


def test_never_filed() -> None:
    skipped = decide_filing(
        POLICY,
        TABLE,
        alarm_type=AlarmType.OFFLINE,
        severity=Severity.CRITICAL,
        active_since_at=T0,
        now_at=T0 + timedelta(days=3),
    )
    assert skipped.outcome is FilingOutcome.SKIP
    assert skipped.case_class is None


def _base_policy() -> dict[str, object]:
    return {
        "version": 1,
        "departments": {"city": "城管局", "lighting": "路灯所"},
        "routing": {
            "default_department": "city",
            "routes": [{"class_codes": ["01037"], "department": "lighting"}],
        },
        "filing": {},
        "deadlines": {
            "rules": [
                {"stage": "register", "working_h": 1},
                {"stage": "dispatch", "working_h": 1},
                {"stage": "handle", "working_days": 2},
                {"stage": "verify", "working_h": 4},
            ]
        },
    }


def _policy_with_filing(filing: dict[str, object]) -> str:
    document = _base_policy()
    document["filing"] = filing
    return yaml.safe_dump(document, allow_unicode=True)


def test_files_says_what_decide_filing_ever_files() -> None:
    """`CasePolicy.files`, which lets the alarm store decide a never-filed alarm at its
    raise, agrees with `decide_filing` for every type and severity, in the packaged policy
    and in one with a severity threshold: skipped exactly when it says never."""
    threshold = parse_case_policy(
        _policy_with_filing(
            {"door_open": {"mode": "at_once", "class_code": "01060", "min_severity": "minor"}}
        )
    )
    for policy in (POLICY, threshold):
        for alarm_type in AlarmType:
            for severity in Severity:
                try:
                    outcome = decide_filing(
                        policy,
                        TABLE,
                        alarm_type=alarm_type,
                        severity=severity,
                        active_since_at=T0,
                        now_at=T0 + timedelta(days=1),
                    ).outcome
                except (ClassificationError, PolicyError):
                    outcome = FilingOutcome.FILE  # an attempt to file: not a "never"
                expected = outcome is not FilingOutcome.SKIP
                assert policy.files(alarm_type, severity) is expected, (alarm_type, severity)
    assert not POLICY.files(AlarmType.NO_PERMIT, Severity.CRITICAL)
    assert not threshold.files(AlarmType.DOOR_OPEN, Severity.WARNING)


def test_severity_thresholds() -> None:
    policy = parse_case_policy(
        _policy_with_filing(
            {
                "door_open": {
                    "mode": "at_once",
                    "class_code": "01060",
                    "class_from_device": True,
                    "min_severity": "minor",
                    "urgent_at_severity": "critical",
                }
            }
        )
    )

    def decide(severity: Severity) -> tuple[FilingOutcome, Urgency]:
        decision = decide_filing(
            policy,
            TABLE,
            alarm_type=AlarmType.DOOR_OPEN,
            severity=severity,
            active_since_at=T0,
            now_at=T0,
        )
        return decision.outcome, decision.urgency

    assert decide(Severity.WARNING)[0] is FilingOutcome.SKIP
    assert decide(Severity.MINOR) == (FilingOutcome.FILE, Urgency.NORMAL)
    assert decide(Severity.CRITICAL) == (FilingOutcome.FILE, Urgency.URGENT)
    # an alarm type the policy does not list is never filed
    assert (
        decide_filing(
            policy,
            TABLE,
            alarm_type=AlarmType.GAS,
            severity=Severity.CRITICAL,
            active_since_at=T0,
            now_at=T0,
        ).outcome
        is FilingOutcome.SKIP
    )


def test_class_from_device_without_fallback_needs_the_device_class() -> None:
    policy = parse_case_policy(
        _policy_with_filing({"tilt": {"mode": "at_once", "class_from_device": True}})
    )
    with pytest.raises(PolicyError, match="needs the device's component class code"):
        decide_filing(
            policy,
            TABLE,
            alarm_type=AlarmType.TILT,
            severity=Severity.MAJOR,
            active_since_at=T0,
            now_at=T0,
        )


@pytest.mark.parametrize(
    ("filing", "message"),
    [
        ({"lamp_out": {"mode": "after", "class_code": "01037"}}, "after_min is required"),
        (
            {"lamp_out": {"mode": "at_once", "after_min": 5, "class_code": "01037"}},
            "after_min is required with mode 'after' and only with it",
        ),
        ({"lamp_out": {"mode": "at_once"}}, "needs class_code, class_from_device"),
        ({"lamp_exploded": {"mode": "never"}}, "Input should be 'offline'"),
        ({"lamp_out": {"mode": "sometimes"}}, "Input should be 'at_once', 'after' or 'never'"),
        ({"illegal_dumping": {"mode": "at_once", "class_code": "06099"}}, "no matter class"),
        (
            {"tilt": {"mode": "at_once", "class_from_device": True, "class_code": "06011"}},
            "06011 is not a component|no component class",
        ),
        (
            {"lamp_out": {"mode": "at_once", "class_code": "01037", "auto_dispatch": True}},
            "auto_dispatch needs auto_register",
        ),
        (
            {"lamp_out": {"mode": "at_once", "class_code": "01037", "colour": "red"}},
            "Extra inputs are not permitted",
        ),
    ],
)
def test_filing_validation_errors(filing: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_case_policy(_policy_with_filing(filing))


def test_policy_validation_errors() -> None:
    def problem(document: dict[str, object]) -> str:
        with pytest.raises(PolicyError) as caught:
            parse_case_policy(yaml.safe_dump(document, allow_unicode=True))
        return str(caught.value)

    doc = _base_policy()
    doc["routing"] = {"default_department": "nobody"}
    assert "routing names departments not listed under departments: ['nobody']" in problem(doc)
    doc = _base_policy()
    doc["version"] = 2
    assert "Input should be 1" in problem(doc)
    doc = _base_policy()
    doc["routing"] = {
        "default_department": "city",
        "routes": [{"class_codes": ["0118"], "department": "lighting"}],
    }
    assert "5 ASCII digits" in problem(doc)
    doc = _base_policy()
    doc["routing"] = {
        "default_department": "city",
        "routes": [
            {"class_codes": ["01037"], "department": "lighting"},
            {"class_codes": ["01037", "01038"], "department": "city"},
        ],
    }
    assert "routes 0 and 1 both route class 01037 in area any" in problem(doc)
    doc = _base_policy()
    doc["deadlines"] = {"rules": [{"stage": "register", "working_h": 1}]}
    assert "stage dispatch needs a rule for any class and urgency" in problem(doc)
    doc = _base_policy()
    del doc["deadlines"]
    assert "deadlines\n  Field required" in problem(doc)
    doc = _base_policy()
    doc["evaluation"] = {
        "weights": {
            "volume": 0.5,
            "closure_rate": 0.3,
            "on_time_handling_rate": 0.3,
            "rework_free": 0.3,
        }
    }
    assert "must add up to 1, they add up to 1.4" in problem(doc)
    doc = _base_policy()
    doc["evaluation"] = {"grades": {"a": 70, "b": 75}}
    assert "grade thresholds must satisfy" in problem(doc)


def test_policy_that_is_not_yaml() -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_case_policy("routing: [\n")


def test_truck_dumping_goes_to_enforcement_not_by_class() -> None:
    filed = decide_filing(
        POLICY,
        TABLE,
        alarm_type=AlarmType.ILLEGAL_DUMPING,
        severity=Severity.MAJOR,
        active_since_at=T0,
        now_at=T0,
    )
    assert filed.department == "enforcement"
    assert filed.case_class is not None
    # A person reporting the same class is still routed by class.
    assert POLICY.routing.route(filed.case_class.code, None) != "enforcement"


def test_filing_department_must_be_a_listed_department() -> None:
    packaged = resources.files("hub.cases").joinpath("policy.yaml")
    text = packaged.read_text(encoding="utf-8").replace(
        "department: enforcement,", "department: nobody,", 1
    )
    with pytest.raises(PolicyError, match="nobody"):
        parse_case_policy(text)


def test_joining_table_of_the_packaged_policy() -> None:
    policy = load_case_policy()
    (contactor,) = policy.join_lookups(AlarmType.CONTACTOR_ANOMALY)
    assert (contactor.scope, contactor.incident) == (JoinScope.SOURCE, "cabinet_outage")
    assert contactor.alarm_types == {
        AlarmType.CABINET_TRIP,
        AlarmType.CIRCUIT_DARK,
        AlarmType.SUPPLY_LOSS,
        AlarmType.CONTACTOR_ANOMALY,
        AlarmType.CABLE_THEFT,
    }
    own, parent = policy.join_lookups(AlarmType.LAMP_OUT)
    assert (own.scope, own.incident, own.alarm_types) == (
        JoinScope.SOURCE,
        RECURRENCE,
        frozenset({AlarmType.LAMP_OUT}),
    )
    assert (parent.scope, parent.incident) == (JoinScope.PARENT, "cabinet_outage")
    assert AlarmType.LAMP_OUT not in parent.alarm_types
    (tilt,) = policy.join_lookups(AlarmType.TILT)
    assert tilt.alarm_types == {AlarmType.TILT, AlarmType.COVER_OPEN}
    (door,) = policy.join_lookups(AlarmType.DOOR_OPEN)
    assert (door.incident, door.alarm_types) == (RECURRENCE, frozenset({AlarmType.DOOR_OPEN}))


def _policy_problem(document: dict[str, object]) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_case_policy(yaml.safe_dump(document, allow_unicode=True))
    return str(caught.value)


def test_joining_table_problems() -> None:
    problem = _policy_problem
    doc = _base_policy()
    doc["joining"] = [
        {"incident": "a", "alarm_types": ["tilt", "cover_open"]},
        {"incident": "b", "alarm_types": ["cover_open"]},
    ]
    assert "cover_open is in both a and b" in problem(doc)
    doc = _base_policy()
    doc["joining"] = [
        {"incident": "a", "alarm_types": ["cabinet_trip"], "member_alarm_types": ["cabinet_trip"]}
    ]
    assert "cannot be both the source's and its members' alarm types" in problem(doc)
    doc = _base_policy()
    doc["joining"] = [{"incident": "a", "alarm_types": []}]
    assert "at least 1 item" in problem(doc)
