"""Truck sites, permits and zones through the CLI, the store and the API on a real PostgreSQL."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.__main__ import main
from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.ingest.metrics import IngestMetrics
from hub.rules.truck_context import TruckContextSource
from hub.rules.truck_records import feature_collection, site_feature
from hub.store.database import Database
from hub.store.trucks import TruckContextRefresher, TruckStore
from tests.truck_fixtures import SITES, T0, TRUCK, lonlat, permit

pytestmark = pytest.mark.integration


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    app = create_app(db, IngestMetrics().registry, routers=domain_routers())
    with TestClient(app) as test_client:
        yield test_client


def test_cli_imports_sites_and_permits_and_the_rules_context_follows_edits(
    db: Database, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = tmp_path / "sites.geojson"
    sites.write_bytes(orjson.dumps(feature_collection([site_feature(s) for s in SITES])))
    permits = tmp_path / "permits.json"
    permits.write_bytes(orjson.dumps([permit().model_dump(mode="json")]))
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps([{"permit_id": "P-X"}]))
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    assert main(["sites", "import", str(sites)]) == 0
    assert main(["permits", "import", str(permits)]) == 0
    assert main(["permits", "import", str(bad)]) == 1
    store = TruckStore(db)
    source = TruckContextSource()
    refresher = TruckContextRefresher(store, source)
    assert refresher.refresh() is True
    assert len(source.current.sites) == 3
    assert list(source.current.permits_by_truck) == [TRUCK]
    assert refresher.refresh() is False  # nothing changed, nothing reloaded
    assert store.delete_permit("PMT-1") is True
    assert refresher.refresh() is True
    assert source.current.permits_by_truck == {}


def test_api_crud_positions_track_and_trips(db: Database, client: TestClient) -> None:
    site = SITES[0].model_dump(mode="json")
    assert client.post("/trucks/sites", json=site).status_code == 201
    assert client.post("/trucks/sites", json=site).status_code == 409
    for other in SITES[1:]:
        assert (
            client.put(
                f"/trucks/sites/{other.site_id}", json=other.model_dump(mode="json")
            ).status_code
            == 200
        )
    listed = client.get("/trucks/sites", params={"site_type": "disposal"}).json()
    assert [f["id"] for f in listed["features"]] == ["DS-1", "DS-2"]
    body = permit().model_dump(mode="json")
    assert client.post("/trucks/permits", json=body).status_code == 201
    assert client.get("/trucks/permits/PMT-1").json()["corridor_m"] == 50.0
    assert (
        client.post(
            "/trucks/permits", json={**body, "permit_id": "P-2", "allowed_hours": "25:00-01:00"}
        ).status_code
        == 422
    )
    assert client.delete("/trucks/sites/NOPE").status_code == 404

    db.upsert_devices(
        [
            DeviceRecord(
                device_id=TRUCK,
                kind=Kind.TRUCK,
                lat=31.3,
                lon=120.62,
                attributes={"company": "苏州市测试渣土运输有限公司", "permit_id": "PMT-1"},
            )
        ]
    )
    rows = []
    for k in range(40):  # 10 min loading at CS-1, then 10 min driving east
        t = T0 + timedelta(seconds=30 * k)
        x = 0.0 if k < 20 else (k - 20) * 300.0
        lon, lat = lonlat(x, 0.0)
        speed = 0.0 if k < 20 else 36.0
        rows.append((TRUCK, t, t, lat, lon, speed, 90.0, True, False, True, "full"))
    with psycopg.connect(db.url) as conn:
        conn.cursor().executemany(
            "INSERT INTO telemetry_truck (device_id, ts, received_at, lat, lon, speed_kmh,"
            " heading_deg, acc_on, body_lifted, cover_closed, load)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    positions = client.get(
        "/trucks/positions", params={"company": "苏州市测试渣土运输有限公司"}
    ).json()
    assert [f["id"] for f in positions["features"]] == [TRUCK]
    assert positions["features"][0]["properties"]["state"] == "moving"
    assert client.get("/trucks/positions", params={"state": "parked"}).json()["features"] == []
    assert client.get("/trucks/positions", params={"company": "other"}).json()["features"] == []
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    track = client.get(f"/trucks/{TRUCK}/track", params={**window, "max_points": 5}).json()
    assert track["properties"]["fixes"] == 40
    assert 2 <= track["properties"]["points"] <= 5
    trips = client.get(f"/trucks/{TRUCK}/trips", params=window).json()
    assert [s["site_id"] for s in trips["stops"]] == ["CS-1"]
    assert len(trips["trips"]) == 1
    assert client.get("/trucks/violations").json() == []
