"""Refusals and consequences at each step, through the API over a real database: dispatch
to a known department only, re-routing on reclassification, 核实 before a public report is
registered, UTF-8 form bodies, hazard urgency, reports outside the city, extended limits,
never-dispatched cases in 应结案数, and 404 for an unknown action path."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api import alarms, cases, open311
from hub.api.app import create_app
from hub.cases.grid import UnitGridIndex
from hub.cases.workflow import CaseStatus
from hub.principals import AccessRole
from hub.rules.alarm_fanout import AlarmFanout
from hub.store.alarms import AlarmStore
from hub.store.cases import CaseStore
from hub.store.database import Database
from tests.api.access.access_fixtures import role_tokens, secured_hub
from tests.api.cases.conftest import OPEN311_KEY
from tests.api.cases.test_cases_api import act, case_in, report
from tests.store.cases.case_fixtures import GRID, case_setup

pytestmark = pytest.mark.integration

BASE = "/open311/v2"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def post_public(client: TestClient, **fields: str) -> str:
    body = {"api_key": OPEN311_KEY, "service_code": "01003", "lat": "32.05", "long": "118.78"}
    body.update(fields)
    response = client.post(f"{BASE}/requests.json", data=body)
    assert response.status_code == 200, response.text
    request_id: str = response.json()[0]["service_request_id"]
    return request_id


def case_row(database_url: str, case_number: str) -> tuple[Any, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT id, description, urgency, evidence, grid_code FROM cases"
            " WHERE case_number = %s",
            (case_number,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_dispatch_only_to_a_known_department(client: TestClient) -> None:
    registered = case_in(client, CaseStatus.REGISTERED)
    refused = client.post(
        f"/cases/{registered}/dispatch",
        json={"actor_role": "dispatcher", "department": "nonexistent"},
    )
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "'nonexistent' is not a known department" in detail
    assert "drainage (排水管理处)" in detail
    assert client.get(f"/cases/{registered}").json()["status"] == "registered"

    returned = case_in(client, CaseStatus.RETURNED)
    again = client.post(
        f"/cases/{returned}/dispatch", json={"actor_role": "dispatcher", "department": "nobody"}
    )
    assert again.status_code == 422
    assert "known department" in again.json()["detail"]
    moved = act(client, returned, "dispatch", "dispatcher", department="water_supply")
    assert moved["department"] == "water_supply"


def test_reclassifying_at_registration_reroutes_and_says_so(client: TestClient) -> None:
    case_id = int(report(client)["id"])  # 01003 storm-water cover: drainage
    registered = act(client, case_id, "register", "intake_operator", class_code="01037")
    assert registered["class_code"] == "01037"
    assert registered["department"] == "street_lighting"
    last = registered["events"][-1]
    assert "re-routed from drainage to street_lighting" in last["note"]
    assert last["payload"]["rerouted_from"] == "drainage"

    unknown = int(report(client)["id"])
    refused = client.post(
        f"/cases/{unknown}/register", json={"actor_role": "intake_operator", "class_code": "01999"}
    )
    assert refused.status_code == 422
    assert "01999" in refused.json()["detail"]

    same = int(report(client)["id"])
    kept = act(client, same, "register", "intake_operator", class_code="01003")
    assert kept["department"] == "drainage"
    assert "re-routed" not in kept["events"][-1]["note"]


def test_a_public_report_is_checked_on_site_before_registration(client: TestClient) -> None:
    number = post_public(client, description="井盖坏了")
    case_id = client.get("/cases", params={"source": "open311"}).json()[0]["id"]
    assert client.get(f"/cases/{case_id}").json()["case_number"] == number
    unchecked = client.post(f"/cases/{case_id}/register", json={"actor_role": "intake_operator"})
    assert unchecked.status_code == 409
    assert "核实" in unchecked.json()["detail"]
    assert "request_check" in unchecked.json()["detail"]

    act(client, case_id, "request-check", "intake_operator")
    act(client, case_id, "complete-check", "inspector", confirmed=True)
    assert act(client, case_id, "register", "intake_operator")["status"] == "registered"

    post_public(client)
    other = client.get("/cases", params={"source": "open311"}).json()[0]["id"]
    act(client, other, "request-check", "intake_operator")
    act(client, other, "complete-check", "inspector", confirmed=False)
    not_found = client.post(f"/cases/{other}/register", json={"actor_role": "intake_operator"})
    assert not_found.status_code == 409
    assert "reject it" in not_found.json()["detail"]
    assert act(client, other, "reject", "intake_operator", note="nothing there")["status"] == (
        "rejected"
    )


def test_hotline_reports_need_no_on_site_check(client: TestClient) -> None:
    case_id = int(report(client)["id"])
    assert act(client, case_id, "register", "intake_operator")["status"] == "registered"


def test_utf8_form_bodies_are_read_as_utf8(client: TestClient, database_url: str) -> None:
    raw = (
        f"api_key={OPEN311_KEY}&service_code=01003&lat=32.05&long=118.78"
        "&description=垃圾&first_name=张三"
    ).encode()
    response = client.post(f"{BASE}/requests.json", content=raw, headers={"content-type": FORM})
    assert response.status_code == 200, response.text
    _, description, _, evidence, _ = case_row(
        database_url, response.json()[0]["service_request_id"]
    )
    assert description == "垃圾"
    assert evidence["reporter"]["first_name"] == "张三"

    escaped = post_public(client, description="井盖 缺失")  # percent-encoded still works
    assert case_row(database_url, escaped)[1] == "井盖 缺失"

    latin1 = client.post(
        f"{BASE}/requests.json",
        content="description=caf\u00e9".encode("latin-1")
        + f"&api_key={OPEN311_KEY}".encode()
        + b"&service_code=01003&lat=32.05&long=118.78",
        headers={"content-type": "application/x-www-form-urlencoded; charset=iso-8859-1"},
    )
    assert latin1.status_code == 200
    assert case_row(database_url, latin1.json()[0]["service_request_id"])[1] == "café"

    broken = client.post(
        f"{BASE}/requests.json",
        content=b"description=\xff\xfe&api_key=" + OPEN311_KEY.encode(),
        headers={"content-type": FORM},
    )
    assert broken.status_code == 400
    assert broken.json() == [
        {"code": 400, "description": "the form body is not valid utf-8; send UTF-8"}
    ]


def test_a_hazard_makes_a_public_report_urgent(client: TestClient, database_url: str) -> None:
    hazard = post_public(client, **{"attribute[hazard]": "yes"})
    assert case_row(database_url, hazard)[2] == "urgent"
    safe = post_public(client, **{"attribute[hazard]": "no"})
    assert case_row(database_url, safe)[2] == "normal"
    assert case_row(database_url, post_public(client))[2] == "normal"


@pytest.fixture
def grid_client(db: Database) -> Iterator[TestClient]:
    """The API with one unit grid loaded around the test location."""
    grids = UnitGridIndex([(GRID, [(118.7, 32.0), (118.9, 32.0), (118.9, 32.1), (118.7, 32.1)])])
    setup = case_setup()
    store = CaseStore(db, type(setup)(**{**_fields(setup), "grids": grids}))
    fanout = AlarmFanout()
    state = {
        "alarm_store": AlarmStore(db),
        "case_store": store,
        "alarm_fanout": fanout,
        "alarm_publisher": fanout,
        "open311_api_keys": frozenset({OPEN311_KEY}),
    }
    app = create_app(
        db, CollectorRegistry(), routers=[alarms.router, cases.router, open311.router], state=state
    )
    with TestClient(app) as test_client:
        yield test_client


def _fields(setup: Any) -> dict[str, Any]:
    return {name: getattr(setup, name) for name in setup.__slots__}


def test_a_report_outside_the_city_is_flagged_not_lost(
    grid_client: TestClient, database_url: str
) -> None:
    inside = post_public(grid_client)
    assert case_row(database_url, inside)[4] == GRID
    assert "warning" not in case_row(database_url, inside)[3]["location"]

    response = grid_client.post(
        f"{BASE}/requests.json",
        data={"api_key": OPEN311_KEY, "service_code": "01003", "lat": "10", "long": "10"},
    )
    assert response.status_code == 200
    (receipt,) = response.json()
    assert "outside the city's unit grids" in receipt["service_notice"]
    _, _, _, evidence, grid_code = case_row(database_url, receipt["service_request_id"])
    assert grid_code is None
    assert "lat/long (10, 10) lies outside the city's unit grids" in evidence["location"]["warning"]


def test_the_stage_limit_follows_an_extension(client: TestClient) -> None:
    case_id = case_in(client, CaseStatus.IN_PROGRESS)
    before = client.get(f"/cases/{case_id}").json()["stage_clock"]
    assert (before["limit_h"], before["extension_h"]) == (15.0, 0.0)  # 2 working days
    act(client, case_id, "request-extension", "department", extension_h=7.5, note="parts")
    after = act(client, case_id, "approve-extension", "dispatcher")["stage_clock"]
    assert (after["base_limit_h"], after["extension_h"], after["limit_h"]) == (15.0, 7.5, 22.5)
    assert after["due_at"] == before["due_at"] or after["due_at"] > before["due_at"]


def test_a_registered_case_never_dispatched_counts_as_due(client: TestClient) -> None:
    case_id = case_in(client, CaseStatus.REGISTERED)
    assert client.get(f"/cases/{case_id}").json()["department"] == "drainage"
    now = datetime.now(UTC)
    params = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    early = client.get("/evaluation", params=params).json()["departments"]
    assert next(d for d in early if d["department"] == "drainage")["due"] == 0
    late = client.get(
        "/evaluation", params={**params, "as_of": (now + timedelta(days=30)).isoformat()}
    ).json()["departments"]
    drainage = next(d for d in late if d["department"] == "drainage")
    assert (drainage["due"], drainage["overdue_open"], drainage["closed"]) == (1, 1, 0)
    assert drainage["due_for_handling"] == 0  # no department has had it to handle


def test_an_unknown_action_path_is_404(database_url: str) -> None:
    with secured_hub(database_url) as hub:
        centre = role_tokens(hub.access)[AccessRole.CENTRE]
        with TestClient(hub.app) as secured:
            headers = {"Authorization": f"Bearer {centre}"}
            unknown = secured.post("/cases/1/frobnicate", headers=headers, json={})
            assert unknown.status_code == 404
            assert unknown.json()["detail"] == "no route /cases/1/frobnicate"
            assert secured.post("/cases/1/frobnicate", json={}).status_code == 404
            known = secured.post("/cases/999999/register", headers=headers, json={})
            assert known.status_code == 404  # a declared route: the case is what is missing
            assert "no case with id 999999" in known.json()["detail"]
