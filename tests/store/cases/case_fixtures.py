"""Shared values for the case store, API and forwarder tests."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from hub.cases.calendar import load_calendar
from hub.cases.classification import load_classification
from hub.cases.intake import CaseSetup, PersonReport
from hub.cases.routing import CasePolicy, load_case_policy, parse_case_policy
from hub.cases.workflow import Action, CaseSource, Payload, Role
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import AlarmSignal, EvidenceSnapshot, SignalAction, SourceKind

T0 = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
GRID = "320102001002003"
POLICY_PATH = Path(__file__).resolve().parents[3] / "hub" / "cases" / "policy.yaml"


def at(minutes: float) -> datetime:
    """T0 plus minutes."""
    return T0 + timedelta(minutes=minutes)


def case_setup(policy: CasePolicy | None = None, prefix: str = "") -> CaseSetup:
    """The packaged classification and calendar with a policy (the packaged one by default)."""
    return CaseSetup(
        policy=policy or load_case_policy(),
        classes=load_classification(),
        calendar=load_calendar(),
        number_prefix=prefix,
    )


def policy_filing_offline_at_once() -> str:
    """The packaged policy text, with offline alarms filed at once and dispatched by policy."""
    text = POLICY_PATH.read_text("utf-8")
    return text.replace(
        "  offline: {mode: never}",
        "  offline: {mode: at_once, class_from_device: true, class_code: '01023',"
        " description: 设备离线, auto_register: true, auto_dispatch: true}",
    )


def offline_filing_setup() -> CaseSetup:
    """A setup whose policy files offline alarms at once."""
    return case_setup(parse_case_policy(policy_filing_offline_at_once()))


def hotline_report(class_code: str = "01003", **fields: object) -> PersonReport:
    """A 12319 hotline report of a storm-water cover problem at a known grid."""
    values: dict[str, object] = {
        "source": CaseSource.HOTLINE,
        "class_code": class_code,
        "actor_role": Role.INTAKE_OPERATOR,
        "description": "雨水井盖破损",
        "lat": 32.05,
        "lon": 118.78,
        "grid_code": GRID,
        "actor_id": "op-7",
        "reporter": {"phone": "13800000000"},
    }
    values.update(fields)
    return PersonReport(**values)  # type: ignore[arg-type]


def register_device(
    database_url: str,
    device_id: str,
    kind: str = "manhole",
    class_code: str | None = "01003",
    attributes: str = "{}",
    parent_id: str | None = None,
) -> None:
    """Insert a device at the test grid."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, name, lat, lon, grid_code, class_code,"
            " attributes, parent_id) VALUES (%s, %s, %s, 32.05, 118.78, %s, %s, %s::jsonb, %s)",
            (device_id, kind, f"{device_id} 北京东路", GRID, class_code, attributes, parent_id),
        )


def alarm_signal(
    action: SignalAction,
    at_time: datetime,
    *,
    source_id: str = "mh-1",
    alarm_type: AlarmType = AlarmType.TILT,
    severity: Severity = Severity.MAJOR,
    source_kind: SourceKind = SourceKind.DEVICE,
) -> AlarmSignal:
    """A signal of a device (or group) alarm with one evidence reading."""
    return AlarmSignal(
        action=action,
        source_kind=source_kind,
        source_id=source_id,
        alarm_type=alarm_type,
        severity=severity,
        at=at_time,
        message=f"{alarm_type} on {source_id}",
        count=1,
        evidence=(EvidenceSnapshot(at_time, source_id, {"tilt_deg": 17.5}),),
    )


Step = tuple[Action, Role, Payload]

TO_CLOSED: tuple[Step, ...] = (
    (Action.REGISTER, Role.INTAKE_OPERATOR, {}),
    (Action.DISPATCH, Role.DISPATCHER, {"department": "drainage"}),
    (Action.ACCEPT, Role.DEPARTMENT, {}),
    (Action.FEEDBACK, Role.DEPARTMENT, {"note": "cover replaced"}),
    (Action.SEND_FOR_VERIFICATION, Role.INTAKE_OPERATOR, {}),
    (Action.VERIFY_PASS, Role.INSPECTOR, {}),
    (Action.CLOSE, Role.SHIFT_LEADER, {}),
)
"""A case's path from reported to closed."""
