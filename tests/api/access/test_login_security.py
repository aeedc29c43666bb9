"""Login throttling kept in the database (per address and user, and per user from anywhere,
alike on every member of a cluster) and argon2id password hashes, old ones upgraded at login."""

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from hub.api.access import AccessConfig
from hub.principals import AccessRole
from tests.api.access.access_fixtures import (
    PASSWORD,
    TEST_HASHER,
    SecuredHub,
    add_users,
    secured_hub,
)

pytestmark = pytest.mark.integration


class Clock:
    """A settable clock shared by the cluster's members."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cluster(database_url: str, clock: Clock) -> Iterator[tuple[SecuredHub, SecuredHub]]:
    """Two hub processes' APIs over one database, as two members of a cluster run them."""
    config = AccessConfig(
        login_max_failures=3,
        login_user_max_failures=5,
        login_window=timedelta(minutes=5),
        clock=clock,
        password_hasher=TEST_HASHER,
    )
    with secured_hub(database_url, config=config) as first:
        add_users(first.access)
        with secured_hub(database_url, config=config) as second:
            yield first, second


def attempt(hub: SecuredHub, address: str, user: str, password: str) -> int:
    with TestClient(hub.app, client=(address, 40000)) as client:
        response = client.post("/auth/login", json={"username": user, "password": password})
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) > 0
        code: int = response.status_code
        return code


def test_failures_pause_an_address_and_then_the_user_name_across_members_and_addresses(
    cluster: tuple[SecuredHub, SecuredHub], clock: Clock
) -> None:
    a, b = cluster
    # three failures from one address on member a pause that address for that user name ...
    assert [attempt(a, "10.0.0.1", "viewer", "nope") for _ in range(3)] == [401] * 3
    assert attempt(a, "10.0.0.1", "viewer", PASSWORD) == 429
    assert attempt(b, "10.0.0.1", "viewer", PASSWORD) == 429  # ... on every member
    assert attempt(b, "10.0.0.1", "centre", PASSWORD) == 200  # not other users
    # two more from other addresses, on member b: five for the user name in the window
    assert attempt(b, "10.0.0.2", "viewer", "nope") == 401
    clock.now += timedelta(minutes=1)
    assert attempt(b, "10.0.0.3", "Viewer", "nope") == 401  # names are counted case-blind
    # now even the right password from a fresh address waits, on both members
    assert attempt(a, "10.0.0.9", "viewer", PASSWORD) == 429
    assert attempt(b, "192.168.7.7", "viewer", PASSWORD) == 429
    assert attempt(a, "10.0.0.9", "centre", PASSWORD) == 200
    # unknown user names are counted too (no telling them apart by the answer)
    assert [attempt(a, "10.0.0.4", "nobody", "x") for _ in range(4)] == [401, 401, 401, 429]
    # the window passes: the user logs in, and the address's own count is forgotten
    clock.now += timedelta(minutes=5)
    assert attempt(a, "10.0.0.9", "viewer", PASSWORD) == 200
    with psycopg.connect(a.db.url) as conn:
        rows = conn.execute(
            "SELECT client_ip FROM login_failures WHERE username = 'viewer' ORDER BY id"
        ).fetchall()
    assert [r[0] for r in rows] == ["10.0.0.1"] * 3 + ["10.0.0.2", "10.0.0.3"]


def scrypt_hash(password: str) -> str:
    """A hash as the hub stored it before argon2id."""
    salt = b"sixteen byte salt"[:16]
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**10, r=8, p=1, dklen=32)
    parts = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt$1024$8$1${parts[0]}${parts[1]}"


def stored_hash(hub: SecuredHub, user: str) -> str:
    record = hub.access.get_user(user)
    assert record is not None
    return record.password_hash


def test_an_old_scrypt_hash_is_replaced_by_argon2id_at_the_next_login(
    cluster: tuple[SecuredHub, SecuredHub],
) -> None:
    hub, _ = cluster
    old = scrypt_hash("an old password")
    hub.access.save_user("li", AccessRole.CENTRE, old)
    assert attempt(hub, "10.0.0.1", "li", "wrong") == 401
    assert stored_hash(hub, "li") == old  # a failed login changes nothing
    assert attempt(hub, "10.0.0.1", "li", "an old password") == 200
    upgraded = stored_hash(hub, "li")
    assert upgraded.startswith("$argon2id$v=19$")
    assert TEST_HASHER.verify(upgraded, "an old password")
    assert attempt(hub, "10.0.0.1", "li", "an old password") == 200
    assert stored_hash(hub, "li") == upgraded  # current: left alone


def test_argon2_hashes_with_weaker_parameters_are_strengthened(database_url: str) -> None:
    stronger = PasswordHasher(time_cost=2, memory_cost=64, parallelism=1)
    with secured_hub(database_url, config=AccessConfig(password_hasher=stronger)) as hub:
        add_users(hub.access)  # hashed with TEST_HASHER, the cheapest parameters
        assert "m=8,t=1,p=1" in stored_hash(hub, "crew")
        assert attempt(hub, "10.0.0.1", "crew", PASSWORD) == 200
        assert "m=64,t=2,p=1" in stored_hash(hub, "crew")
