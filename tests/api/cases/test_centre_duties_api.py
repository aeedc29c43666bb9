"""Separated duties and urging (督办) through the API over a real database: on-site tasks
go to the inspector assigned, nobody verifies their own dispatch, and the shift leader's
urges raise a level recorded on the case and sent to the department's webhook."""

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.cases.workflow import CaseStatus
from tests.api.cases.test_cases_api import act, case_in, report

pytestmark = pytest.mark.integration


def post(client: TestClient, case_id: int, action: str, role: str, **body: Any) -> Any:
    return client.post(f"/cases/{case_id}/{action}", json={"actor_role": role, **body})


def test_an_on_site_check_is_done_by_the_inspector_assigned(client: TestClient) -> None:
    case_id = int(report(client)["id"])
    checking = act(client, case_id, "request-check", "intake_operator", inspector="insp-3")
    assert checking["inspector"] == "insp-3"
    tasks = client.get("/cases", params={"inspector": "insp-3"}).json()
    assert [c["id"] for c in tasks] == [case_id]
    assert client.get("/cases", params={"inspector": "insp-4"}).json() == []

    other = post(client, case_id, "complete-check", "inspector", actor_id="insp-4")
    assert other.status_code == 403
    assert "assigned to inspector insp-3" in other.json()["detail"]
    done = act(client, case_id, "complete-check", "inspector", actor_id="insp-3", confirmed=True)
    assert (done["status"], done["inspector"]) == ("reported", None)
    assert done["events"][-1]["actor_id"] == "insp-3"  # the audit shows who did what
    assert client.get("/cases", params={"inspector": "insp-3"}).json() == []


def test_nobody_verifies_their_own_dispatch(client: TestClient) -> None:
    case_id = int(report(client)["id"])
    act(client, case_id, "register", "intake_operator", actor_id="op-1")
    dispatched = act(
        client, case_id, "dispatch", "dispatcher", actor_id="wang", department="drainage"
    )
    assert dispatched["dispatched_by"] == "wang"
    act(client, case_id, "feedback", "department", actor_id="dept-7", note="fixed")
    act(client, case_id, "send-for-verification", "intake_operator", actor_id="op-1")
    own = post(client, case_id, "verify-pass", "inspector", actor_id="wang")
    assert own.status_code == 403
    assert "wang dispatched case" in own.json()["detail"]
    assert act(client, case_id, "verify-pass", "inspector", actor_id="li")["status"] == "verified"


def test_a_verification_assigned_to_one_inspector(client: TestClient) -> None:
    case_id = case_in(client, CaseStatus.HANDLED)
    act(client, case_id, "send-for-verification", "intake_operator", inspector="insp-9")
    assert post(client, case_id, "verify-fail", "inspector", note="no").status_code == 403
    failed = act(client, case_id, "verify-fail", "inspector", actor_id="insp-9", note="still")
    assert (failed["status"], failed["inspector"]) == ("rework", None)


def test_the_shift_leader_urges_and_the_department_hears(
    client: TestClient, database_url: str
) -> None:
    case_id = case_in(client, CaseStatus.IN_PROGRESS)
    refused = post(client, case_id, "urge", "dispatcher", note="hurry")
    assert refused.status_code == 403
    assert "urge from in_progress is for: shift_leader" in refused.json()["detail"]
    assert post(client, case_id, "urge", "shift_leader").status_code == 422  # needs a note
    first = act(client, case_id, "urge", "shift_leader", note="超期，请尽快处置")
    second = act(client, case_id, "urge", "shift_leader", note="再次督办")
    assert (first["urge_level"], second["urge_level"]) == (1, 2)
    assert second["status"] == "in_progress"
    assert second["events"][-1]["payload"]["level"] == 2
    assert "督办 level 2" in second["events"][-1]["note"]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT body -> 'event' -> 'payload' ->> 'level', body -> 'case' ->> 'department'"
            " FROM outbox WHERE case_id = %s AND event_type = 'case.urge' ORDER BY seq",
            (case_id,),
        ).fetchall()
    assert rows == [("1", "drainage"), ("2", "drainage")]
    closed = case_in(client, CaseStatus.CLOSED)
    assert post(client, closed, "urge", "shift_leader", note="x").status_code == 409


def test_the_shift_leaders_queues_lights_and_overdue_board(
    client: TestClient, database_url: str
) -> None:
    reported = int(report(client)["id"])
    dispatched = case_in(client, CaseStatus.DISPATCHED)
    verified = case_in(client, CaseStatus.VERIFIED)
    case_in(client, CaseStatus.CLOSED)  # final: in no queue
    with psycopg.connect(database_url) as conn:  # the dispatched one ran past its limit
        conn.execute(
            "UPDATE cases SET stage_yellow_at = now() - interval '2 hours',"
            " stage_overdue_at = now() - interval '1 hour' WHERE id = %s",
            (dispatched,),
        )
    view = client.get("/supervision").json()
    queues = {q["post"]: q for q in view["queues"]}
    assert (queues["intake"]["total"], queues["intake"]["green"]) == (1, 1)
    assert queues["department"] == {
        "post": "department",
        "total": 1,
        "green": 0,
        "yellow": 0,
        "red": 1,
        "by_status": {"dispatched": 1},
    }
    assert queues["shift_leader"]["by_status"] == {"verified": 1}
    assert view["lights"] == {"green": 2, "yellow": 0, "red": 1}
    assert [c["id"] for c in view["overdue"]] == [dispatched]
    assert view["overdue"][0]["overdue"] is True
    assert reported != verified
