"""Numbers the database cannot take or report on: 4xx with a message, or a correct figure.

Ids beyond 64 bits (`GET /cases?alarm_id=9223372036854775808` was a 500), NaN, Infinity and
numbers beyond a double in bodies, integers beyond 64 bits in free-form JSON, and a stored
lamp meter of 1.797e308 kWh (`GET /lighting/energy` was a 500 for every caller).
"""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.principals import AccessRole
from hub.store.lighting_energy import PLAUSIBLE_METER_KWH
from tests.api.access.access_fixtures import SecuredHub, role_tokens, secured_hub
from tests.store.cases.case_fixtures import register_device

pytestmark = pytest.mark.integration

TOO_BIG = 2**63  # one past PostgreSQL's bigint
LAMP = {"kind": "lighting", "lat": 31.3, "lon": 120.6}


@pytest.fixture
def hub(database_url: str) -> Iterator[SecuredHub]:
    with secured_hub(database_url) as secured:
        yield secured


@pytest.fixture
def admin(hub: SecuredHub) -> Iterator[TestClient]:
    secret = role_tokens(hub.access)[AccessRole.ADMIN]
    with TestClient(
        hub.app, headers={"Authorization": f"Bearer {secret}"}, raise_server_exceptions=False
    ) as client:
        yield client


def integer_parameters(hub: SecuredHub) -> list[tuple[str, str, str, str]]:
    """(method, path template, where, name) of every integer path and query parameter."""
    found = []
    for path, item in hub.app.openapi()["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                types = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
                if "integer" in types:
                    found.append((method.upper(), path, parameter["in"], parameter["name"]))
    return found


def test_every_integer_parameter_beyond_64_bits_is_a_422_naming_it(
    hub: SecuredHub, admin: TestClient
) -> None:
    parameters = integer_parameters(hub)
    names = {(path, name) for _, path, _, name in parameters}
    assert ("/cases", "alarm_id") in names
    assert ("/alarms/{alarm_id}/acknowledge", "alarm_id") in names
    assert ("/auth/tokens/{token_id}", "token_id") in names
    assert len(parameters) > 20
    for method, path, where, name in parameters:
        url = re.sub(r"\{[^}]+\}", "x", path.replace("{fmt}", "json"))
        params: dict[str, Any] = {}
        if where == "path":
            url = path.replace("{" + name + "}", str(TOO_BIG)).replace("{fmt}", "json")
            url = re.sub(r"\{[^}]+\}", "x", url)
        else:
            params[name] = str(TOO_BIG)
        response = admin.request(method, url, params=params)
        assert response.status_code == 422, (method, path, name, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, list), (method, path, name, detail)
        assert any(name in d["loc"] for d in detail), (method, path, detail)


def test_the_reported_ids_say_what_to_fix(admin: TestClient) -> None:
    response = admin.get("/cases", params={"alarm_id": "9223372036854775808"})
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["query", "alarm_id"]
    assert "9223372036854775807" in problem["msg"]
    assert admin.get("/cases", params={"alarm_id": "9223372036854775807"}).json() == []
    assert admin.get("/cases/9223372036854775807").status_code == 404
    assert admin.post("/alarms/-9223372036854775809/clear", json={}).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        '{"kind": "lighting", "lat": NaN, "lon": 120.6}',
        '{"kind": "lighting", "lat": Infinity, "lon": 120.6}',
        '{"kind": "lighting", "lat": -Infinity, "lon": 120.6}',
        '{"kind": "lighting", "lat": 1e400, "lon": 120.6}',
        '{"kind": "lighting", "lat": 31.3, "lon": 120.6, "attributes": {"rated_power_w": NaN}}',
        '{"kind": "lighting", "lat": 31.3, "lon": 120.6, "attributes": {"x": 1e400}}',
    ],
)
def test_non_finite_numbers_in_a_device_body_are_a_422(admin: TestClient, body: str) -> None:
    response = admin.put(
        "/devices/lamp-1", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "standard JSON" in response.json()["detail"]
    assert admin.get("/devices/lamp-1").status_code == 404


def test_huge_but_finite_numbers_in_a_device_body_are_refused_or_kept_exactly(
    admin: TestClient,
) -> None:
    far = admin.put("/devices/lamp-1", json={**LAMP, "lat": 1e308})
    assert far.status_code == 422
    assert far.json()["detail"][0]["loc"] == ["body", "lat"]
    # jsonb would give 1e308 back as a 309-digit integer that the hub's encoders refuse
    for huge in (2**64, 1e308, -1e19):
        for method, url in (("PUT", "/devices/lamp-1"), ("POST", "/devices")):
            body = {**LAMP, "device_id": "lamp-1", "attributes": {"rated_power_w": huge}}
            if method == "PUT":
                del body["device_id"]
            response = admin.request(method, url, json=body)
            assert response.status_code == 422, (method, huge, response.text)
            assert "send it as a string" in str(response.json()["detail"])
    attributes = {"rated_power_w": 9.2e18, "tiny": 1e-300, "serial": "18446744073709551616"}
    kept = admin.put("/devices/lamp-1", json={**LAMP, "attributes": attributes})
    assert kept.status_code == 200
    assert admin.get("/devices/lamp-1").json()["attributes"] == attributes


def test_huge_numbers_in_case_and_command_bodies_are_a_422(admin: TestClient) -> None:
    version = admin.post("/cases/1/register", json={"expected_version": TOO_BIG})
    assert version.status_code == 422
    assert version.json()["detail"][0]["loc"] == ["body", "expected_version"]
    evidence = admin.post(
        "/cases",
        json={"class_code": "01003", "lat": 32.05, "lon": 118.78, "evidence": {"n": TOO_BIG}},
    )
    assert evidence.status_code == 422
    command = admin.post(
        "/lighting/commands",
        content='{"target": "all", "action": "dim", "dim_pct": 1e400}',
        headers={"Content-Type": "application/json"},
    )
    assert command.status_code == 422


def store_lamp_readings(database_url: str, device_id: str, meter_kwh: list[float]) -> None:
    """Readings straight into the table, as an older hub (or a manual import) left them: two an
    hour, at :10 and :50."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    with psycopg.connect(database_url) as conn:
        for i, meter in enumerate(meter_kwh):
            ts = start + timedelta(hours=i // 2, minutes=10 + 40 * (i % 2))
            conn.execute(
                'INSERT INTO telemetry_lighting (device_id, ts, received_at, "on", dim_pct,'
                " voltage_v, current_a, power_w, power_factor, energy_kwh)"
                " VALUES (%s, %s, %s, true, 50, 220, 0.5, 100, 0.95, %s)",
                (device_id, ts, ts, meter),
            )


def test_an_absurd_stored_meter_reading_leaves_the_energy_report_correct(
    hub: SecuredHub, admin: TestClient, database_url: str
) -> None:
    for lamp in ("lamp-ok", "lamp-mad"):
        register_device(database_url, lamp, kind="lighting", class_code="01037")
    store_lamp_readings(database_url, "lamp-ok", [100.0, 100.1, 100.1, 100.2])
    inf, nan = float("inf"), float("nan")
    absurd = [50.0, 50.1, 1.797e308, 1.797e308, 7.0, inf, nan, nan, 50.2, 50.3]
    store_lamp_readings(database_url, "lamp-mad", absurd)
    since = (datetime.now(UTC) - timedelta(hours=12)).isoformat()
    for by in ("lamp", "district", "cabinet"):
        response = admin.get("/lighting/energy", params={"by": by, "since": since})
        assert response.status_code == 200, (by, response.text)
        figures = response.json()
        assert all(abs(f["energy_kwh"]) < PLAUSIBLE_METER_KWH for f in figures)
        assert sum(f["implausible_hours"] for f in figures) == 3, figures
    by_lamp = {
        f["key"]: f
        for f in admin.get("/lighting/energy", params={"by": "lamp", "since": since}).json()
    }
    assert by_lamp["lamp-ok"]["energy_kwh"] == pytest.approx(0.2)
    assert by_lamp["lamp-ok"]["saving_kwh"] == pytest.approx(0.2)  # dimmed to half
    assert by_lamp["lamp-ok"]["implausible_hours"] == 0
    assert by_lamp["lamp-mad"]["energy_kwh"] == pytest.approx(0.3)  # its plausible hours
    assert by_lamp["lamp-mad"]["implausible_hours"] == 3
