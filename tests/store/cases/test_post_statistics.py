"""Statistics by post against a hand count: who at which post ended which stage, in time."""

import psycopg
import pytest

from hub.cases.intake import draft_person_case
from hub.cases.workflow import Action, Role
from hub.store.cases import act_on_case, open_case
from hub.store.cases_stats import post_statistics
from tests.store.cases.case_fixtures import at, case_setup, hotline_report

pytestmark = pytest.mark.integration

SETUP = case_setup()


def test_each_person_at_each_post_with_the_stages_they_ended_in_time(database_url: str) -> None:
    # Register and dispatch each have 1 working hour (policy.yaml); T0 is Monday 09:00.
    with psycopg.connect(database_url) as conn:
        first = open_case(conn, SETUP, draft_person_case(SETUP, hotline_report()), at(0)).id
        second = open_case(conn, SETUP, draft_person_case(SETUP, hotline_report()), at(0)).id
        steps = [
            (first, Action.REGISTER, Role.INTAKE_OPERATOR, "op-1", 30, {}),  # in time
            (second, Action.REGISTER, Role.INTAKE_OPERATOR, "op-1", 90, {}),  # 30 min late
            (first, Action.DISPATCH, Role.DISPATCHER, "dp-1", 150, {"department": "drainage"}),
            (second, Action.DISPATCH, Role.DISPATCHER, "dp-2", 100, {"department": "drainage"}),
        ]
        for case_id, action, role, actor, minute, payload in steps:
            act_on_case(conn, SETUP, case_id, action, role, at(minute), payload, actor_id=actor)
        whole = post_statistics(conn, at(0), at(600))
        before_dispatch = post_statistics(conn, at(0), at(95))
    rows = {
        (f.role, f.actor_id): (dict(f.actions), f.stages_ended, f.stages_ended_in_time)
        for f in whole
    }
    assert rows == {
        (Role.INTAKE_OPERATOR, "op-7"): ({Action.REPORT: 2}, 0, 0),  # took the hotline calls
        (Role.INTAKE_OPERATOR, "op-1"): ({Action.REGISTER: 2}, 2, 1),
        (Role.DISPATCHER, "dp-1"): ({Action.DISPATCH: 1}, 1, 0),  # due 10:30, done 11:30
        (Role.DISPATCHER, "dp-2"): ({Action.DISPATCH: 1}, 1, 1),  # due 11:30, done 10:40
    }
    assert [f.actor_id for f in whole] == ["op-1", "op-7", "dp-1", "dp-2"]  # posts in step order
    assert [f.in_time_rate for f in whole] == [0.5, None, 0.0, 1.0]
    assert [(f.actor_id, f.total) for f in before_dispatch] == [("op-1", 2), ("op-7", 2)]
