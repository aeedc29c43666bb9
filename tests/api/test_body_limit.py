"""The API refuses bodies over its limit with 413 before parsing them, declared or chunked.

The app runs under uvicorn on a real port so chunked transfer encoding is real HTTP/1.1.
"""

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.cli.local_stack import free_port
from hub.store.database import Database

pytestmark = pytest.mark.integration

LIMIT = 4096


@pytest.fixture
def api(database_url: str) -> Iterator[httpx.Client]:
    """The API with a 4 KiB body limit, served by uvicorn in a thread."""
    db = Database(database_url, max_size=2)
    db.open()
    app = create_app(db, CollectorRegistry(), max_body_bytes=LIMIT)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="body-limit-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.close()


def device_body(device_id: str, size: int) -> bytes:
    """A valid POST /devices body of exactly `size` bytes (padded in an attribute)."""
    record: dict[str, Any] = {"device_id": device_id, "kind": "lighting", "lat": 31.3}
    record |= {"lon": 120.6, "attributes": {"note": ""}}
    padding = size - len(orjson.dumps(record))
    assert padding >= 0
    record["attributes"]["note"] = "x" * padding
    body = orjson.dumps(record)
    assert len(body) == size
    return body


def chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    """The body in pieces, so httpx sends it chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert f"limit of {LIMIT} bytes" in response.json()["detail"]


def test_a_declared_length_over_the_limit_is_refused(api: httpx.Client) -> None:
    body = device_body("lamp-big", LIMIT + 1)
    response = api.post("/devices", content=body, headers={"Content-Type": "application/json"})
    assert_refused(response)
    assert api.get("/devices/lamp-big").status_code == 404


def test_the_declared_length_is_refused_before_the_body_is_sent(api: httpx.Client) -> None:
    # Only the headers go out; a server that waited for the 10 MB would time out here.
    url = httpx.URL(str(api.base_url))
    with socket.create_connection((url.host, url.port or 80), timeout=5) as conn:
        conn.sendall(
            b"POST /devices HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n"
        )
        answer = conn.makefile("rb").read().decode()  # until the server closes
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413"), head
    assert "connection: close" in head.lower()
    assert f"limit of {LIMIT} bytes" in orjson.loads(body)["detail"]


def test_a_chunked_body_over_the_limit_is_refused(api: httpx.Client) -> None:
    body = device_body("lamp-chunked", LIMIT + 500)
    response = api.post(
        "/devices", content=chunks(body), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_refused(response)
    assert api.get("/devices/lamp-chunked").status_code == 404


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_body_at_the_limit_is_accepted(api: httpx.Client, chunked: bool) -> None:
    device_id = f"lamp-{'chunked' if chunked else 'declared'}"
    body = device_body(device_id, LIMIT)
    content = chunks(body) if chunked else body
    response = api.post("/devices", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert len(api.get(f"/devices/{device_id}").json()["attributes"]["note"]) > LIMIT // 2
