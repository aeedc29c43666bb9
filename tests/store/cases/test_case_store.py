"""Cases in a real PostgreSQL: numbers, events, outbox, concurrency, filters, filing, evaluation."""

import threading
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from hub.cases.calendar import Light
from hub.cases.classification import ClassificationError, ClassKind
from hub.cases.evaluation import Grade
from hub.cases.intake import IntakeError, draft_person_case
from hub.cases.routing import FilingOutcome
from hub.cases.workflow import Action, CaseSource, CaseStatus, Role, WorkflowError
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction
from hub.store.alarms import apply_signals, clear_alarm, get_alarm
from hub.store.cases import (
    CaseConflictError,
    CaseFilter,
    IllegalTransitionError,
    RoleRefusedError,
    act_on_case,
    check_clearances,
    evaluate_period,
    file_due_alarms,
    list_case_events,
    list_cases,
    open_case,
)
from hub.store.outbox import OutboxTarget
from tests.store.cases.case_fixtures import (
    GRID,
    T0,
    TO_CLOSED,
    alarm_signal,
    at,
    case_setup,
    hotline_report,
    register_device,
)

pytestmark = pytest.mark.integration

SETUP = case_setup()
WEBHOOK = (OutboxTarget("webhook"),)


def _open(conn: psycopg.Connection[tuple[object, ...]], minutes: float = 0, **fields: Any) -> int:
    record = open_case(
        conn, SETUP, draft_person_case(SETUP, hotline_report(**fields)), at(minutes), WEBHOOK
    )
    return record.id


def test_case_numbers_are_local_date_and_daily_sequence(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        first = open_case(conn, SETUP, draft_person_case(SETUP, hotline_report()), T0)
        second = open_case(conn, SETUP, draft_person_case(SETUP, hotline_report()), at(60))
        # 16:30 UTC is already the 17th in Shanghai.
        next_day = open_case(
            conn, SETUP, draft_person_case(SETUP, hotline_report()), at(15 * 60 + 30)
        )
    assert (first.case_number, second.case_number) == ("202603160001", "202603160002")
    assert next_day.case_number == "202603170001"
    assert first.state.status is CaseStatus.REPORTED
    assert first.state.department == "drainage"  # 01003 storm-water covers
    assert first.evidence["reporter"] == {"phone": "13800000000"}


def test_concurrent_reports_get_distinct_numbers(database_url: str) -> None:
    barrier = threading.Barrier(4)
    numbers: list[str] = []

    def report() -> None:
        with psycopg.connect(database_url) as conn:
            barrier.wait(timeout=10)
            for _ in range(5):
                record = open_case(conn, SETUP, draft_person_case(SETUP, hotline_report()), T0)
                conn.commit()
                numbers.append(record.case_number)

    threads = [threading.Thread(target=report) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == [f"20260316{n:04d}" for n in range(1, 21)]


def test_prefix_and_bad_reports() -> None:
    with pytest.raises(IntakeError, match="needs a location"):
        draft_person_case(SETUP, hotline_report(lat=None, lon=None, grid_code=None))
    with pytest.raises(ClassificationError):
        draft_person_case(SETUP, hotline_report(class_code="09999"))
    # A 2007 alias resolves to its 2026 class.
    assert draft_person_case(SETUP, hotline_report(class_code="0103")).case_class.code == "01003"


def test_actions_record_events_and_outbox_rows_in_order(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        case_id = _open(conn)
        for minute, (action, role, payload) in enumerate(TO_CLOSED, start=1):
            record, event = act_on_case(
                conn, SETUP, case_id, action, role, at(minute), payload, targets=WEBHOOK
            )
            assert event.seq == record.state.version
        events = list_case_events(conn, case_id, record.case_number)
        outbox = conn.execute(
            "SELECT seq, event_type, idempotency_key, body FROM outbox ORDER BY id"
        ).fetchall()
    assert record.state.status is CaseStatus.CLOSED
    assert record.milestones is None
    assert [e.action for e in events] == [Action.REPORT, *(s[0] for s in TO_CLOSED)]
    assert [e.seq for e in events] == list(range(1, 9))
    assert events[2].payload == {"department": "drainage"}
    assert [r[0] for r in outbox] == list(range(1, 9))
    assert outbox[0][1] == "case.report"
    assert outbox[-1][1] == "case.close"
    assert outbox[0][2] == f"webhook:{record.case_number}:1"
    assert outbox[0][3]["evidence"]["reporter"] == {"phone": "13800000000"}
    assert outbox[-1][3]["case"]["status"] == "closed"


def test_refusals_name_what_is_allowed(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        case_id = _open(conn)
        with pytest.raises(
            IllegalTransitionError, match="it is reported; allowed from reported: request_check"
        ):
            act_on_case(conn, SETUP, case_id, Action.DISPATCH, Role.DISPATCHER, at(1))
        with pytest.raises(RoleRefusedError, match="register from reported is for"):
            act_on_case(conn, SETUP, case_id, Action.REGISTER, Role.DEPARTMENT, at(1))
        with pytest.raises(WorkflowError, match="needs payload 'note'"):
            act_on_case(conn, SETUP, case_id, Action.REJECT, Role.INTAKE_OPERATOR, at(1))
        with pytest.raises(CaseConflictError, match="version 1, not 5"):
            act_on_case(
                conn,
                SETUP,
                case_id,
                Action.REGISTER,
                Role.INTAKE_OPERATOR,
                at(1),
                expected_version=5,
            )


def test_concurrent_actions_on_one_version_let_one_win(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        case_id = _open(conn)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def register() -> None:
        with psycopg.connect(database_url) as conn:
            barrier.wait(timeout=10)
            try:
                act_on_case(
                    conn,
                    SETUP,
                    case_id,
                    Action.REGISTER,
                    Role.INTAKE_OPERATOR,
                    at(1),
                    expected_version=1,
                )
                conn.commit()
                outcomes.append("ok")
            except (CaseConflictError, IllegalTransitionError):
                outcomes.append("refused")

    threads = [threading.Thread(target=register) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM case_events").fetchone() == (2,)


def test_list_filters(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        storm = _open(conn)
        lamp = _open(conn, class_code="01037", description="路灯不亮")
        other_area = _open(conn, grid_code="320105001002003")
        act_on_case(conn, SETUP, lamp, Action.REGISTER, Role.INTAKE_OPERATOR, at(1))

        def ids(query: CaseFilter, minutes: float = 30) -> set[int]:
            return {r.id for r in list_cases(conn, query, at(minutes))}

        assert ids(CaseFilter(statuses=[CaseStatus.REGISTERED])) == {lamp}
        assert ids(CaseFilter(class_code="01037")) == {lamp}
        assert ids(CaseFilter(department="street_lighting")) == {lamp}
        assert ids(CaseFilter(area="320102")) == {storm, lamp}
        assert ids(CaseFilter(area="320105001")) == {other_area}
        assert ids(CaseFilter(source=CaseSource.HOTLINE)) == {storm, lamp, other_area}
        # Each stage takes 1 working hour: yellow from 48 min into it, red after 60.
        assert ids(CaseFilter(overdue=True), 30) == set()
        assert ids(CaseFilter(light=Light.GREEN), 30) == {storm, lamp, other_area}
        assert ids(CaseFilter(light=Light.YELLOW), 48.5) == {storm, other_area}
        assert ids(CaseFilter(light=Light.YELLOW), 50) == {storm, lamp, other_area}
        assert ids(CaseFilter(overdue=True), 61) == {storm, other_area}
        assert ids(CaseFilter(overdue=False), 61) == {lamp}
        assert ids(CaseFilter(light=Light.RED), 61) == {storm, other_area}
        # Over lunch (12:00-13:30) the clock stands still.
        assert ids(CaseFilter(overdue=True), 0) == set()


def test_alarm_files_a_dispatched_case_with_evidence(database_url: str) -> None:
    register_device(database_url, "mh-1", class_code="01003")
    with psycopg.connect(database_url) as conn:
        # A displaced cover on a main road: the rule raises it critical, policy makes it urgent.
        apply_signals(conn, [alarm_signal(SignalAction.RAISE, T0, severity=Severity.CRITICAL)], T0)
        (filed,) = file_due_alarms(conn, SETUP, at(1), WEBHOOK)
        alarm = get_alarm(conn, filed.alarm_id)
        assert filed.case is not None
        events = list_case_events(conn, filed.case.id, filed.case.case_number)
        # Nothing more is due.
        assert file_due_alarms(conn, SETUP, at(2), WEBHOOK) == []
    case = filed.case
    assert filed.outcome is FilingOutcome.FILE
    assert alarm is not None
    assert alarm.case_id == case.id
    assert case.state.class_kind is ClassKind.MATTER
    assert case.state.class_code == "01003"
    assert case.state.department == "drainage"
    assert case.state.urgency.value == "urgent"
    assert case.state.grid_code == GRID
    assert case.state.status is CaseStatus.DISPATCHED
    assert case.state.alarm_id == str(alarm.id)
    assert case.description == "井盖移位、倾斜（mh-1 北京东路）"
    assert [e.action for e in events] == [Action.REPORT, Action.REGISTER, Action.DISPATCH]
    assert {e.actor_role for e in events} == {Role.SYSTEM}
    assert case.evidence["alarm"]["alarm_type"] == "tilt"
    assert case.evidence["readings"][0]["values"] == {"tilt_deg": 17.5}
    assert case.evidence["device"]["device_id"] == "mh-1"
    assert case.evidence["location"] == {
        "lat": 32.05,
        "lon": 118.78,
        "grid_code": GRID,
        "source": "registry",
    }
    # Urgent manhole covers: repaired within 6 absolute hours of dispatch.
    assert case.milestones is not None
    assert case.milestones.due_at == at(1) + timedelta(hours=6)


def test_after_duration_policy_waits_then_files(database_url: str) -> None:
    register_device(database_url, "lamp-1", kind="lighting", class_code="01037")
    with psycopg.connect(database_url) as conn:
        apply_signals(
            conn,
            [
                alarm_signal(
                    SignalAction.RAISE, T0, source_id="lamp-1", alarm_type=AlarmType.LAMP_OUT
                )
            ],
            T0,
        )
        (waiting,) = file_due_alarms(conn, SETUP, at(1))
        assert waiting.outcome is FilingOutcome.WAIT
        assert file_due_alarms(conn, SETUP, at(29)) == []
        (filed,) = file_due_alarms(conn, SETUP, at(30))
    assert filed.case is not None
    assert filed.case.state.department == "street_lighting"
    assert filed.case.state.class_code == "01037"


def test_never_filed_and_unfileable_alarms_are_decided_once(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        apply_signals(
            conn,
            [
                alarm_signal(SignalAction.RAISE, T0, alarm_type=AlarmType.OFFLINE),
                # A truck matter class needs no device class; a tilt without one falls back.
                alarm_signal(SignalAction.RAISE, T0, source_id="ghost", alarm_type=AlarmType.TILT),
            ],
            T0,
        )
        outcomes = {f.alarm_id: f for f in file_due_alarms(conn, SETUP, at(1))}
        assert file_due_alarms(conn, SETUP, at(60)) == []
    assert sorted(f.outcome for f in outcomes.values()) == [FilingOutcome.FILE, FilingOutcome.SKIP]
    filed = next(f for f in outcomes.values() if f.case is not None)
    assert filed.case is not None
    assert filed.case.state.class_code == "01023"
    assert filed.case.state.grid_code is None


def test_a_batch_of_due_alarms_of_every_outcome(database_url: str) -> None:
    """One batch of due alarms, decided together: a never-filed storm (every truck's
    `no_permit`), alarms waiting for their duration, one cleared before it was due, and
    a displaced cover's two alarms filed at once (the second joins the first's case)."""
    trucks = [f"truck-{i}" for i in range(60)]
    lamps = [f"lamp-{i}" for i in range(5)]
    for device_id in lamps:
        register_device(database_url, device_id, kind="lighting", class_code="01037")
    register_device(database_url, "mh-1")
    signals = [
        alarm_signal(SignalAction.RAISE, T0, source_id=t, alarm_type=AlarmType.NO_PERMIT)
        for t in trucks
    ]
    signals += [
        alarm_signal(SignalAction.RAISE, T0, source_id=lamp, alarm_type=AlarmType.LAMP_OUT)
        for lamp in lamps
    ]
    signals += [
        alarm_signal(SignalAction.RAISE, T0, alarm_type=AlarmType.TILT),
        alarm_signal(SignalAction.RAISE, T0, alarm_type=AlarmType.COVER_OPEN),
        alarm_signal(SignalAction.CLEAR, at(5), source_id="lamp-0", alarm_type=AlarmType.LAMP_OUT),
    ]
    with psycopg.connect(database_url) as conn:
        apply_signals(conn, signals, T0)
        decided = file_due_alarms(conn, SETUP, at(10), limit=500)
        assert file_due_alarms(conn, SETUP, at(29), limit=500) == []
        rows = conn.execute("SELECT source_id, alarm_type, filing_due_at FROM alarms").fetchall()
        later = file_due_alarms(conn, SETUP, at(30), limit=500)
    due = {(str(source_id), str(alarm_type)): due_at for source_id, alarm_type, due_at in rows}
    outcomes = [f.outcome for f in decided]
    assert len(decided) == len(trucks) + len(lamps) + 2
    assert outcomes.count(FilingOutcome.SKIP) == len(trucks)
    assert outcomes.count(FilingOutcome.WAIT) == len(lamps)
    tilt, cover_open = (f for f in decided if f.outcome is FilingOutcome.FILE)
    assert tilt.case is not None
    assert cover_open.case is not None
    assert cover_open.reason == "joined the open displaced_cover case"
    assert cover_open.case.id == tilt.case.id
    # Never-filed and cleared-too-soon alarms are decided for good; the others wait 30 min.
    assert {due[(t, "no_permit")] for t in trucks} == {None}
    assert due[("lamp-0", "lamp_out")] is None
    assert {due[(lamp, "lamp_out")] for lamp in lamps[1:]} == {at(30)}
    assert [f.outcome for f in later] == [FilingOutcome.FILE] * (len(lamps) - 1)


def test_recurrence_and_clearance_go_to_the_open_case(database_url: str) -> None:
    register_device(database_url, "mh-1")
    stay = timedelta(minutes=15)
    with psycopg.connect(database_url) as conn:
        apply_signals(conn, [alarm_signal(SignalAction.RAISE, T0)], T0)
        (first,) = file_due_alarms(conn, SETUP, at(1))
        assert first.case is not None
        case_id = first.case.id
        # Cleared, back within the stay-clear window: not verification evidence.
        apply_signals(conn, [alarm_signal(SignalAction.CLEAR, at(5))], at(5))
        apply_signals(conn, [alarm_signal(SignalAction.RAISE, at(10))], at(10))
        (again,) = file_due_alarms(conn, SETUP, at(10))
        assert again.case is not None
        assert again.case.id == case_id
        (recurred,) = check_clearances(conn, SETUP, at(30), stay)
        assert (recurred.stayed_clear, recurred.attached) == (False, False)
        # Cleared for good: attached once it has stayed clear for 15 minutes.
        apply_signals(conn, [alarm_signal(SignalAction.CLEAR, at(40))], at(40))
        assert check_clearances(conn, SETUP, at(50), stay) == []
        (checked,) = check_clearances(conn, SETUP, at(56), stay)
        assert check_clearances(conn, SETUP, at(90), stay) == []
        events = list_case_events(conn, case_id, first.case.case_number)
        status = conn.execute(
            "SELECT status, evidence FROM cases WHERE id = %s", (case_id,)
        ).fetchone()
    assert (checked.stayed_clear, checked.attached) == (True, True)
    assert [e.action for e in events][-2:] == [Action.ATTACH_EVIDENCE, Action.ATTACH_EVIDENCE]
    assert "raised again" in str(events[-2].payload["evidence"])
    assert "stayed clear for 15 min" in str(events[-1].payload["evidence"])
    assert status is not None
    assert status[0] == "dispatched"  # closing stays a person's decision
    assert len(status[1]["attachments"]) == 2


def test_a_clear_by_a_person_is_not_evidence(database_url: str) -> None:
    register_device(database_url, "mh-1")
    with psycopg.connect(database_url) as conn:
        (raised,) = apply_signals(conn, [alarm_signal(SignalAction.RAISE, T0)], T0)
        file_due_alarms(conn, SETUP, at(1))
        clear_alarm(conn, raised.alarm.id, "li.na", at(2))
        (checked,) = check_clearances(conn, SETUP, at(60), timedelta(minutes=15))
    assert (checked.stayed_clear, checked.attached) == (False, False)
    assert "li.na" in checked.reason


def test_evaluation_figures_per_department(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        closed = _open(conn)
        for minute, (action, role, payload) in enumerate(TO_CLOSED, start=1):
            act_on_case(conn, SETUP, closed, action, role, at(minute), payload)
        reworked = _open(conn, 10)
        for minute, (action, role, payload) in enumerate(TO_CLOSED[:5], start=11):
            act_on_case(conn, SETUP, reworked, action, role, at(minute), payload)
        act_on_case(
            conn,
            SETUP,
            reworked,
            Action.VERIFY_FAIL,
            Role.INSPECTOR,
            at(20),
            {"note": "still broken"},
        )
        overdue = _open(conn, 30)
        for minute, (action, role, payload) in enumerate(TO_CLOSED[:2], start=31):
            act_on_case(conn, SETUP, overdue, action, role, at(minute), payload)
        scores = evaluate_period(
            conn, SETUP, T0 - timedelta(days=1), T0 + timedelta(days=1), T0 + timedelta(days=10)
        )
    drainage = scores["drainage"].figures
    assert drainage.registered == 3
    assert drainage.closed == 1
    assert drainage.overdue_open == 2  # the reworked and the never-handled case
    assert drainage.due == 3
    assert drainage.reworked == 1
    assert drainage.handled == 2  # feedback counts until the rework is dispatched again
    assert drainage.overdue_unhandled == 1
    assert scores["drainage"].grade in set(Grade)
