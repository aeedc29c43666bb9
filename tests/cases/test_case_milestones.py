"""Stage milestones agree with the stage clock's light at every instant, pauses included."""

from datetime import UTC, datetime, timedelta

from hub.cases.calendar import Light, load_calendar
from hub.cases.classification import ClassKind
from hub.cases.evaluation import current_stage_clock
from hub.cases.milestones import evaluate_stage_milestones
from hub.cases.routing import load_case_policy
from hub.cases.workflow import Action, CaseSource, CaseState, Role, apply_action, report_case

T0 = datetime(2026, 3, 13, 7, 0, tzinfo=UTC)  # Friday 15:00 in Shanghai
CALENDAR = load_calendar()
DEADLINES = load_case_policy().deadlines


def dispatched() -> CaseState:
    state, _ = report_case(
        case_id="c1",
        source=CaseSource.HOTLINE,
        class_kind=ClassKind.MATTER,
        class_code="01037",
        reported_at=T0,
        actor_role=Role.INTAKE_OPERATOR,
    )
    state, _ = apply_action(state, Action.REGISTER, Role.INTAKE_OPERATOR, T0)
    state, _ = apply_action(
        state, Action.DISPATCH, Role.DISPATCHER, T0, {"department": "street_lighting"}
    )
    return state


def assert_lights_agree(state: CaseState, hours: int) -> None:
    marks = evaluate_stage_milestones(state, calendar=CALENDAR, deadlines=DEADLINES)
    assert marks is not None
    for step in range(hours * 4):
        now = T0 + timedelta(minutes=15 * step)
        clock = current_stage_clock(state, now_at=now, calendar=CALENDAR, deadlines=DEADLINES)
        assert clock is not None
        assert marks.light_at(now) is clock.light, now
        if marks.due_at is not None:
            assert marks.due_at == clock.due_at


def test_handling_over_a_weekend() -> None:
    state = dispatched()
    marks = evaluate_stage_milestones(state, calendar=CALENDAR, deadlines=DEADLINES)
    assert marks is not None
    # Lamps: 3 working days of 7.5 h from Friday 15:00 → Wednesday 15:00.
    assert marks.due_at == datetime(2026, 3, 18, 7, 0, tzinfo=UTC)
    assert marks.light_at(T0) is Light.GREEN
    assert_lights_agree(state, 24 * 7)


def test_an_open_suspension_stops_the_clock() -> None:
    state = dispatched()
    state, _ = apply_action(state, Action.ACCEPT, Role.DEPARTMENT, T0)
    state, _ = apply_action(
        state, Action.REQUEST_SUSPENSION, Role.DEPARTMENT, T0, {"note": "budget"}
    )
    state, _ = apply_action(
        state, Action.APPROVE_SUSPENSION, Role.DISPATCHER, T0 + timedelta(hours=1)
    )
    marks = evaluate_stage_milestones(state, calendar=CALENDAR, deadlines=DEADLINES)
    assert marks is not None
    assert marks.due_at is None
    assert marks.overdue_at is None
    assert marks.light_at(T0 + timedelta(days=365)) is Light.GREEN


def test_extension_moves_the_deadline() -> None:
    state = dispatched()
    state, _ = apply_action(state, Action.ACCEPT, Role.DEPARTMENT, T0)
    state, _ = apply_action(
        state,
        Action.REQUEST_EXTENSION,
        Role.DEPARTMENT,
        T0,
        {"extension_h": 7.5, "note": "parts"},
    )
    state, _ = apply_action(state, Action.APPROVE_EXTENSION, Role.DISPATCHER, T0)
    marks = evaluate_stage_milestones(state, calendar=CALENDAR, deadlines=DEADLINES)
    assert marks is not None
    assert marks.due_at == datetime(2026, 3, 19, 7, 0, tzinfo=UTC)  # one working day later
    assert_lights_agree(state, 24 * 8)


def test_final_cases_have_none() -> None:
    state, _ = report_case(
        case_id="c2",
        source=CaseSource.HOTLINE,
        class_kind=ClassKind.MATTER,
        class_code="01037",
        reported_at=T0,
        actor_role=Role.INTAKE_OPERATOR,
    )
    state, _ = apply_action(state, Action.REJECT, Role.INTAKE_OPERATOR, T0, {"note": "dup"})
    assert evaluate_stage_milestones(state, calendar=CALENDAR, deadlines=DEADLINES) is None
