"""Text PostgreSQL cannot keep is refused with a 422 that says what to fix, on every route.

NUL characters (in the path, the query string, JSON or form bodies) and JSON beyond RFC 8259
(NaN, Infinity, 1e400, unpaired surrogates) used to reach the store or the error serializer
and come back as 500s; the schema fuzzer (tests/api/test_api_schema_fuzz.py)
found them.
"""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.store.database import Database

pytestmark = pytest.mark.integration

LAMP = '{"device_id": "lamp-1", "kind": "lighting", "lat": 31.3, "lon": 120.6, "name": %s}'


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    db = Database(database_url, max_size=2)
    db.open()
    try:
        with TestClient(create_app(db, CollectorRegistry())) as test_client:
            yield test_client
    finally:
        db.close()


def post_lamp(client: TestClient, name_json: str) -> tuple[int, str]:
    response = client.post(
        "/devices", content=LAMP % name_json, headers={"Content-Type": "application/json"}
    )
    detail = response.json().get("detail", "")
    return response.status_code, detail if isinstance(detail, str) else str(detail)


@pytest.mark.parametrize(
    ("url", "where"),
    [("/devices/lamp%00", "path"), ("/devices?kind=lighting%00", "query string")],
)
def test_nul_in_the_url_is_refused(client: TestClient, url: str, where: str) -> None:
    response = client.get(url)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"the {where} contains a NUL character")


def test_nul_in_a_json_body_is_refused_and_an_escaped_backslash_is_not(
    client: TestClient,
) -> None:
    status, detail = post_lamp(client, '"lamp \\u0000 one"')
    assert (status, detail.split(";")[0]) == (
        422,
        "the JSON body contains a NUL character (\\u0000)",
    )
    assert client.get("/devices/lamp-1").status_code == 404
    # "\\u0000" is a backslash and the letters u0000: harmless text, stored as given.
    assert post_lamp(client, '"C:\\\\u0000"')[0] == 201
    assert client.get("/devices/lamp-1").json()["name"] == "C:\\u0000"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", '"\\ud800"'])
def test_json_beyond_rfc_8259_is_refused(client: TestClient, literal: str) -> None:
    status, detail = post_lamp(client, literal)
    assert status == 422
    assert detail.startswith("the JSON body is not standard JSON (RFC 8259)")


def test_malformed_json_keeps_fastapis_pointer_to_the_error(client: TestClient) -> None:
    response = client.post(
        "/devices", content=b'{"device_id": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
