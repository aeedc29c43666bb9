"""The case API over a real database: every transition and refusal, filters, detail, figures."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.cases.workflow import TRANSITIONS, Action, CaseStatus, Role
from tests.store.cases.case_fixtures import GRID

pytestmark = pytest.mark.integration

Step = tuple[str, str, dict[str, Any]]

_S = CaseStatus
PATHS: dict[CaseStatus, list[Step]] = {_S.REPORTED: []}
PATHS[_S.CHECKING] = [("request-check", "intake_operator", {})]
PATHS[_S.REJECTED] = [("reject", "intake_operator", {"note": "duplicate"})]
PATHS[_S.VOIDED] = [("void", "shift_leader", {"note": "test report"})]
PATHS[_S.REGISTERED] = [("register", "intake_operator", {})]
PATHS[_S.DISPATCHED] = [
    *PATHS[_S.REGISTERED],
    ("dispatch", "dispatcher", {"department": "drainage"}),
]
PATHS[_S.IN_PROGRESS] = [*PATHS[_S.DISPATCHED], ("accept", "department", {})]
PATHS[_S.RETURNED] = [*PATHS[_S.IN_PROGRESS], ("return", "department", {"note": "not ours"})]
PATHS[_S.EXTENSION_REQUESTED] = [
    *PATHS[_S.IN_PROGRESS],
    ("request-extension", "department", {"extension_h": 7.5, "note": "parts on order"}),
]
PATHS[_S.SUSPENSION_REQUESTED] = [
    *PATHS[_S.IN_PROGRESS],
    ("request-suspension", "department", {"note": "needs budget"}),
]
PATHS[_S.SUSPENDED] = [*PATHS[_S.SUSPENSION_REQUESTED], ("approve-suspension", "dispatcher", {})]
PATHS[_S.HANDLED] = [*PATHS[_S.IN_PROGRESS], ("feedback", "department", {"note": "replaced"})]
PATHS[_S.VERIFYING] = [*PATHS[_S.HANDLED], ("send-for-verification", "intake_operator", {})]
PATHS[_S.VERIFIED] = [*PATHS[_S.VERIFYING], ("verify-pass", "inspector", {})]
PATHS[_S.REWORK] = [*PATHS[_S.VERIFYING], ("verify-fail", "inspector", {"note": "still broken"})]
PATHS[_S.CLOSED] = [*PATHS[_S.VERIFIED], ("close", "shift_leader", {})]

PAYLOAD: dict[str, Any] = {
    "note": "why",
    "department": "water_supply",
    "extension_h": 7.5,
    "evidence": "photo of the repaired cover",
}


def slug(action: Action) -> str:
    return action.value.replace("_", "-")


def report(client: TestClient, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": "hotline",
        "class_code": "01003",
        "description": "雨水井盖破损",
        "lat": 32.05,
        "lon": 118.78,
        "grid_code": GRID,
        "actor_role": "intake_operator",
        "actor_id": "op-7",
    }
    body.update(fields)
    response = client.post("/cases", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def act(client: TestClient, case_id: int, action: str, role: str, **body: Any) -> Any:
    response = client.post(f"/cases/{case_id}/{action}", json={"actor_role": role, **body})
    assert response.status_code == 200, f"{action} as {role}: {response.text}"
    return response.json()


def case_in(client: TestClient, status: CaseStatus) -> int:
    case_id = int(report(client)["id"])
    for action, role, payload in PATHS[status]:
        act(client, case_id, action, role, **payload)
    return case_id


def test_every_allowed_transition(client: TestClient) -> None:
    tried = 0
    for transition in TRANSITIONS:
        role = sorted(r for r in transition.roles if r is not Role.SYSTEM)[0]
        for source in sorted(transition.sources):
            case_id = case_in(client, source)
            extra: dict[str, Any] = {"satisfaction": "satisfied"}
            if transition.action is Action.MERGE:
                extra["into"] = report(client)["case_number"]
            after = act(client, case_id, slug(transition.action), role.value, **PAYLOAD, **extra)
            assert after["status"] == (transition.target or source).value, transition
            assert after["events"][-1]["action"] == transition.action.value
            assert after["events"][-1]["actor_role"] == role.value
            tried += 1
    assert tried >= len(TRANSITIONS)


def test_every_refused_transition_names_the_allowed_ones(client: TestClient) -> None:
    allowed = {(s, t.action) for t in TRANSITIONS for s in t.sources}
    for status in PATHS:
        case_id = case_in(client, status)
        version = client.get(f"/cases/{case_id}").json()["version"]
        for action in Action:
            if action is Action.REPORT or (status, action) in allowed:
                continue
            response = client.post(
                f"/cases/{case_id}/{slug(action)}", json={"actor_role": "admin", **PAYLOAD}
            )
            assert response.status_code == 409, (status, action, response.text)
            detail = response.json()["detail"]
            assert f"cannot {action.value}" in detail
            assert f"allowed from {status.value}:" in detail
        assert client.get(f"/cases/{case_id}").json()["version"] == version


def test_roles_input_and_versions(client: TestClient) -> None:
    case_id = int(report(client)["id"])
    wrong_role = client.post(f"/cases/{case_id}/register", json={"actor_role": "department"})
    assert wrong_role.status_code == 403
    assert (
        "register from reported is for: intake_operator, shift_leader, system"
        in (wrong_role.json()["detail"])
    )
    no_role = client.post(f"/cases/{case_id}/register")
    assert no_role.status_code == 422
    assert "X-Actor-Role" in no_role.json()["detail"]
    header_role = client.post(
        f"/cases/{case_id}/register", headers={"X-Actor-Role": "shift_leader", "X-Actor-Id": "ld-1"}
    )
    assert header_role.status_code == 200
    assert header_role.json()["events"][-1]["actor_id"] == "ld-1"
    system = client.post(f"/cases/{case_id}/dispatch", json={"actor_role": "system"})
    assert system.status_code == 422
    stale = client.post(
        f"/cases/{case_id}/dispatch", json={"actor_role": "dispatcher", "expected_version": 1}
    )
    assert stale.status_code == 409
    assert "version 2, not 1" in stale.json()["detail"]
    act(client, case_id, "dispatch", "dispatcher", expected_version=2)
    act(client, case_id, "accept", "department")
    bad_hours = client.post(
        f"/cases/{case_id}/request-extension",
        json={"actor_role": "department", "extension_h": -3, "note": "x"},
    )
    assert bad_hours.status_code == 422
    assert "positive number of hours" in bad_hours.json()["detail"]
    unknown_field = client.post(
        f"/cases/{case_id}/feedback", json={"actor_role": "department", "colour": "red"}
    )
    assert unknown_field.status_code == 422
    assert client.post("/cases/999999/register", json={"actor_role": "admin"}).status_code == 404
    bad_class = client.post(
        "/cases", json={"class_code": "99999", "lat": 32.0, "lon": 118.0, "actor_role": "admin"}
    )
    assert bad_class.status_code == 422
    no_location = client.post("/cases", json={"class_code": "01003", "actor_role": "admin"})
    assert no_location.status_code == 422
    sensor = client.post(
        "/cases", json={"source": "sensor", "class_code": "01003", "actor_role": "admin"}
    )
    assert sensor.status_code == 422
    department_report = client.post(
        "/cases",
        json={"class_code": "01003", "lat": 32.0, "lon": 118.0, "actor_role": "department"},
    )
    assert department_report.status_code == 403


def test_list_filters_and_detail(client: TestClient) -> None:
    storm = report(client)
    lamp = report(client, class_code="01037", description="路灯不亮", grid_code="320105001002003")
    act(client, int(lamp["id"]), "register", "intake_operator")

    def numbers(query: str) -> set[str]:
        response = client.get(f"/cases?{query}")
        assert response.status_code == 200, response.text
        return {c["case_number"] for c in response.json()}

    both = {storm["case_number"], lamp["case_number"]}
    assert numbers("") == both
    assert numbers("status=registered") == {lamp["case_number"]}
    assert numbers("status=registered&status=reported") == both
    assert numbers("class_code=01003") == {storm["case_number"]}
    assert numbers("department=street_lighting") == {lamp["case_number"]}
    assert numbers("area=320102") == {storm["case_number"]}
    assert numbers("overdue=false&open=true") == both
    assert numbers("light=green") == both
    assert numbers("source=hotline&limit=1") == {lamp["case_number"]}
    assert client.get("/cases?area=32x").status_code == 422
    assert client.get("/cases?light=blue").status_code == 422

    detail = client.get(f"/cases/{lamp['id']}").json()
    assert detail["class_name"] == "路灯异常"
    assert detail["department_name"] == "路灯管理所"
    assert [e["action"] for e in detail["events"]] == ["report", "register"]
    assert detail["evidence"]["location"]["grid_code"] == "320105001002003"
    assert detail["stage_clock"]["stage"] == "dispatch"
    assert detail["stage_clock"]["limit_h"] == 1.0
    assert "dispatch" in detail["allowed_actions"]
    assert detail["light"] in {"green", "yellow", "red"}
    assert client.get("/cases/424242").status_code == 404


def test_evaluation_endpoint(client: TestClient) -> None:
    closed = case_in(client, CaseStatus.CLOSED)
    case_in(client, CaseStatus.IN_PROGRESS)
    response = client.get("/evaluation", params={"start": "2020-01-01", "end": "2100-01-01"})
    assert response.status_code == 200, response.text
    body = response.json()
    (drainage,) = body["departments"]
    assert drainage["department"] == "drainage"
    assert drainage["department_name"] == "排水管理处"
    assert drainage["registered"] == 2
    assert drainage["closed"] == 1
    assert drainage["closure_rate"] == 1.0  # the open case is not overdue yet
    assert drainage["closure_rate_text"] == "100.00%"
    assert drainage["grade"] == "A"
    assert drainage["composite"] == 100.0
    assert closed
    bad = client.get("/evaluation", params={"start": "2026-03-02", "end": "2026-03-01"})
    assert bad.status_code == 422
    naive = client.get("/evaluation", params={"start": "2026-03-01T00:00", "end": "2026-04-01"})
    assert naive.status_code == 422
