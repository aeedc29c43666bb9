"""A lighting fault whose case is dispatched reaches the crew stream as an `assigned` alert,
once, with the department it went to (real PostgreSQL)."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from hub.rules.alarm_changes import AlarmRecord
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.crew_alerts import CaseAssignment, CrewAlertFanout
from hub.rules.signals import AlarmSignal, SignalAction, SourceKind
from hub.services.lighting import CrewAlertPublisher, LightingControl
from hub.store.alarms import apply_signals
from hub.store.database import Database
from tests.services.test_lighting_command_effect import OBEYS, register

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 19, 13, 0, tzinfo=UTC)


def test_a_dispatched_case_is_announced_once_as_assigned(database_url: str) -> None:
    register(database_url)
    with psycopg.connect(database_url) as conn:
        (change,) = apply_signals(
            conn,
            [
                AlarmSignal(
                    SignalAction.RAISE,
                    SourceKind.DEVICE,
                    OBEYS,
                    AlarmType.LAMP_OUT,
                    Severity.MAJOR,
                    T0,
                    "lamp out",
                    1,
                )
            ],
            T0,
        )
        row = conn.execute(
            "INSERT INTO cases (case_number, source, class_kind, class_code, urgency, status,"
            " state, version, reported_at, updated_at, alarm_id, device_id)"
            " VALUES ('20261119-0001', 'sensor', 'component', '01037', 'normal', 'registered',"
            " %s, 1, %s, %s, %s, %s) RETURNING id",
            (Jsonb({}), T0, T0, change.alarm.id, OBEYS),
        ).fetchone()
        assert row is not None
        case_id = int(row[0])
        conn.execute("UPDATE alarms SET case_id = %s WHERE id = %s", (case_id, change.alarm.id))
    heard: list[tuple[AlarmRecord, CaseAssignment]] = []

    def collect(found: Sequence[tuple[AlarmRecord, CaseAssignment]]) -> None:
        heard.extend(found)

    db = Database(database_url, max_size=2)
    db.open()
    try:
        hub_with = LightingControl(
            db,
            root="city",
            publish=lambda topic, body: True,
            zone=ZoneInfo("Asia/Shanghai"),
            ack_timeout=timedelta(seconds=30),
            ttl=timedelta(hours=1),
            max_attempts=3,
            on_assignments=collect,
        )
        assert hub_with.announce_assignments(T0) == 0  # the first pass only sets the mark
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE cases SET status = 'dispatched', department = '路灯管理所',"
                " dispatched_at = %s WHERE id = %s",
                (T0 + timedelta(minutes=1), case_id),
            )
        assert hub_with.announce_assignments(T0 + timedelta(minutes=2)) == 1
        assert hub_with.announce_assignments(T0 + timedelta(minutes=3)) == 0  # once
    finally:
        db.close()
    ((alarm, assignment),) = heard
    assert (alarm.source_id, alarm.alarm_type) == (OBEYS, AlarmType.LAMP_OUT)
    assert (assignment.case_id, assignment.department, assignment.status) == (
        case_id,
        "路灯管理所",
        "dispatched",
    )
    fanout = CrewAlertFanout(epoch="t")
    sent: list[str] = []

    def publish(topic: str, body: bytes) -> bool:
        sent.append(topic)
        return True

    publisher = CrewAlertPublisher(
        root="city", locate=lambda device_id: None, publish=publish, fanout=fanout
    )
    publisher.publish_assignments(heard)
    ((document,), complete) = fanout.after("t-0")
    assert complete
    assert document["alert"] == "assigned"
    assert document["event_id"] == "t-1"
    assert document["assignment"] == {
        "case_id": case_id,
        "case_number": "20261119-0001",
        "status": "dispatched",
        "department": "路灯管理所",
        "dispatched_at": (T0 + timedelta(minutes=1)).isoformat(),
    }
    assert sent == [f"city/alerts/lighting/{OBEYS}/lamp_out"]
