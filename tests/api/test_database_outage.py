"""With PostgreSQL away the API answers 503 with Retry-After within about a second, on every
kind of route (authenticated, public, login), and serves again once the database is back.

A real PostgreSQL of the test's own is stopped (`pg_ctl stop -m immediate`, what a crash or a
failover looks like to clients), not a mock; a second test points the hub at a closed port.
Before the fix each of these requests hung for the pool's 30 s and then answered 500.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.cli.local_stack import LocalPostgres, free_port
from hub.principals import AccessRole
from hub.store.database import Database
from hub.store.migrations import apply_migrations
from tests.api.access.access_fixtures import PASSWORD, add_users, role_tokens, secured_hub

pytestmark = pytest.mark.integration

FAST_S = 2.0
"""The longest a 503 may take: the pool wait (1 s) plus a loaded machine's slack."""


@pytest.fixture
def own_database(service_dir: Path) -> Iterator[LocalPostgres]:
    """A PostgreSQL of this test's own, so it can be stopped without harming other tests."""
    server = LocalPostgres(service_dir / f"pg-{free_port()}", free_port(), durable=False)
    server.start()
    apply_migrations(server.url, "plain")
    yield server
    server.stop("immediate")


def timed(
    client: TestClient, method: str, url: str, **kwargs: object
) -> tuple[int, float, dict[str, str]]:
    started = time.monotonic()
    response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    return response.status_code, time.monotonic() - started, dict(response.headers)


def test_a_stopped_database_is_a_fast_503_and_the_api_recovers(
    own_database: LocalPostgres,
) -> None:
    with secured_hub(own_database.url) as hub:
        add_users(hub.access)
        admin = role_tokens(hub.access)[AccessRole.ADMIN]
        with TestClient(
            hub.app, headers={"Authorization": f"Bearer {admin}"}, raise_server_exceptions=False
        ) as client:
            assert client.get("/devices").status_code == 200
            # The test server commits asynchronously (synchronous_commit off): flush the
            # users and tokens just made, or the crash below may take them along.
            with psycopg.connect(own_database.url, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
            own_database.stop("immediate")
            answers = [
                timed(client, "GET", "/devices"),  # a pooled connection that just died
                timed(client, "GET", "/devices"),  # no connection to be had: the pool wait
                timed(client, "GET", "/cases"),
                timed(client, "POST", "/alarms/1/acknowledge", json={}),
                timed(client, "GET", "/open311/v2/requests.json"),  # public, no auth query
                timed(
                    client, "POST", "/auth/login", json={"username": "centre", "password": PASSWORD}
                ),
            ]
            print("outage answers (status, seconds):", [(s, round(t, 3)) for s, t, _ in answers])
            for code, seconds, headers in answers:
                assert code == 503, answers
                assert seconds < FAST_S, answers
                assert int(headers["retry-after"]) > 0
                assert headers["x-content-type-options"] == "nosniff"
            body = client.get("/devices").json()
            assert "database is not answering" in body["detail"]

            own_database.start()
            back = time.monotonic()
            while client.get("/devices").status_code != 200:
                assert time.monotonic() < back + 30, "the API did not recover"
                time.sleep(0.2)
            print(f"serving again {time.monotonic() - back:.1f} s after PostgreSQL was back")
            assert client.get("/health").json()["database"] is True


def test_a_database_that_never_came_up_is_a_fast_503() -> None:
    db = Database(f"postgresql://hub@127.0.0.1:{free_port()}/hub", max_size=2)
    db.pool.open(wait=False)  # `hub run` waits at start; a later restart of the API need not
    try:
        with TestClient(create_app(db, CollectorRegistry())) as client:
            code, seconds, headers = timed(client, "GET", "/devices")
            print(f"closed port: {code} in {seconds:.3f} s")
            assert code == 503
            assert seconds < FAST_S
            assert headers["retry-after"] == "5"
    finally:
        db.close()
