"""The HTTP API skeleton over a real database: health, metrics, devices, readings, 4xx messages."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.devices.batch import Batch
from hub.devices.decode import DecodeLimits, decode_message
from hub.devices.kinds import Kind
from hub.ingest.metrics import IngestMetrics
from hub.store.database import Database
from hub.store.telemetry import TelemetryWriter
from tests.payload_examples import example

LAMP = {
    "kind": "lighting",
    "lat": 31.3,
    "lon": 120.6,
    "class_code": "01037",
    "department": "市政照明管理处",
    "attributes": {"rated_power_w": 150},
}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    db = Database(database_url, max_size=4)
    db.open()
    metrics = IngestMetrics()
    metrics.received.inc(3)
    try:
        with TestClient(create_app(db, metrics.registry)) as test_client:
            yield test_client
    finally:
        db.close()


def store_readings(database_url: str, device_id: str, count: int) -> datetime:
    now = datetime.now(UTC)
    batch = Batch()
    for i in range(count):
        ts_ms = int((now - timedelta(minutes=count - i)).timestamp() * 1000)
        batch.add(
            decode_message(
                f"city/lighting/{device_id}/telemetry",
                orjson.dumps(example(Kind.LIGHTING, ts_ms, power_w=100 + i)),
                now,
                root="city",
                registry={device_id: Kind.LIGHTING},
                limits=DecodeLimits(),
            )
        )
    with psycopg.connect(database_url, autocommit=True) as conn:
        TelemetryWriter(conn).write_batch(batch)
    return now


def test_health_reports_database_and_mode(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["database"] is True
    assert body["storage_mode"] == "plain"
    assert body["broker"] is False  # an API-only app has no broker connection
    assert body["status"] == "degraded"


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "hub_messages_received_total 3.0" in response.text


def test_device_crud(client: TestClient) -> None:
    created = client.post("/devices", json={"device_id": "L-1", **LAMP})
    assert created.status_code == 201
    again = client.post("/devices", json={"device_id": "L-1", **LAMP})
    assert again.status_code == 409
    assert "PUT /devices/L-1" in again.json()["detail"]
    updated = client.put("/devices/L-1", json={**LAMP, "name": "人民路 12 号"})
    assert updated.json()["name"] == "人民路 12 号"
    assert client.get("/devices/L-1").json()["attributes"] == {"rated_power_w": 150}
    assert [d["device_id"] for d in client.get("/devices?kind=lighting").json()] == ["L-1"]
    assert client.get("/devices?kind=truck").json() == []
    assert client.delete("/devices/L-1").status_code == 204
    missing = client.get("/devices/L-1")
    assert missing.status_code == 404
    assert "not registered" in missing.json()["detail"]


def test_bad_device_input_is_a_422_naming_the_field(client: TestClient) -> None:
    response = client.put("/devices/L-2", json={**LAMP, "lat": 123})
    assert response.status_code == 422
    assert "lat" in str(response.json()["detail"])
    response = client.post("/devices", json={"device_id": "bad id!", **LAMP})
    assert response.status_code == 422
    assert client.get("/devices?kind=toaster").status_code == 422


def test_latest_and_range_of_readings(client: TestClient, database_url: str) -> None:
    client.post("/devices", json={"device_id": "L-9", **LAMP})
    assert client.get("/devices/L-9/latest").status_code == 404
    now = store_readings(database_url, "L-9", 5)
    latest = client.get("/devices/L-9/latest").json()
    assert latest["power_w"] == 104
    page = client.get("/devices/L-9/readings").json()
    assert page["count"] == 5
    assert [r["power_w"] for r in page["readings"]] == [100, 101, 102, 103, 104]
    start = (now - timedelta(minutes=3, seconds=30)).isoformat()
    page = client.get("/devices/L-9/readings", params={"start": start, "limit": 2}).json()
    assert [r["power_w"] for r in page["readings"]] == [102, 103]
    bad = client.get("/devices/L-9/readings", params={"start": now.isoformat(), "end": start})
    assert bad.status_code == 422
    assert "before" in bad.json()["detail"]


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/metrics", "/devices", "/devices/{device_id}/readings"} <= set(paths)
