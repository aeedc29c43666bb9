"""Every route of the fully assembled app declares its roles, and the check refuses
unauthenticated (401) and wrong-role (403) calls on each of them."""

import re
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Mount

from hub.api.access_table import ROUTE_ACCESS, RouteAccess
from hub.principals import AccessRole
from tests.api.access.access_fixtures import SecuredHub, role_tokens, secured_hub

pytestmark = pytest.mark.integration

STREAMS = {"/alarms/stream", "/lighting/alerts/stream"}
Operation = tuple[str, str]


def schema_operations(app: FastAPI) -> list[Operation]:
    """(METHOD, path template) of every operation in the app's OpenAPI schema."""
    return sorted(
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )


def undeclared(app: FastAPI) -> list[Operation]:
    """Operations of the schema and of the routes outside it that nobody declared."""
    ops = set(schema_operations(app))
    for route in app.routes:  # the docs and the console's static files
        if isinstance(route, Mount):
            ops.add(("GET", f"{route.path}/{{path:path}}"))
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                ops.add((method, getattr(route, "path", "")))
    return sorted(op for op in ops if op not in ROUTE_ACCESS)


def concrete(path: str) -> str:
    """A request path for a template: numbers for ids, json for formats."""
    path = path.replace("{fmt}", "json").replace("{area_kind}", "lots")
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.fixture
def hub(database_url: str) -> Iterator[SecuredHub]:
    with secured_hub(database_url) as secured:
        yield secured


@pytest.fixture
def client(hub: SecuredHub) -> Iterator[TestClient]:
    with TestClient(hub.app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_every_route_of_the_assembled_app_is_declared(hub: SecuredHub) -> None:
    ops = schema_operations(hub.app)
    assert len(ops) > 60  # alarms, cases, Open311, trucks, parking, manholes, auth, console
    assert undeclared(hub.app) == []
    outside_schema = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/"}
    outside_schema |= {"/console", "/console/{path:path}"}
    stale = sorted(op for op in set(ROUTE_ACCESS) - set(ops) if op[1] not in outside_schema)
    # Declarations of routes that do not exist would hide a renamed route: allow only the
    # domain routes whose module is absent from this checkout.
    assert [op for op in stale if not op[1].startswith("/lighting/")] == []


def test_a_route_added_without_a_declaration_fails_and_is_refused(database_url: str) -> None:
    extra = APIRouter()

    @extra.get("/new-thing")
    def new_thing() -> dict[str, str]:
        return {"ok": "yes"}

    with secured_hub(database_url, extra=[extra]) as secured:
        assert undeclared(secured.app) == [("GET", "/new-thing")]
        admin = role_tokens(secured.access)[AccessRole.ADMIN]
        with TestClient(secured.app) as client:
            response = client.get("/new-thing", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 403
    assert "no access declaration" in response.json()["detail"]


def test_unauthenticated_calls_get_401_on_every_protected_route(
    hub: SecuredHub, client: TestClient
) -> None:
    protected = [op for op in schema_operations(hub.app) if not ROUTE_ACCESS[op].public]
    assert len(protected) > 50
    for method, path in protected:
        for headers in (
            {},
            {"Authorization": "Bearer hubt_not-a-token"},
            {"Cookie": "hub_session=hubs_x"},
        ):
            response = client.request(method, concrete(path), headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
    assert client.get("/health").status_code == 200
    assert client.get("/open311/v2/services.json").status_code == 200
    assert client.get("/console/").status_code == 200


def test_wrong_roles_get_403_and_right_roles_pass_on_every_route(
    hub: SecuredHub, client: TestClient
) -> None:
    tokens = role_tokens(hub.access)
    refused = passed = 0
    for method, path in schema_operations(hub.app):
        rule: RouteAccess = ROUTE_ACCESS[(method, path)]
        if rule.public:
            continue
        for role, secret in tokens.items():
            headers = {"Authorization": f"Bearer {secret}"}
            if not rule.admits(role):
                response = client.request(method, concrete(path), headers=headers)
                assert response.status_code == 403, (role, method, path, response.text)
                assert f"role {role} may not" in response.json()["detail"]
                refused += 1
            elif method == "GET" and path not in STREAMS:
                response = client.request(method, concrete(path), headers=headers)
                assert response.status_code not in (401, 403), (role, method, path, response.text)
                passed += 1
    assert refused > 200
    assert passed > 100


def test_admin_passes_everything_declared(hub: SecuredHub) -> None:
    assert all(rule.admits(AccessRole.ADMIN) for rule in ROUTE_ACCESS.values())
    only_admin = [op for op, rule in ROUTE_ACCESS.items() if not rule.public and not rule.roles]
    assert ("POST", "/auth/tokens") in only_admin
    assert ("GET", "/audit") in only_admin
