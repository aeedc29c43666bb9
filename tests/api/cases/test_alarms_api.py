"""The alarm API over a real database: list and filter, acknowledge, clear, and the fan-out."""

import asyncio

import pytest
from fastapi.testclient import TestClient

from hub.rules.alarm_fanout import AlarmFanout
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import SignalAction
from hub.store.alarms import AlarmStore
from hub.store.database import Database
from tests.store.cases.case_fixtures import T0, alarm_signal, at, register_device

pytestmark = pytest.mark.integration


def test_alarm_lifecycle_through_the_api(
    client: TestClient, db: Database, database_url: str, fanout: AlarmFanout
) -> None:
    register_device(database_url, "mh-1")
    register_device(database_url, "lamp-1", kind="lighting", class_code="01037")
    store = AlarmStore(db)
    store.apply(
        [
            alarm_signal(SignalAction.RAISE, T0),
            alarm_signal(
                SignalAction.RAISE,
                at(1),
                source_id="lamp-1",
                alarm_type=AlarmType.LAMP_OUT,
                severity=Severity.MINOR,
            ),
        ],
        T0,
    )
    loop = asyncio.new_event_loop()
    subscriber = fanout.subscribe(loop)

    def listed(query: str) -> list[str]:
        response = client.get(f"/alarms?{query}")
        assert response.status_code == 200, response.text
        return [f"{a['source_id']}/{a['alarm_type']}" for a in response.json()]

    assert listed("") == ["lamp-1/lamp_out", "mh-1/tilt"]
    assert listed("type=tilt") == ["mh-1/tilt"]
    assert listed("source=lamp-1") == ["lamp-1/lamp_out"]
    assert listed("kind=lighting") == ["lamp-1/lamp_out"]
    assert listed("source_kind=device&severity=minor") == ["lamp-1/lamp_out"]
    assert listed("state=active&open=true") == ["lamp-1/lamp_out", "mh-1/tilt"]
    assert client.get("/alarms?state=sleeping").status_code == 422
    assert client.get("/alarms?since=2026-03-16T00:00:00").status_code == 422

    tilt_id = client.get("/alarms?type=tilt").json()[0]["id"]
    assert client.post(f"/alarms/{tilt_id}/acknowledge").status_code == 422  # who?
    acked = client.post(
        f"/alarms/{tilt_id}/acknowledge", json={"actor_id": "li.na", "note": "crew sent"}
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == "li.na"
    again = client.post(f"/alarms/{tilt_id}/acknowledge", headers={"X-Actor-Id": "wang"})
    assert again.status_code == 409
    assert "already acknowledged by li.na" in again.json()["detail"]
    cleared = client.post(f"/alarms/{tilt_id}/clear", headers={"X-Actor-Id": "li.na"})
    assert cleared.status_code == 200
    assert cleared.json()["state"] == "cleared"
    assert cleared.json()["cleared_by"] == "li.na"
    assert client.post(f"/alarms/{tilt_id}/clear", json={"actor_id": "x"}).status_code == 409
    assert client.post("/alarms/99999/clear", json={"actor_id": "x"}).status_code == 404
    assert client.get("/alarms/99999").status_code == 404
    assert client.get(f"/alarms/{tilt_id}").json()["state"] == "cleared"
    assert listed("open=true") == ["lamp-1/lamp_out"]
    assert listed("state=cleared") == ["mh-1/tilt"]

    # The people's changes went to the fan-out, in order.
    loop.run_until_complete(asyncio.sleep(0))
    received = []
    while not subscriber.queue.empty():
        received.append(subscriber.queue.get_nowait())
    fanout.unsubscribe(subscriber)
    loop.close()
    assert [d["change"] for d in received if d is not None] == ["acknowledged", "cleared"]


def test_a_slow_subscriber_is_cut_off_not_waited_for() -> None:
    fanout = AlarmFanout(max_pending=2)
    loop = asyncio.new_event_loop()
    subscriber = fanout.subscribe(loop)
    subscriber.offer([{"change": "raised"}] * 5)
    assert subscriber.overflowed
    items = []
    while not subscriber.queue.empty():
        items.append(subscriber.queue.get_nowait())
    assert items == [{"change": "raised"}, {"change": "raised"}, None]
    loop.close()
    fanout.publish_changes([])
    assert fanout.subscribers == 1
