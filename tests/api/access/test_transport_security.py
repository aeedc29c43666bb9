"""Security headers on console and API answers, the `Secure` session cookie over TLS, and
X-Forwarded-For / X-Forwarded-Proto believed only from configured proxies."""

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.api.access import AccessConfig
from hub.api.proxies import forwarded_client
from hub.api.security_headers import API_POLICY, CONSOLE_POLICY
from tests.api.access.access_fixtures import (
    PASSWORD,
    TEST_HASHER,
    SecuredHub,
    add_users,
    secured_hub,
)

pytestmark = pytest.mark.integration

PROXY = "10.9.0.1"
PROXIES = (ipaddress.ip_network("10.9.0.0/30"), ipaddress.ip_network("fd00::/64"))


@pytest.fixture
def hub(database_url: str) -> Iterator[SecuredHub]:
    config = AccessConfig(
        password_hasher=TEST_HASHER, trusted_proxies=PROXIES, login_max_failures=3
    )
    with secured_hub(database_url, config=config) as secured:
        add_users(secured.access)
        yield secured


def test_console_and_api_answers_carry_the_security_headers(hub: SecuredHub) -> None:
    with TestClient(hub.app) as client:
        answers: dict[str, str | None] = {
            "/console/": CONSOLE_POLICY,
            "/console/console.js": CONSOLE_POLICY,
            "/console/console.css": CONSOLE_POLICY,
            "/docs": None,  # the docs page's own policy, or DOCS_POLICY; checked below
            "/health": API_POLICY,
            "/auth/me": API_POLICY,  # a 401
            "/cases": API_POLICY,
            "/open311/v2/services.xml": API_POLICY,
            "/no/such/route": API_POLICY,  # a 403 of the access check
        }
        for path, policy in answers.items():
            response = client.get(path, follow_redirects=False)
            headers = response.headers
            if policy is not None:
                assert headers["content-security-policy"] == policy, path
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["x-frame-options"] == "DENY", path
            assert headers["referrer-policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in CONSOLE_POLICY
        assert "'unsafe-inline'" not in CONSOLE_POLICY  # the console runs only its own files
        assert "script-src 'self';" in CONSOLE_POLICY
        big = client.post("/auth/login", content=b"x" * (2 * 1024 * 1024))  # 413 of the limits
        assert big.headers["x-content-type-options"] == "nosniff"


def login(client: TestClient, **kwargs: Any) -> str:
    response = client.post(
        "/auth/login", json={"username": "centre", "password": PASSWORD}, **kwargs
    )
    assert response.status_code == 200, response.text
    return str(response.headers["set-cookie"])


def last_login_address(hub: SecuredHub) -> str:
    (line,) = hub.access.search_audit(path_prefix="/auth/login", limit=1)
    address: str = line["client_ip"]
    return address


def test_the_session_cookie_is_secure_over_tls_directly_or_via_a_trusted_proxy(
    hub: SecuredHub,
) -> None:
    with TestClient(hub.app, base_url="https://hub.example") as client:
        assert "Secure" in login(client)
    with TestClient(hub.app) as client:
        assert "Secure" not in login(client)
    # TLS ends at a trusted proxy, which says so
    with TestClient(hub.app, client=(PROXY, 5000)) as client:
        cookie = login(client, headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"})
        assert "Secure" in cookie
        assert last_login_address(hub) == "1.2.3.4"
    # anyone else saying so is not believed
    with TestClient(hub.app, client=("198.51.100.2", 5000)) as client:
        cookie = login(client, headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"})
        assert "Secure" not in cookie
        assert last_login_address(hub) == "198.51.100.2"


def test_a_forged_forwarded_for_does_not_escape_the_login_throttle(hub: SecuredHub) -> None:
    codes = []
    with TestClient(hub.app, client=("198.51.100.2", 5000)) as client:
        for n in range(5):
            response = client.post(
                "/auth/login",
                json={"username": "viewer", "password": "nope"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            codes.append(response.status_code)
    assert codes == [401, 401, 401, 429, 429]
    # through the trusted proxy each real client is its own address
    with TestClient(hub.app, client=(PROXY, 5000)) as client:
        response = client.post(
            "/auth/login",
            json={"username": "viewer", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.50"},
        )
    assert response.status_code == 200


def test_the_caller_is_the_right_most_address_no_trusted_proxy_added() -> None:
    assert forwarded_client("10.9.0.1", "1.1.1.1, 2.2.2.2", PROXIES) == "2.2.2.2"
    # a chain of trusted proxies is walked through; a client's own prefix is ignored
    assert forwarded_client("10.9.0.1", "6.6.6.6, 2.2.2.2, 10.9.0.2", PROXIES) == "2.2.2.2"
    assert forwarded_client("10.9.0.1", "10.9.0.2, 10.9.0.3", PROXIES) == "10.9.0.2"
    assert forwarded_client("10.9.0.1", "[2001:db8::7]:4711", PROXIES) == "2001:db8::7"
    assert forwarded_client("10.9.0.1", "2.2.2.2:8080", PROXIES) == "2.2.2.2"
    assert forwarded_client("fd00::1", "2.2.2.2", PROXIES) == "2.2.2.2"
    # garbage stops the walk at the last trusted hop; untrusted peers and no setting: the peer
    assert forwarded_client("10.9.0.1", "2.2.2.2, not-an-ip", PROXIES) == "10.9.0.1"
    assert forwarded_client("10.9.0.9", "2.2.2.2", PROXIES) == "10.9.0.9"
    assert forwarded_client("10.9.0.1", "2.2.2.2", ()) == "10.9.0.1"
    assert forwarded_client("10.9.0.1", "", PROXIES) == "10.9.0.1"
