"""Pure lighting control and crew alerts: targets, command steps, schedules, register decoding."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.devices.kinds import Kind
from hub.devices.lighting import (
    CommandAction,
    CommandState,
    ControlledDevice,
    OpenCommand,
    Schedule,
    StepKind,
    SunEvent,
    UnknownTargetError,
    decide_command_step,
    expand_target,
    schedule_due,
)
from hub.ingest.modbus import cabinet_payload, decode_cabinet_registers
from hub.rules.alarm_changes import AlarmChange, AlarmChangeKind, AlarmRecord, AlarmState
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.crew_alerts import (
    AlertLocation,
    CrewAlertKind,
    crew_alert_document,
    crew_alert_kind,
    crew_alert_topic,
    fault_since,
    is_lighting_fault,
)
from hub.rules.signals import SourceKind
from simulators.modbus import encode_cabinet_registers

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
DEVICES = [
    ControlledDevice("CAB-1", Kind.CABINET, None, None, None, 31.3, 120.6),
    ControlledDevice("L1", Kind.LIGHTING, "CAB-1", "CAB-1-1", "park", 31.3, 120.6),
    ControlledDevice("L2", Kind.LIGHTING, "CAB-1", "CAB-1-2", None, 31.3, 120.6),
    ControlledDevice("L3", Kind.LIGHTING, "CAB-2", "CAB-2-1", "park", 31.3, 120.6),
]


def ids(devices: list[ControlledDevice]) -> list[str]:
    return [d.device_id for d in devices]


@pytest.mark.parametrize(
    ("target", "action", "expected"),
    [
        ("all", CommandAction.ON, ["L1", "L2", "L3"]),
        ("L2", CommandAction.DIM, ["L2"]),
        ("CAB-1-1", CommandAction.OFF, ["L1"]),
        ("group:park", CommandAction.DIM, ["L1", "L3"]),
        ("CAB-1", CommandAction.OFF, ["CAB-1"]),
        ("CAB-1", CommandAction.DIM, ["L1", "L2"]),
    ],
)
def test_targets_expand_to_lamps_or_the_cabinet_contactor(
    target: str, action: CommandAction, expected: list[str]
) -> None:
    assert ids(expand_target(target, action, DEVICES)) == expected


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(UnknownTargetError):
        expand_target("nowhere", CommandAction.ON, DEVICES)


def command(**changes: object) -> OpenCommand:
    base: dict[str, object] = {
        "command_id": "c1",
        "device_id": "L1",
        "kind": Kind.LIGHTING,
        "action": CommandAction.ON,
        "dim_pct": None,
        "state": CommandState.PENDING,
        "created_at": T0,
        "expires_at": T0 + timedelta(minutes=10),
        "attempts": 0,
        "max_attempts": 3,
        "next_attempt_at": T0,
        "device_online": None,
        "ack_result": None,
        "ack_detail": None,
    }
    base.update(changes)
    return OpenCommand(**base)  # type: ignore[arg-type]


def test_command_is_sent_then_resent_with_doubling_waits_then_fails() -> None:
    timeout = timedelta(seconds=30)
    first = decide_command_step(command(), T0, timeout)
    assert first.kind is StepKind.SEND
    assert first.next_attempt_at == T0 + timedelta(seconds=30)
    second = decide_command_step(
        command(attempts=1, next_attempt_at=first.next_attempt_at), first.next_attempt_at, timeout
    )
    assert second.kind is StepKind.SEND
    assert second.next_attempt_at == first.next_attempt_at + timedelta(seconds=60)
    last = decide_command_step(
        command(attempts=3, next_attempt_at=T0), T0 + timedelta(minutes=5), timeout
    )
    assert last.kind is StepKind.FAILED
    assert "3 attempt" in (last.detail or "")


def test_replies_settle_a_command() -> None:
    timeout = timedelta(seconds=30)
    assert decide_command_step(command(ack_result="ok"), T0, timeout).kind is StepKind.ACKED
    failed = decide_command_step(command(ack_result="rejected", ack_detail="busy"), T0, timeout)
    assert (failed.kind, failed.detail) == (StepKind.FAILED, "rejected: busy")


def test_an_offline_device_waits_within_its_ttl_then_expires() -> None:
    timeout = timedelta(seconds=30)
    offline = command(device_online=False)
    assert decide_command_step(offline, T0 + timedelta(minutes=9), timeout).kind is StepKind.WAIT
    assert decide_command_step(command(device_online=True), T0, timeout).kind is StepKind.SEND
    expired = decide_command_step(offline, T0 + timedelta(minutes=10), timeout)
    assert expired.kind is StepKind.EXPIRED


def schedule(**changes: object) -> Schedule:
    base: dict[str, object] = {
        "schedule_id": 1,
        "name": "midnight dimming",
        "target": "all",
        "action": CommandAction.DIM,
        "params": {"dim_pct": 50},
        "at_local": time(0, 0),
        "sun_event": None,
        "offset_min": 0,
        "enabled": True,
        "last_fired_at": None,
    }
    base.update(changes)
    return Schedule(**base)  # type: ignore[arg-type]


def test_fixed_time_schedule_fires_once_per_night_in_local_time() -> None:
    midnight = datetime(2026, 1, 11, 0, 0, tzinfo=SHANGHAI)
    before = midnight - timedelta(minutes=1)
    after = midnight + timedelta(minutes=2)
    assert schedule_due(schedule(), before, SHANGHAI, 31.3, 120.6) is None
    assert schedule_due(schedule(), after, SHANGHAI, 31.3, 120.6) == midnight
    fired = schedule(last_fired_at=midnight)
    assert schedule_due(fired, after, SHANGHAI, 31.3, 120.6) is None
    stale = midnight + timedelta(hours=2)
    assert schedule_due(schedule(), stale, SHANGHAI, 31.3, 120.6) is None
    assert schedule_due(schedule(enabled=False), after, SHANGHAI, 31.3, 120.6) is None


def test_dusk_schedule_follows_the_sun_with_its_offset() -> None:
    night_on = schedule(
        at_local=None, sun_event=SunEvent.DUSK, offset_min=5, action=CommandAction.ON, params={}
    )
    # Suzhou, 10 January: civil dusk about 17:35 local.
    evening = datetime(2026, 1, 10, 18, 0, tzinfo=SHANGHAI)
    due = schedule_due(night_on, evening, SHANGHAI, 31.3, 120.6)
    assert due is not None
    local = due.astimezone(SHANGHAI)
    assert (local.hour, 30 <= local.minute <= 50) == (17, True)
    assert schedule_due(night_on, evening - timedelta(hours=2), SHANGHAI, 31.3, 120.6) is None


def alarm(**changes: object) -> AlarmRecord:
    base: dict[str, object] = {
        "id": 7,
        "source_kind": SourceKind.GROUP,
        "source_id": "CAB-1",
        "alarm_type": AlarmType.CABINET_TRIP,
        "severity": Severity.MAJOR,
        "state": AlarmState.ACTIVE,
        "raised_at": T0,
        "last_seen_at": T0,
        "count": 1,
        "message": "cabinet CAB-1 tripped: 30 of 30 lamps dark",
        "evidence": ({"ts": "2026-01-10T12:00:00+00:00", "power_w": 0},),
    }
    base.update(changes)
    return AlarmRecord(**base)  # type: ignore[arg-type]


def test_crew_alerts_are_new_escalated_and_cleared() -> None:
    raised = AlarmChange(AlarmChangeKind.RAISED, alarm())
    worse = AlarmChange(AlarmChangeKind.UPDATED, alarm(severity=Severity.CRITICAL))
    same = AlarmChange(AlarmChangeKind.UPDATED, alarm())
    cleared = AlarmChange(AlarmChangeKind.CLEARED, alarm(state=AlarmState.CLEARED))
    assert crew_alert_kind(raised, None) is CrewAlertKind.NEW
    assert crew_alert_kind(worse, Severity.MAJOR) is CrewAlertKind.ESCALATED
    assert crew_alert_kind(same, Severity.MAJOR) is None
    assert crew_alert_kind(cleared, Severity.MAJOR) is CrewAlertKind.CLEARED


def test_a_lasting_fault_is_updated_at_most_every_five_minutes_and_acks_are_pushed() -> None:
    later = AlarmChange(
        AlarmChangeKind.UPDATED, alarm(last_seen_at=T0 + timedelta(minutes=5), count=3)
    )
    assert crew_alert_kind(later, Severity.MAJOR) is CrewAlertKind.UPDATED
    heard = T0 + timedelta(minutes=4)
    assert crew_alert_kind(later, Severity.MAJOR, heard) is None
    acked = AlarmChange(
        AlarmChangeKind.ACKNOWLEDGED,
        alarm(state=AlarmState.ACKNOWLEDGED, acknowledged_by="crew-7", acknowledged_at=T0),
    )
    assert crew_alert_kind(acked, Severity.MAJOR) is CrewAlertKind.ACKNOWLEDGED
    document = crew_alert_document(CrewAlertKind.ACKNOWLEDGED, acked.alarm, None)
    assert (document["alert"], document["state"], document["acknowledged_by"]) == (
        "acknowledged",
        "acknowledged",
        "crew-7",
    )
    updated = crew_alert_document(CrewAlertKind.UPDATED, later.alarm, None)
    assert (updated["last_seen_at"], updated["count"]) == (
        (T0 + timedelta(minutes=5)).isoformat(),
        3,
    )


def test_since_is_when_the_fault_began_not_the_raise() -> None:
    began = T0 - timedelta(minutes=5)
    debounced = alarm(details={"condition_since": began.isoformat()})
    assert fault_since(debounced) == began
    document = crew_alert_document(CrewAlertKind.NEW, debounced, None)
    assert (document["since"], document["raised_at"]) == (began.isoformat(), T0.isoformat())
    assert fault_since(alarm(details={"condition_since": began})) == began
    assert fault_since(alarm(details={"condition_since": "garbage"})) == T0
    assert fault_since(alarm()) == T0


def test_crew_alert_carries_where_what_since_and_evidence() -> None:
    asset = {"fixture_model": "XGN-400", "install_date": "2019-05-01", "rated_power_w": 400}
    where = AlertLocation(Kind.CABINET, 31.3, 120.6, "箱变 1", "320506001001001", None, None, asset)
    document = crew_alert_document(CrewAlertKind.NEW, alarm(), where)
    assert document["alert"] == "new"
    assert document["what"] == "cabinet CAB-1 tripped: 30 of 30 lamps dark"
    assert document["since"] == T0.isoformat()
    assert document["location"] == {
        "kind": "cabinet",
        "lat": 31.3,
        "lon": 120.6,
        "name": "箱变 1",
        "grid_code": "320506001001001",
        "cabinet_id": None,
        "circuit_id": None,
        "asset": asset,
    }
    assert document["assignment"] is None
    assert document["evidence"] == [{"ts": "2026-01-10T12:00:00+00:00", "power_w": 0}]
    assert crew_alert_topic("city", alarm()) == "city/alerts/lighting/CAB-1/cabinet_trip"


def test_only_lighting_faults_reach_crews() -> None:
    assert is_lighting_fault(AlarmType.LAMP_OUT, Kind.LIGHTING)
    assert is_lighting_fault(AlarmType.OFFLINE, Kind.CABINET)
    assert not is_lighting_fault(AlarmType.OFFLINE, Kind.MANHOLE)
    assert not is_lighting_fault(AlarmType.TILT, Kind.MANHOLE)


def test_registers_written_by_the_simulator_decode_to_a_cabinet_payload() -> None:
    body = {
        "ts": 1_768_046_400_000,
        "contactor_on": True,
        "door_open": True,
        "voltage_a_v": 221.3,
        "voltage_b_v": 219.8,
        "voltage_c_v": 220.0,
        "current_a_a": 12.34,
        "current_b_a": 0.0,
        "current_c_a": 11.0,
        "power_w": 70_123,
        "energy_kwh": 12_345.67,
    }
    values = decode_cabinet_registers(encode_cabinet_registers(body))
    payload = cabinet_payload(values, T0)
    assert payload["ts"] == 1_768_046_400_000
    assert payload["door_open"] is True
    assert payload["contactor_on"] is True
    assert payload["voltage_a_v"] == pytest.approx(221.3)
    assert payload["current_a_a"] == pytest.approx(12.34)
    assert payload["power_w"] == 70_123
    assert payload["energy_kwh"] == pytest.approx(12_345.67)


def test_a_short_register_block_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 13 registers"):
        decode_cabinet_registers([0] * 5)
