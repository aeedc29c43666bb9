"""Issue 18 in a real PostgreSQL: an urgent alarm joining an open case makes the case urgent
(its deadline shortens), and a truck's case names the street from the city's streets layer."""

from dataclasses import replace

import psycopg
import pytest
from psycopg.types.json import Jsonb

from hub.cases.calendar import Urgency
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction
from hub.store.alarms import apply_signals
from hub.store.cases import file_due_alarms, get_case, list_case_events
from tests.cases.test_case_streets_and_uploads import STREETS
from tests.store.cases.case_fixtures import T0, alarm_signal, at, case_setup, register_device

pytestmark = pytest.mark.integration

SETUP = case_setup()


def test_an_urgent_alarm_joining_makes_the_case_urgent(database_url: str) -> None:
    register_device(database_url, "mh-1")
    with psycopg.connect(database_url) as conn:
        apply_signals(conn, [alarm_signal(SignalAction.RAISE, T0)], T0)  # tilt, major: normal
        (tilt,) = file_due_alarms(conn, SETUP, at(1))
        assert tilt.case is not None
        assert tilt.case.state.urgency is Urgency.NORMAL
        normal_due = tilt.case.milestones.due_at if tilt.case.milestones else None
        cover_open = alarm_signal(
            SignalAction.RAISE, at(2), alarm_type=AlarmType.COVER_OPEN, severity=Severity.CRITICAL
        )
        apply_signals(conn, [cover_open], at(2))
        (joined,) = file_due_alarms(conn, SETUP, at(3))
        assert joined.case is not None
        assert joined.case.id == tilt.case.id  # one incident, one case
        case = get_case(conn, tilt.case.id)
        assert case is not None
        events = list_case_events(conn, case.id, case.case_number)
    assert case.state.urgency is Urgency.URGENT
    assert case.milestones is not None
    assert normal_due is not None
    assert case.milestones.due_at is not None
    assert case.milestones.due_at < normal_due  # urgent: the shorter limit
    last = events[-1]
    assert last.payload["raise_urgency"] is True
    assert "the case is now urgent" in last.note


def test_a_dumping_case_names_the_street_of_the_layer(database_url: str) -> None:
    register_device(database_url, "TRK-1", kind="truck", class_code=None)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO city_layers (name, geojson) VALUES ('streets', %s)", (Jsonb(STREETS),)
        )
        dumping = replace(
            alarm_signal(
                SignalAction.RAISE, T0, source_id="TRK-1", alarm_type=AlarmType.ILLEGAL_DUMPING
            ),
            details={"stop": {"lat": 32.3004, "lon": 118.75}},
        )
        apply_signals(conn, [dumping], T0)
        (filed,) = file_due_alarms(conn, SETUP, at(1))
    assert filed.case is not None
    assert filed.case.address is not None
    assert filed.case.address.startswith("北京东路（约 4")  # 0.0004° of latitude: about 44 m
    assert filed.case.evidence["road"]["street_id"] == "ST-EW-001"
    assert (filed.case.lat, filed.case.lon) == (32.3004, 118.75)
