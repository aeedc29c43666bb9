"""Tokens, console login, department scope, the principal as actor, and the audit log."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.__main__ import main
from hub.api.access import AccessConfig
from hub.principals import AccessRole
from tests.api.access.access_fixtures import (
    PASSWORD,
    TEST_HASHER,
    SecuredHub,
    add_users,
    secured_hub,
)
from tests.store.cases.case_fixtures import GRID

pytestmark = pytest.mark.integration


class Clock:
    """A settable clock for expiry and throttling."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(database_url: str, clock: Clock) -> Iterator[SecuredHub]:
    config = AccessConfig(
        login_max_failures=3,
        login_window=timedelta(minutes=5),
        clock=clock,
        password_hasher=TEST_HASHER,
    )
    with secured_hub(database_url, config=config) as secured:
        add_users(secured.access)
        yield secured


def login(hub: SecuredHub, user: str) -> TestClient:
    client = TestClient(hub.app)
    response = client.post("/auth/login", json={"username": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client


def report(client: TestClient, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"source": "hotline", "class_code": "01003", "description": "井盖破损"}
    body |= {"lat": 32.05, "lon": 118.78, "grid_code": GRID, **fields}
    response = client.post("/cases", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_login_sets_a_safe_cookie_and_is_throttled(hub: SecuredHub, clock: Clock) -> None:
    client = TestClient(hub.app)
    response = client.post("/auth/login", json={"username": "centre", "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    me = client.get("/auth/me").json()
    assert me["role"] == "centre"
    assert "cases" in me["views"]
    assert "trucks" not in me["views"]
    assert client.post("/auth/logout").status_code == 204
    assert client.get("/auth/me").status_code == 401

    for _ in range(3):
        bad = client.post("/auth/login", json={"username": "viewer", "password": "nope"})
        assert bad.status_code == 401
    blocked = client.post("/auth/login", json={"username": "viewer", "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    other = client.post("/auth/login", json={"username": "centre", "password": PASSWORD})
    assert other.status_code == 200  # per IP and user, not the whole IP
    clock.now += timedelta(minutes=6)
    assert (
        client.post("/auth/login", json={"username": "viewer", "password": PASSWORD}).status_code
        == 200
    )


def test_cross_origin_cookie_writes_are_refused(hub: SecuredHub) -> None:
    client = login(hub, "centre")
    body = {"source": "hotline", "class_code": "01003", "grid_code": GRID}
    evil = client.post("/cases", json=body, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403


def test_tokens_by_api_expire_and_revoke(hub: SecuredHub, clock: Clock) -> None:
    admin = login(hub, "admin")
    created = admin.post(
        "/auth/tokens", json={"name": "grafana", "role": "read_only", "expires_days": 1}
    )
    assert created.status_code == 201
    token = created.json()
    secret = token.pop("secret")
    assert secret.startswith("hubt_")
    with psycopg.connect(hub.db.url) as conn:
        stored = conn.execute("SELECT token_hash FROM api_tokens WHERE id = %s", (token["id"],))
        row = stored.fetchone()
    assert row is not None
    assert secret not in row[0]
    bearer = TestClient(hub.app, headers={"Authorization": f"Bearer {secret}"})
    assert bearer.get("/cases").status_code == 200
    assert bearer.post("/cases", json={}).status_code == 403
    listed = admin.get("/auth/tokens").json()
    assert [t["name"] for t in listed] == ["grafana"]
    assert all("secret" not in t for t in listed)
    clock.now += timedelta(days=2)
    assert bearer.get("/cases").status_code == 401
    clock.now -= timedelta(days=2)
    assert admin.delete(f"/auth/tokens/{token['id']}").status_code == 200
    assert bearer.get("/cases").status_code == 401
    assert admin.post("/auth/tokens", json={"name": "x", "role": "department"}).status_code == 422
    # the audit line of the creation does not keep the secret
    lines = admin.get("/audit", params={"path": "/auth/tokens"}).json()
    assert {line["method"] for line in lines} == {"POST", "DELETE"}
    assert all(secret not in str(line) for line in lines)
    revoked = next(line for line in lines if line["method"] == "DELETE")
    assert revoked["before"]["revoked_at"] is None
    assert revoked["after"]["revoked_at"] is not None


def test_department_sees_and_acts_on_its_own_cases_only(hub: SecuredHub) -> None:
    centre = login(hub, "centre")
    ours = report(centre)
    theirs = report(centre)
    for case, department in ((ours, "drainage"), (theirs, "water_supply")):
        assert centre.post(f"/cases/{case['id']}/register").status_code == 200
        dispatched = centre.post(f"/cases/{case['id']}/dispatch", json={"department": department})
        assert dispatched.status_code == 200, dispatched.text
        assert dispatched.json()["department"] == department or department == "drainage"
    with psycopg.connect(hub.db.url) as conn:  # route the second case elsewhere
        conn.execute(
            "UPDATE cases SET department = 'water_supply',"
            " state = jsonb_set(state, '{department}', '\"water_supply\"') WHERE id = %s",
            (theirs["id"],),
        )
    drainage = login(hub, "drainage")
    listed = [c["id"] for c in drainage.get("/cases").json()]
    assert ours["id"] in listed
    assert theirs["id"] not in listed
    assert drainage.get("/cases", params={"department": "water_supply"}).json() == []
    assert drainage.get(f"/cases/{theirs['id']}").status_code == 404
    assert drainage.post(f"/cases/{theirs['id']}/accept").status_code == 404
    assert drainage.get(f"/cases/{ours['id']}/actions").json()["actions"] == [
        "accept",
        "return",
        "feedback",
        "attach-evidence",
    ]
    accepted = drainage.post(f"/cases/{ours['id']}/accept")
    assert accepted.status_code == 200
    event = accepted.json()["events"][-1]
    assert (event["actor_role"], event["actor_id"]) == ("department", "user:drainage")
    # a department may not take the centre's actions even on its own case
    assert drainage.post(f"/cases/{ours['id']}/close").status_code == 403
    # and the centre acts in the workflow role each action needs
    actions = centre.get(f"/cases/{ours['id']}/actions").json()["actions"]
    assert "accept" not in actions
    audit = login(hub, "admin").get("/audit", params={"actor": "user:drainage"}).json()
    line = next(a for a in audit if a["path"].endswith("/accept") and a["status"] == 200)
    assert line["before"]["status"] == "dispatched"
    assert line["after"]["status"] == "in_progress"
    assert login(hub, "centre").get("/audit").status_code == 403


def test_cli_tokens_users_and_layers(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    assert main(["tokens", "create", "--role", "enforcement", "--name", "patrol-7"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("hubt_")
    assert main(["tokens", "list"]) == 0
    assert "patrol-7" in capsys.readouterr().out
    assert main(["tokens", "revoke", "1"]) == 0
    assert main(["tokens", "create", "--role", "department", "--name", "x"]) == 2
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("long enough pw\n"))
    assert main(["users", "create", "li", "--role", "centre", "--password-stdin"]) == 0
    (tmp_path / "streets.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    assert main(["city", "layers", "import", str(tmp_path)]) == 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT password_hash, role FROM console_users").fetchone()
        layers = conn.execute("SELECT name FROM city_layers").fetchall()
    assert row is not None
    assert row[0].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert row[1] == AccessRole.CENTRE
    assert layers == [("streets",)]
