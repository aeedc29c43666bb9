"""The published shape of alarm changes and their MQTT topic."""

from datetime import UTC, datetime

import orjson

from hub.rules.alarm_changes import (
    AlarmChange,
    AlarmChangeKind,
    AlarmRecord,
    AlarmState,
    alarm_change_document,
    alarm_topic,
)
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SourceKind

T0 = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)


def test_document_and_topic() -> None:
    alarm = AlarmRecord(
        id=3,
        source_kind=SourceKind.GROUP,
        source_id="cab-12",
        alarm_type=AlarmType.CIRCUIT_DARK,
        severity=Severity.CRITICAL,
        state=AlarmState.ACTIVE,
        raised_at=T0,
        last_seen_at=T0,
        count=1,
        message="9 of 10 lamps dark",
        details={"dark": 9},
    )
    assert alarm_topic("city", alarm) == "city/alarms/group/cab-12/circuit_dark"
    document = alarm_change_document(AlarmChange(AlarmChangeKind.RAISED, alarm))
    assert orjson.loads(orjson.dumps(document)) == document
    assert document["change"] == "raised"
    body = document["alarm"]
    assert isinstance(body, dict)
    assert body["raised_at"] == "2026-03-16T01:00:00+00:00"
    assert body["cleared_at"] is None
    assert body["details"] == {"dark": 9}
    assert alarm.is_open
