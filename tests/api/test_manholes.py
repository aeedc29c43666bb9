"""Manhole covers' API over a real database: list, one cover, baselines, recalibrate request."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.api.manholes import router as manholes_router
from hub.store import manholes as store
from hub.store.database import Database

pytestmark = pytest.mark.integration

TS = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def api(database_url: str, db: Database) -> Iterator[TestClient]:
    with psycopg.connect(database_url) as conn:
        for device_id, baseline, cover_type in (("MH-1", 2.0, "gas"), ("MH-2", 0.5, "sewage")):
            conn.execute(
                "INSERT INTO devices (device_id, kind, lat, lon, class_code, attributes)"
                " VALUES (%s, 'manhole', 31.3, 120.6, '01011', %s)",
                (
                    device_id,
                    orjson.dumps(
                        {"baseline_tilt_deg": baseline, "cover_type": cover_type}
                    ).decode(),
                ),
            )
        conn.execute(
            "INSERT INTO telemetry_manhole (device_id, ts, received_at, tilt_deg, cover_open,"
            " battery_pct) VALUES ('MH-1', %s, %s, 14.5, false, 77)",
            (TS, TS),
        )
        conn.execute(
            "INSERT INTO alarms (source_kind, source_id, alarm_type, severity, raised_at,"
            " last_seen_at) VALUES ('device', 'MH-1', 'tilt', 'major', %s, %s)",
            (TS, TS),
        )
        store.record_install_baselines(conn)
    with TestClient(create_app(db, CollectorRegistry(), routers=[manholes_router])) as client:
        yield client


def test_list_and_one_cover(api: TestClient) -> None:
    covers = {c["device_id"]: c for c in api.get("/manholes").json()}
    assert (covers["MH-1"]["status"], covers["MH-1"]["tilt_from_baseline_deg"]) == ("alarm", 12.5)
    assert covers["MH-1"]["open_alarms"] == ["tilt"]
    assert covers["MH-2"]["status"] == "never_reported"
    assert [c["device_id"] for c in api.get("/manholes?alarm_type=tilt").json()] == ["MH-1"]
    assert api.get("/manholes/MH-2").json()["cover_type"] == "sewage"
    assert api.get("/manholes/MH-9").status_code == 404


def test_recalibrate_records_a_pending_command(api: TestClient) -> None:
    answer = api.post("/manholes/MH-1/recalibrate", headers={"X-Actor-Id": "op-7"})
    assert answer.status_code == 202
    body = answer.json()
    assert (body["state"], body["baseline_tilt_deg"], body["previous_tilt_deg"]) == (
        "pending",
        14.5,
        2.0,
    )
    assert body["actor_id"] == "op-7"
    assert body["command_id"].startswith("recal-")
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    # the baseline stays until the cover acknowledges
    assert api.get("/manholes/MH-1").json()["baseline_tilt_deg"] == 2.0
    history = api.get("/manholes/MH-1/calibrations").json()
    assert [(c["source"], c["state"]) for c in history] == [
        ("recalibrate", "pending"),
        ("install", "applied"),
    ]
    given = api.post("/manholes/MH-2/recalibrate", json={"baseline_tilt_deg": 1.25, "ttl_s": 60})
    assert (given.status_code, given.json()["baseline_tilt_deg"]) == (202, 1.25)


def test_recalibrate_refusals(api: TestClient) -> None:
    assert api.post("/manholes/MH-2/recalibrate").status_code == 409  # no tilt reported yet
    assert api.post("/manholes/MH-9/recalibrate").status_code == 404
    assert api.post("/manholes/MH-1/recalibrate", json={"baseline_tilt_deg": 200}).status_code == (
        422
    )
