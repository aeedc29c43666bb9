"""One incident, one case: the policy's joining table applied to alarms in a real PostgreSQL."""

import json

import psycopg
import pytest

from hub.cases.routing import FilingOutcome
from hub.cases.workflow import Action
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction, SourceKind
from hub.store.alarms import apply_signals
from hub.store.cases import file_due_alarms, list_case_events
from tests.store.cases.case_fixtures import alarm_signal, at, case_setup, register_device

pytestmark = pytest.mark.integration

SETUP = case_setup()
CABINET = "CAB-00001"


def _cabinet_with_lamps(database_url: str) -> None:
    register_device(database_url, CABINET, kind="cabinet", class_code="01060")
    for n in (1, 2):
        register_device(
            database_url, f"LMP-{n}", kind="lighting", class_code="01037", parent_id=CABINET
        )
    register_device(database_url, "LMP-9", kind="lighting", class_code="01037")


def _raise(
    conn: psycopg.Connection[tuple[object, ...]],
    minutes: float,
    source_id: str,
    alarm_type: AlarmType,
    source_kind: SourceKind = SourceKind.DEVICE,
) -> None:
    signal = alarm_signal(
        SignalAction.RAISE,
        at(minutes),
        source_id=source_id,
        alarm_type=alarm_type,
        severity=Severity.MAJOR,
        source_kind=source_kind,
    )
    apply_signals(conn, [signal], at(minutes))


def test_a_cabinet_dark_at_night_is_one_case(database_url: str) -> None:
    _cabinet_with_lamps(database_url)
    with psycopg.connect(database_url) as conn:
        # The contactor opens at night: the lamp group trips and the cabinet reports it.
        _raise(conn, 0, CABINET, AlarmType.CABINET_TRIP, SourceKind.GROUP)
        _raise(conn, 0, CABINET, AlarmType.CONTACTOR_ANOMALY)
        _raise(conn, 1, CABINET, AlarmType.SUPPLY_LOSS)
        trip, contactor, supply = file_due_alarms(conn, SETUP, at(1))
        assert trip.case is not None
        assert (trip.reason, contactor.outcome) == (
            "policy files cabinet_trip alarms",
            FilingOutcome.WAIT,
        )
        assert supply.reason == "joined the open cabinet_outage case"
        # contactor_anomaly is filed after 15 min; member lamps' lamp_out after 30 min.
        _raise(conn, 2, "LMP-1", AlarmType.LAMP_OUT)
        _raise(conn, 2, "LMP-9", AlarmType.LAMP_OUT)  # not on this cabinet: its own case
        filed = file_due_alarms(conn, SETUP, at(45))
        cases = conn.execute(
            "SELECT c.id, c.class_code, array_agg(a.alarm_type ORDER BY a.alarm_type)"
            " FROM cases c JOIN alarms a ON a.case_id = c.id GROUP BY c.id ORDER BY c.id"
        ).fetchall()
        events = list_case_events(conn, trip.case.id, trip.case.case_number)
    assert sorted((f.outcome, f.reason) for f in filed) == [
        (FilingOutcome.FILE, "joined the open cabinet_outage case"),
        (FilingOutcome.FILE, "joined the open cabinet_outage case"),
        (FilingOutcome.FILE, "policy files lamp_out alarms"),
    ]
    assert cases == [
        (
            trip.case.id,
            "01060",
            ["cabinet_trip", "contactor_anomaly", "lamp_out", "supply_loss"],
        ),
        (cases[1][0], "01037", ["lamp_out"]),
    ]
    joined = [e for e in events if e.action is Action.ATTACH_EVIDENCE]
    assert sorted(str(e.payload["alarm_type"]) for e in joined) == [
        "contactor_anomaly",
        "lamp_out",
        "supply_loss",
    ]
    (lamp,) = [e.payload for e in joined if e.payload["alarm_type"] == "lamp_out"]
    assert lamp["evidence"] == (
        f"lamp_out alarm {lamp['alarm_id']} of LMP-1 joins the cabinet_outage case of {CABINET}"
    )
    assert lamp["source_id"] == "LMP-1"
    readings = json.loads(str(lamp["readings"]))
    assert readings[0]["device_id"] == "LMP-1"


def test_a_member_alarm_before_the_cabinet_case_is_filed_on_its_own(database_url: str) -> None:
    _cabinet_with_lamps(database_url)
    with psycopg.connect(database_url) as conn:
        _raise(conn, 0, "LMP-2", AlarmType.LAMP_OUT)
        (lamp,) = file_due_alarms(conn, SETUP, at(30))
        # A later trip is not folded into a single lamp's case: it opens the cabinet's.
        _raise(conn, 40, CABINET, AlarmType.CABINET_TRIP, SourceKind.GROUP)
        (trip,) = file_due_alarms(conn, SETUP, at(41))
        # The door is its own fault, not part of the outage.
        _raise(conn, 42, CABINET, AlarmType.DOOR_OPEN)
        (door,) = file_due_alarms(conn, SETUP, at(80))
    assert lamp.case is not None
    assert trip.case is not None
    assert door.case is not None
    assert len({lamp.case.id, trip.case.id, door.case.id}) == 3
    assert trip.reason == "policy files cabinet_trip alarms"
    assert door.reason == "policy files door_open alarms"


def test_filing_delays_are_judged_in_event_time(database_url: str) -> None:
    register_device(database_url, "LMP-5", kind="lighting", class_code="01037")
    register_device(database_url, "LMP-6", kind="lighting", class_code="01037")
    register_device(database_url, "LMP-7", kind="lighting", class_code="01037")
    wall = at(24 * 60)  # a backlog judged a day after its readings were taken
    with psycopg.connect(database_url) as conn:
        # All three lamps go out at minute 0; lamp_out is filed after 30 min active.
        for lamp in ("LMP-5", "LMP-6", "LMP-7"):
            _raise(conn, 0, lamp, AlarmType.LAMP_OUT)
        clears = [
            alarm_signal(
                SignalAction.CLEAR, at(10), source_id="LMP-5", alarm_type=AlarmType.LAMP_OUT
            ),
            alarm_signal(
                SignalAction.CLEAR, at(40), source_id="LMP-6", alarm_type=AlarmType.LAMP_OUT
            ),
        ]
        # By event time 20 min nothing is due yet, though the wall clock is a day on.
        first = file_due_alarms(conn, SETUP, wall, event_now=at(20))
        assert {f.outcome for f in first} == {FilingOutcome.WAIT}
        # The backlog's next part clears LMP-5 (10 min: too short) and LMP-6 (40 min:
        # it had held the 30 min before it cleared) and moves the event clock past 45 min.
        apply_signals(conn, clears, wall)
        filed = file_due_alarms(conn, SETUP, wall, event_now=at(45))
        sources = conn.execute(
            "SELECT a.source_id, c.reported_at FROM alarms a JOIN cases c ON c.id = a.case_id"
            " ORDER BY a.source_id"
        ).fetchall()
    assert [f.outcome for f in filed] == [FilingOutcome.FILE, FilingOutcome.FILE]
    assert [s[0] for s in sources] == ["LMP-6", "LMP-7"]
    assert {s[1] for s in sources} == {wall}  # cases are stamped when the centre gets them
