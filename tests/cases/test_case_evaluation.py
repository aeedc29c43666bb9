"""Tests of the evaluation figures, the bulletin check, composite scores and grades."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.cases.calendar import Light, Stage, load_calendar
from hub.cases.classification import ClassKind
from hub.cases.evaluation import (
    CaseSummary,
    DepartmentFigures,
    EvaluationConfig,
    EvaluationWeights,
    Grade,
    GradeThresholds,
    current_stage_clock,
    evaluate_department,
    evaluate_departments,
    format_percent,
    grade_of,
    score_departments,
    summarize_case,
)
from hub.cases.routing import load_case_policy
from hub.cases.workflow import Action, CaseSource, CaseState, Role, apply_action, report_case

SHANGHAI = ZoneInfo("Asia/Shanghai")
MARCH_AT = datetime(2026, 3, 1, tzinfo=SHANGHAI).astimezone(UTC)
APRIL_AT = datetime(2026, 4, 1, tzinfo=SHANGHAI).astimezone(UTC)
DAY = timedelta(days=1)


def _summary(index: int, **fields: object) -> CaseSummary:
    registered_at = MARCH_AT + timedelta(hours=index % 500)
    base: dict[str, object] = {
        "case_id": f"C{index}",
        "department": "lighting",
        "registered_at": registered_at,
        "dispatched_at": registered_at,
        "handle_due_at": registered_at + 2 * DAY,
        "close_due_at": registered_at + 3 * DAY,
    }
    base.update(fields)
    return CaseSummary(**base)  # type: ignore[arg-type]


def _bulletin_cases() -> list[CaseSummary]:
    cases: list[CaseSummary] = []
    n = 0
    for _ in range(737):  # closed on time
        n += 1
        case = _summary(n)
        cases.append(
            _summary(n, handled_at=case.registered_at + DAY, closed_at=case.registered_at + DAY)
        )
    for _ in range(174):  # closed late
        n += 1
        case = _summary(n)
        cases.append(
            _summary(n, handled_at=case.registered_at + DAY, closed_at=case.registered_at + 4 * DAY)
        )
    for _ in range(61):  # overdue and still open at the cut-off
        n += 1
        cases.append(_summary(n, registered_at=MARCH_AT + DAY))
    for _ in range(20):  # open but not yet due: not counted as due
        n += 1
        cases.append(_summary(n, registered_at=APRIL_AT - DAY, close_due_at=APRIL_AT + 2 * DAY))
    cases.append(_summary(9001, registered_at=MARCH_AT - DAY))  # outside the period
    cases.append(_summary(9002, voided=True))
    cases.append(_summary(9003, department="drainage"))
    return cases


def test_published_bulletin_check() -> None:
    figures = evaluate_department(
        _bulletin_cases(), "lighting", period_start_at=MARCH_AT, period_end_at=APRIL_AT
    )
    assert figures.registered == 992
    assert (figures.closed, figures.overdue_open, figures.due) == (911, 61, 972)
    assert figures.closed_on_time == 737
    assert format_percent(figures.closure_rate) == "93.72%"
    assert format_percent(figures.on_time_closure_rate) == "75.82%"


def test_closed_after_the_cut_off_counts_as_open() -> None:
    case = _summary(1, closed_at=APRIL_AT + DAY, handled_at=APRIL_AT + DAY)
    figures = evaluate_department(
        [case], "lighting", period_start_at=MARCH_AT, period_end_at=APRIL_AT
    )
    assert (figures.closed, figures.overdue_open, figures.handled) == (0, 1, 0)
    later = evaluate_department(
        [case],
        "lighting",
        period_start_at=MARCH_AT,
        period_end_at=APRIL_AT,
        as_of_at=APRIL_AT + 2 * DAY,
    )
    assert (later.closed, later.closed_on_time, later.overdue_open) == (1, 0, 0)


def test_handling_rework_and_extension_rates() -> None:
    cases = [
        _summary(1, handled_at=MARCH_AT + DAY, closed_at=MARCH_AT + DAY, rework_count=1),
        _summary(2, handled_at=MARCH_AT + 3 * DAY, closed_at=MARCH_AT + 3 * DAY),
        _summary(3, handled_at=MARCH_AT + DAY, extension_count=2),  # handled, not closed yet
        _summary(4, extension_count=1),  # overdue, unhandled
        _summary(5, dispatched_at=None, handle_due_at=None, close_due_at=None),  # not routed yet
    ]
    figures = evaluate_department(
        cases, "lighting", period_start_at=MARCH_AT, period_end_at=APRIL_AT
    )
    assert figures.registered == 5
    assert (figures.handled, figures.handled_on_time, figures.overdue_unhandled) == (3, 2, 1)
    assert figures.due_for_handling == 4
    assert figures.handling_rate == pytest.approx(0.75)
    assert figures.on_time_handling_rate == pytest.approx(0.5)
    assert figures.extension_rate == pytest.approx(0.5)
    assert figures.due == 4  # two closed, two overdue and open
    assert figures.rework_rate == pytest.approx(0.25)


def test_rates_are_none_when_nothing_is_due() -> None:
    figures = evaluate_department([], "lighting", period_start_at=MARCH_AT, period_end_at=APRIL_AT)
    assert figures.closure_rate is None
    assert format_percent(figures.closure_rate) == "n/a"


def test_a_department_with_nothing_due_has_no_grade() -> None:
    # Both cases are open and within their deadlines: nothing is due, nothing closed.
    open_cases = [
        _summary(
            1,
            registered_at=APRIL_AT - DAY,
            handle_due_at=APRIL_AT,
            close_due_at=APRIL_AT + DAY,
        ),
        _summary(
            2,
            registered_at=APRIL_AT - DAY,
            handle_due_at=APRIL_AT + DAY,
            close_due_at=APRIL_AT + 2 * DAY,
        ),
    ]
    figures = evaluate_departments(open_cases, period_start_at=MARCH_AT, period_end_at=APRIL_AT)
    lighting = figures["lighting"]
    assert (lighting.registered, lighting.due, lighting.due_for_handling) == (2, 0, 0)
    assert [format_percent(r) for r in (lighting.closure_rate, lighting.rework_rate)] == [
        "n/a",
        "n/a",
    ]
    score = score_departments(figures, EvaluationConfig())["lighting"]
    assert (score.composite, score.grade) == (None, None)


def test_a_department_without_cases_in_the_period_is_not_graded() -> None:
    before = [_summary(1, registered_at=MARCH_AT - DAY, closed_at=MARCH_AT)]
    assert evaluate_departments(before, period_start_at=MARCH_AT, period_end_at=APRIL_AT) == {}
    score = score_departments({"idle": _figures("idle")}, EvaluationConfig())["idle"]
    assert (score.composite, score.grade, score.volume_score) == (None, None, 0.0)


def test_an_unweighted_rate_may_be_na() -> None:
    # Closed on time but never handled through feedback: handling is n/a.
    figures = {"roads": _figures("roads", registered=4, closed=4, closed_on_time=4)}
    assert score_departments(figures, EvaluationConfig())["roads"].grade is None
    no_handling = EvaluationConfig(
        weights=EvaluationWeights(
            volume=0.1, closure_rate=0.6, on_time_handling_rate=0.0, rework_free=0.3
        )
    )
    score = score_departments(figures, no_handling)["roads"]
    assert score.composite == pytest.approx(100.0)
    assert score.grade is Grade.A


def _figures(department: str, **counts: int) -> DepartmentFigures:
    base = dict.fromkeys(
        (
            "registered",
            "closed",
            "closed_on_time",
            "overdue_open",
            "handled",
            "handled_on_time",
            "overdue_unhandled",
            "reworked",
            "extended",
        ),
        0,
    )
    base.update(counts)
    return DepartmentFigures(
        department=department,
        period_start_at=MARCH_AT,
        period_end_at=APRIL_AT,
        as_of_at=APRIL_AT,
        **base,
    )


FIGURES = {
    "lighting": _figures(
        "lighting",
        registered=100,
        closed=95,
        overdue_open=5,
        handled=95,
        handled_on_time=90,
        overdue_unhandled=5,
        reworked=5,
    ),
    "drainage": _figures(
        "drainage",
        registered=50,
        closed=30,
        overdue_open=20,
        handled=30,
        handled_on_time=25,
        overdue_unhandled=20,
        reworked=10,
    ),
}


def test_composite_score_and_grade() -> None:
    scores = score_departments(FIGURES, EvaluationConfig())
    # 0.1 × 1.0 + 0.3 × 0.95 + 0.3 × 0.90 + 0.3 × (1 − 0.05) = 94.0
    assert scores["lighting"].composite == pytest.approx(94.0)
    assert scores["lighting"].grade is Grade.A
    # 0.1 × 0.5 + 0.3 × 0.6 + 0.3 × 0.5 + 0.3 × (1 − 0.2) = 62.0
    assert scores["drainage"].volume_score == pytest.approx(0.5)
    assert scores["drainage"].composite == pytest.approx(62.0)
    assert scores["drainage"].grade is Grade.C


def test_weights_and_volume_reference_are_configurable() -> None:
    config = EvaluationConfig(
        weights=EvaluationWeights(
            volume=0.0, closure_rate=0.5, on_time_handling_rate=0.5, rework_free=0.0
        ),
        volume_reference=200,
    )
    scores = score_departments(FIGURES, config)
    assert scores["lighting"].volume_score == pytest.approx(0.5)
    assert scores["lighting"].composite == pytest.approx(92.5)
    assert scores["drainage"].composite == pytest.approx(55.0)
    assert scores["drainage"].grade is Grade.D


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        (100, Grade.A),
        (90, Grade.A),
        (89.99, Grade.B),
        (75, Grade.B),
        (74.99, Grade.C),
        (60, Grade.C),
        (59.99, Grade.D),
        (40, Grade.D),
        (39.99, Grade.E),
        (0, Grade.E),
    ],
)
def test_grade_boundaries(score: float, grade: Grade) -> None:
    assert grade_of(score, GradeThresholds()) is grade


def test_evaluate_departments_groups_by_department() -> None:
    figures = evaluate_departments(
        _bulletin_cases(), period_start_at=MARCH_AT, period_end_at=APRIL_AT
    )
    assert list(figures) == ["drainage", "lighting"]
    assert figures["drainage"].registered == 1


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def _dispatched_lamp_case() -> CaseState:
    state, _ = report_case(
        case_id="CG202603160001",
        source=CaseSource.SENSOR,
        class_kind=ClassKind.MATTER,
        class_code="01037",
        reported_at=_local(16, 8, 40),
        actor_role=Role.SYSTEM,
        grid_code="320102001002003",
    )
    state, _ = apply_action(state, Action.REGISTER, Role.SYSTEM, _local(16, 8, 50))
    state, _ = apply_action(
        state, Action.DISPATCH, Role.SYSTEM, _local(16, 9), {"department": "street_lighting"}
    )
    return state


def test_summary_and_clock_of_a_live_case() -> None:
    policy = load_case_policy()
    calendar = load_calendar()
    state = _dispatched_lamp_case()
    summary = summarize_case(state, calendar=calendar, deadlines=policy.deadlines)
    assert summary is not None
    # lamps get 3 working days (22.5 h): Monday 09:00 → Thursday 09:00; then 4 h to verify
    assert summary.handle_due_at == _local(19, 9)
    assert summary.close_due_at == _local(19, 14, 30)
    clock = current_stage_clock(
        state, now_at=_local(18, 17), calendar=calendar, deadlines=policy.deadlines
    )
    assert clock is not None
    assert clock.stage is Stage.HANDLE
    assert clock.elapsed == timedelta(hours=21.5)
    assert clock.light is Light.YELLOW
    state, _ = apply_action(state, Action.ACCEPT, Role.DEPARTMENT, _local(16, 9, 30))
    state, _ = apply_action(
        state,
        Action.REQUEST_EXTENSION,
        Role.DEPARTMENT,
        _local(16, 10),
        {"extension_h": 7.5, "note": "waiting for a pole"},
    )
    state, _ = apply_action(state, Action.APPROVE_EXTENSION, Role.DISPATCHER, _local(16, 11))
    extended = summarize_case(state, calendar=calendar, deadlines=policy.deadlines)
    assert extended is not None
    assert extended.handle_due_at == _local(20, 9)
    assert extended.extension_count == 1
    clock = current_stage_clock(
        state, now_at=_local(18, 17), calendar=calendar, deadlines=policy.deadlines
    )
    assert clock is not None
    assert clock.elapsed == timedelta(hours=14)
    assert clock.light is Light.GREEN


def test_summary_of_an_unregistered_case_is_none() -> None:
    state, _ = report_case(
        case_id="C1",
        source=CaseSource.HOTLINE,
        class_kind=ClassKind.MATTER,
        class_code="06011",
        reported_at=_local(16, 9),
        actor_role=Role.INTAKE_OPERATOR,
    )
    policy = load_case_policy()
    assert summarize_case(state, calendar=load_calendar(), deadlines=policy.deadlines) is None
    clock = current_stage_clock(
        state, now_at=_local(16, 9, 50), calendar=load_calendar(), deadlines=policy.deadlines
    )
    assert clock is not None
    assert clock.stage is Stage.REGISTER
    assert clock.light is Light.YELLOW  # 50 of 60 working minutes


def test_reworked_case_is_not_handled_until_fed_back_again() -> None:
    state = _dispatched_lamp_case()
    for action, role, payload, at in [
        (Action.FEEDBACK, Role.DEPARTMENT, {}, _local(16, 10)),
        (Action.SEND_FOR_VERIFICATION, Role.SYSTEM, {}, _local(16, 11)),
        (Action.VERIFY_FAIL, Role.INSPECTOR, {"note": "still dark"}, _local(16, 14)),
        (Action.DISPATCH, Role.DISPATCHER, {}, _local(16, 15)),
    ]:
        state, _ = apply_action(state, action, role, at, payload)
    summary = summarize_case(
        state, calendar=load_calendar(), deadlines=load_case_policy().deadlines
    )
    assert summary is not None
    assert summary.handled_at is None
    assert summary.rework_count == 1


def test_a_registered_case_never_dispatched_is_due_by_the_dispatch_chain() -> None:
    policy = load_case_policy()
    calendar = load_calendar()
    state, _ = report_case(
        case_id="CG202603160002",
        source=CaseSource.HOTLINE,
        class_kind=ClassKind.MATTER,
        class_code="01037",
        reported_at=_local(16, 8, 40),
        actor_role=Role.INTAKE_OPERATOR,
        department="street_lighting",
    )
    state, _ = apply_action(state, Action.REGISTER, Role.INTAKE_OPERATOR, _local(16, 10))
    summary = summarize_case(state, calendar=calendar, deadlines=policy.deadlines)
    assert summary is not None
    assert (summary.dispatched_at, summary.handle_due_at) == (None, None)
    # dispatch 1 working h (Mon 11:00), handle 3 working days of 7.5 h, verify 4 working h
    assert summary.close_due_at == calendar.advance(_local(16, 11), timedelta(hours=22.5 + 4))
    assert summary.close_due_at is not None
    start, end = _local(16, 0), _local(17, 0)
    figures = evaluate_department(
        [summary],
        "street_lighting",
        period_start_at=start,
        period_end_at=end,
        as_of_at=summary.close_due_at + timedelta(minutes=1),
    )
    assert (figures.due, figures.overdue_open, figures.due_for_handling) == (1, 1, 0)
    before = evaluate_department(
        [summary],
        "street_lighting",
        period_start_at=start,
        period_end_at=end,
        as_of_at=summary.close_due_at - timedelta(minutes=1),
    )
    assert before.due == 0


def test_call_back_satisfaction_counts_and_can_be_weighed_in() -> None:
    closed = {"handled_at": MARCH_AT + DAY, "closed_at": MARCH_AT + DAY}
    called = MARCH_AT + 2 * DAY
    cases = [
        _summary(1, **closed, callback_result="satisfied", called_back_at=called),
        _summary(2, **closed, callback_result="basically_satisfied", called_back_at=called),
        _summary(3, **closed, callback_result="unsatisfied", called_back_at=called),
        _summary(4, **closed, callback_result="unreachable", called_back_at=called),  # no answer
        _summary(5, **closed, callback_result="satisfied", called_back_at=APRIL_AT + DAY),  # later
    ]
    figures = evaluate_department(
        cases, "lighting", period_start_at=MARCH_AT, period_end_at=APRIL_AT
    )
    assert (figures.called_back, figures.satisfied) == (3, 2)
    assert figures.satisfaction_rate == pytest.approx(2 / 3)
    unweighted = score_departments({"lighting": figures}, EvaluationConfig())["lighting"]
    # every case closed and handled in time, none reworked: 100 without satisfaction
    assert unweighted.composite == pytest.approx(100.0)
    weighted = EvaluationConfig(
        weights=EvaluationWeights(
            volume=0.1,
            closure_rate=0.3,
            on_time_handling_rate=0.2,
            rework_free=0.2,
            satisfaction=0.2,
        )
    )
    scored = score_departments({"lighting": figures}, weighted)["lighting"]
    assert scored.composite == pytest.approx(100 * (0.8 + 0.2 * 2 / 3))
