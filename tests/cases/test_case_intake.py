"""Case drafts from alarms and from people: class, grid, department, evidence."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from hub.cases.calendar import Urgency, load_calendar
from hub.cases.classification import ClassificationError, load_classification
from hub.cases.grid import UnitGridIndex
from hub.cases.intake import (
    CaseSetup,
    IntakeError,
    PersonReport,
    draft_alarm_case,
    draft_person_case,
)
from hub.cases.routing import FilingOutcome, decide_filing, load_case_policy
from hub.cases.workflow import CaseSource, Role
from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.rules.alarm_changes import AlarmRecord, AlarmState
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SourceKind

T0 = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)
GRID_A = "320102001002003"
GRID_B = "320105001002003"
GRIDS = UnitGridIndex(
    [
        (GRID_A, [(118.0, 32.0), (118.5, 32.0), (118.5, 32.5), (118.0, 32.5)]),
        (GRID_B, [(118.5, 32.0), (119.0, 32.0), (119.0, 32.5), (118.5, 32.5)]),
    ]
)
SETUP = CaseSetup(
    policy=load_case_policy(), classes=load_classification(), calendar=load_calendar(), grids=GRIDS
)
ALARM = AlarmRecord(
    id=7,
    source_kind=SourceKind.DEVICE,
    source_id="mh-9",
    alarm_type=AlarmType.COVER_OPEN,
    severity=Severity.CRITICAL,
    state=AlarmState.ACTIVE,
    raised_at=T0,
    last_seen_at=T0,
    count=2,
    message="cover open",
    evidence=({"ts": T0.isoformat(), "device_id": "mh-9", "values": {"cover_open": True}},),
)


def test_alarm_draft_takes_class_grid_and_department() -> None:
    device = DeviceRecord(
        device_id="mh-9", kind=Kind.MANHOLE, lat=32.2, lon=118.7, class_code="01011"
    )
    filed = decide_filing(
        SETUP.policy,
        SETUP.classes,
        alarm_type=ALARM.alarm_type,
        severity=ALARM.severity,
        active_since_at=T0,
        now_at=T0,
        device_class_code="01011",
    )
    assert filed.outcome is FilingOutcome.FILE
    draft = draft_alarm_case(SETUP, filed, ALARM, device)
    assert draft.case_class.code == "01011"  # a gas cover
    assert draft.department == "gas"
    assert draft.grid_code == GRID_B  # located from the point
    assert draft.urgency is Urgency.URGENT
    assert (draft.auto_register, draft.auto_dispatch) == (True, True)
    assert draft.actor_role is Role.SYSTEM
    assert draft.evidence["readings"] == [dict(ALARM.evidence[0])]
    assert draft.evidence["alarm"]["id"] == 7  # type: ignore[index]
    assert draft.evidence["device"]["class_code"] == "01011"  # type: ignore[index]


def test_person_draft() -> None:
    report = PersonReport(
        source=CaseSource.HOTLINE,
        class_code="0118",  # the 2007 code of 路灯
        actor_role=Role.INTAKE_OPERATOR,
        lat=32.1,
        lon=118.1,
        description="路灯不亮",
        reporter={"phone": "12319"},
    )
    draft = draft_person_case(SETUP, report)
    assert draft.case_class.code == "01037"
    assert draft.grid_code == GRID_A
    assert draft.department == "street_lighting"
    assert draft.evidence["reporter"] == {"phone": "12319"}
    with pytest.raises(ClassificationError):
        draft_person_case(SETUP, replace(report, class_code="99998"))
    with pytest.raises(IntakeError, match="both lat and lon"):
        draft_person_case(SETUP, replace(report, lon=None))
    with pytest.raises(IntakeError, match="needs a location"):
        draft_person_case(SETUP, replace(report, lat=None, lon=None))
    outside = draft_person_case(SETUP, replace(report, lat=40.0, lon=116.0))
    assert outside.grid_code is None
    assert outside.department == "street_lighting"
    assert "warning" not in draft.evidence["location"]  # type: ignore[operator]


def test_a_report_without_a_grid_carries_a_warning() -> None:
    report = PersonReport(
        source=CaseSource.OPEN311, class_code="01003", actor_role=Role.SYSTEM, lat=10, lon=10
    )
    located = draft_person_case(SETUP, report).evidence["location"]
    assert isinstance(located, dict)
    assert located["grid_code"] is None
    assert "(10, 10) lies outside the city's unit grids" in located["warning"]
    by_address = draft_person_case(SETUP, replace(report, lat=None, lon=None, address="北京东路"))
    assert "address only" in by_address.evidence["location"]["warning"]  # type: ignore[index]
    no_file = draft_person_case(replace(SETUP, grids=None), report)
    assert "no unit-grid file" in no_file.evidence["location"]["warning"]  # type: ignore[index]


HOME = DeviceRecord(
    device_id="TRK-1",
    kind=Kind.TRUCK,
    lat=32.1,
    lon=118.2,  # the registered home site, in grid A
    grid_code=GRID_A,
    name="苏A12345",
)
DUMPING = AlarmRecord(
    id=11,
    source_kind=SourceKind.DEVICE,
    source_id="TRK-1",
    alarm_type=AlarmType.ILLEGAL_DUMPING,
    severity=Severity.MAJOR,
    state=AlarmState.ACTIVE,
    raised_at=T0,
    last_seen_at=T0,
    count=1,
    message="suspected illegal dumping",
    evidence=(
        {
            "ts": T0.isoformat(),
            "device_id": "TRK-1",
            "values": {"lat": 32.31, "lon": 118.81, "speed_kmh": 0.0, "body_lifted": True},
        },
    ),
    details={
        "stop": {"lat": 32.3, "lon": 118.8},
        "site_id": None,
        "track": [{"ts": T0.isoformat(), "lat": 32.29, "lon": 118.79}],
    },
)


def test_a_dumping_case_is_where_the_truck_unloaded() -> None:
    decision = decide_filing(
        SETUP.policy,
        SETUP.classes,
        alarm_type=AlarmType.ILLEGAL_DUMPING,
        severity=Severity.MAJOR,
        active_since_at=T0,
        now_at=T0,
    )
    draft = draft_alarm_case(SETUP, decision, DUMPING, HOME)
    assert draft.case_class.code == "06011"
    assert (draft.lat, draft.lon) == (32.3, 118.8)  # the stop, not the home site
    assert draft.grid_code == GRID_B  # computed from the stop
    assert draft.department == "enforcement"
    assert draft.evidence["location"] == {
        "lat": 32.3,
        "lon": 118.8,
        "grid_code": GRID_B,
        "source": "event",
    }
    assert draft.evidence["alarm"]["details"]["track"]  # type: ignore[index]


def test_a_truck_case_without_a_stop_uses_the_first_fix_and_never_the_home() -> None:
    decision = decide_filing(
        SETUP.policy,
        SETUP.classes,
        alarm_type=AlarmType.ILLEGAL_DUMPING,
        severity=Severity.MAJOR,
        active_since_at=T0,
        now_at=T0,
    )
    no_stop = replace(DUMPING, details={})
    draft = draft_alarm_case(SETUP, decision, no_stop, HOME)
    assert (draft.lat, draft.lon, draft.grid_code) == (32.31, 118.81, GRID_B)
    outside = replace(
        DUMPING,
        details={"stop": {"lat": 40.0, "lon": 116.4}},  # outside every loaded grid
    )
    draft = draft_alarm_case(SETUP, decision, outside, HOME)
    assert (draft.lat, draft.lon, draft.grid_code) == (40.0, 116.4, None)
    nowhere = replace(DUMPING, details={}, evidence=())
    draft = draft_alarm_case(SETUP, decision, nowhere, HOME)
    assert (draft.lat, draft.lon, draft.grid_code) == (None, None, None)
    assert draft.evidence["location"]["source"] == "unknown"  # type: ignore[index]
    without_grids = replace(SETUP, grids=None)
    draft = draft_alarm_case(without_grids, decision, DUMPING, HOME)
    assert (draft.lat, draft.lon, draft.grid_code) == (32.3, 118.8, None)
