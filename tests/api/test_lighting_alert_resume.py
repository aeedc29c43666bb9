"""Crew alert stream: numbered events, `Last-Event-ID` resume and gaps (a real uvicorn
server on a free port; the alerts come through the fan-out as the publisher hands them)."""

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from hub.api.lighting import router
from hub.rules.crew_alerts import CrewAlertFanout

pytestmark = pytest.mark.integration


def alert(n: int) -> dict[str, object]:
    return {"alert": "new", "alarm_id": n, "source_id": f"LMP-{n:06d}"}


def test_the_log_numbers_alerts_and_knows_what_a_resume_missed() -> None:
    fanout = CrewAlertFanout(keep=3)
    fanout.publish_documents([alert(1), alert(2)])
    first, second = fanout.after(f"{fanout.epoch}-0")[0]
    assert (first["event_id"], second["event_id"]) == (f"{fanout.epoch}-1", f"{fanout.epoch}-2")
    assert fanout.after(f"{fanout.epoch}-1") == ([second], True)
    fanout.publish_documents([alert(3), alert(4), alert(5)])
    missed, complete = fanout.after(f"{fanout.epoch}-1")
    assert ([d["alarm_id"] for d in missed], complete) == ([3, 4, 5], False)  # 2 was dropped
    restarted, complete = fanout.after("18c0ffee-9")  # an id of an earlier process
    assert (len(restarted), complete) == (3, False)


@pytest.fixture
def served() -> Iterator[tuple[str, CrewAlertFanout]]:
    fanout = CrewAlertFanout()
    app = FastAPI()
    app.include_router(router)
    app.state.lighting_alert_fanout = fanout
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="alert-stream-api")
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)  # waiting for a real server to listen, not for the code under test
        yield f"http://127.0.0.1:{port}", fanout
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def read_events(url: str, headers: dict[str, str], count: int) -> list[tuple[str, str, str]]:
    """(id, event, data) of the first `count` events."""
    events: list[tuple[str, str, str]] = []
    fields: dict[str, str] = {}
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
                continue
            if "event" in fields:
                events.append((fields.get("id", ""), fields["event"], fields.get("data", "")))
                if len(events) == count:
                    return events
            fields = {}
    return events


def test_a_tablet_resumes_after_its_last_event_id(served: tuple[str, CrewAlertFanout]) -> None:
    base, fanout = served
    url = f"{base}/lighting/alerts/stream"
    fanout.publish_documents([alert(1), alert(2), alert(3)])
    resumed = read_events(url, {"Last-Event-ID": f"{fanout.epoch}-1"}, 2)
    assert [(i, e) for i, e, _ in resumed] == [
        (f"{fanout.epoch}-2", "new"),
        (f"{fanout.epoch}-3", "new"),
    ]
    assert orjson.loads(resumed[0][2])["alarm_id"] == 2
    stale = read_events(url, {"Last-Event-ID": "1-5"}, 1)
    assert stale[0][1] == "gap"
