"""Parking operators' API over a real database: import, occupancy now and at a past time,
history, flows, overstays, sensor health, guidance and Smart Data Models entities."""

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.api.parking import router as parking_router
from hub.store.database import Database
from hub.store.telemetry import TelemetryWriter
from tests.spot_reports import Report, spot_report_batch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
LOT = {
    "type": "Feature",
    "id": "LOT-0001",
    "properties": {"name": "人民路停车场", "capacity": 3, "grid_code": "320506001001001"},
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [[120.600, 31.300], [120.601, 31.300], [120.601, 31.301], [120.600, 31.300]]
        ],
    },
}
ZONE = {
    "type": "Feature",
    "id": "PZ-0001",
    "properties": {"name": "干将路 A 段", "capacity": 2, "street": "干将路", "max_stay_min": 120},
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [[120.620, 31.310], [120.621, 31.310], [120.621, 31.3101], [120.620, 31.310]]
        ],
    },
}
# spot -> area attribute
SPOTS = {
    "PS-1": {"lot_id": "LOT-0001"},
    "PS-2": {"lot_id": "LOT-0001"},
    "PS-3": {"lot_id": "LOT-0001"},
    "PS-4": {"zone_id": "PZ-0001"},
    "PS-5": {"zone_id": "PZ-0001"},
}


def _register_spots(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        for device_id, attrs in SPOTS.items():
            conn.execute(
                "INSERT INTO devices (device_id, kind, lat, lon, attributes)"
                " VALUES (%s, 'parking', 31.3005, 120.6005, %s)",
                (device_id, orjson.dumps(attrs).decode()),
            )


def _store(database_url: str, reports: list[Report]) -> None:
    batch = spot_report_batch(reports, datetime.now(UTC), battery_pct=15.0)
    with psycopg.connect(database_url, autocommit=True) as conn:
        TelemetryWriter(conn).write_batch(batch)


@pytest.fixture
def api(db: Database) -> Iterator[TestClient]:
    app = create_app(db, CollectorRegistry(), routers=[parking_router])
    with TestClient(app) as client:
        yield client


@pytest.fixture
def now() -> datetime:
    """The wall clock, kept off the turn of the hour: hourly history buckets start on the
    hour, and a morning stored from within a minute of it puts PS-1's departure and PS-3's
    arrival into other buckets (the test failed when run at hh:00)."""
    wall = datetime.now(UTC).replace(microsecond=0)
    return wall - timedelta(minutes=2) if wall.minute in (0, 59) else wall


@pytest.fixture
def parked(api: TestClient, database_url: str, now: datetime) -> datetime:
    """Areas imported through the API, spots registered, a morning of reports stored."""
    lot = api.post("/parking/import?kind=lot", content=orjson.dumps(LOT))
    assert lot.status_code == 200, lot.text
    assert lot.json() == {"kind": "lot", "imported": 1, "spots_updated": 0}
    _register_spots(database_url)
    zone = api.post(
        "/parking/import?kind=zone",
        content=orjson.dumps({"type": "FeatureCollection", "features": [ZONE]}),
    )
    assert zone.json() == {"kind": "zone", "imported": 1, "spots_updated": 2}
    t0 = now - timedelta(hours=4)
    _store(
        database_url,
        [
            # PS-1: a car from t0 to t0+1h, heartbeats in between
            ("PS-1", t0, True),
            ("PS-1", t0 + timedelta(minutes=30), True),
            ("PS-1", t0 + timedelta(hours=1), False),
            ("PS-1", t0 + timedelta(hours=2), False),
            # PS-2: free, and a neighbour's car flips the reading for 20 s
            ("PS-2", t0, False),
            ("PS-2", t0 + timedelta(minutes=90), True),
            ("PS-2", t0 + timedelta(minutes=90, seconds=20), False),
            # PS-3: a car arrives 30 s before t0+2h and stays
            ("PS-3", t0, False),
            ("PS-3", t0 + timedelta(hours=2) - timedelta(seconds=30), True),
            ("PS-3", t0 + timedelta(hours=3), True),
            # PS-4: parked for the whole morning (an overstay in a 120 min zone)
            ("PS-4", t0, True),
            ("PS-4", t0 + timedelta(hours=3), True),
            # PS-5: never reports
        ],
    )
    return t0


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def test_occupancy_now_and_at_a_past_time(api: TestClient, parked: datetime) -> None:
    lots = _by_id(api.get("/parking/lots").json())
    assert lots["LOT-0001"] | {"at": None} == lots["LOT-0001"] | {
        "at": None,
        "sensors": 3,
        "occupied": 1,
        "free": 2,
        "unknown": 0,
        "occupancy": round(1 / 3, 4),
    }
    zones = _by_id(api.get("/parking/zones").json())
    assert (zones["PZ-0001"]["occupied"], zones["PZ-0001"]["unknown"]) == (1, 1)
    assert zones["PZ-0001"]["max_stay_min"] == 120

    # During the jitter PS-2 is free; PS-3's car came 30 s before: it counts in hindsight.
    jitter = parked + timedelta(minutes=90, seconds=10)
    at_jitter = _by_id(api.get("/parking/lots", params={"at": jitter.isoformat()}).json())
    assert at_jitter["LOT-0001"]["occupied"] == 0
    at_two = parked + timedelta(hours=2)
    at_arrival = _by_id(api.get("/parking/lots", params={"at": at_two.isoformat()}).json())
    assert at_arrival["LOT-0001"]["occupied"] == 1


def test_area_detail_history_and_flows(api: TestClient, parked: datetime) -> None:
    detail = api.get("/parking/lots/LOT-0001").json()
    assert {s["device_id"]: s["status"] for s in detail["spots"]} == {
        "PS-1": "free",
        "PS-2": "free",
        "PS-3": "occupied",
    }
    assert api.get("/parking/lots/LOT-9999").status_code == 404

    history = api.get(
        "/parking/lots/LOT-0001/history",
        params={
            "start": parked.isoformat(),
            "end": (parked + timedelta(hours=3)).isoformat(),
            "bucket_min": 60,
        },
    ).json()
    assert [b["occupied"] for b in history][-3:] == [1, 0, 1]
    assert sum(b["arrivals"] for b in history) == 1  # PS-3; the jitter is not an arrival
    assert sum(b["departures"] for b in history) == 1  # PS-1

    flows = api.get(
        "/parking/lots/LOT-0001/flows",
        params={"start": parked.isoformat(), "end": (parked + timedelta(hours=3)).isoformat()},
    ).json()
    assert (flows["arrivals"], flows["departures"], flows["average_dwell_min"]) == (1, 1, 60.0)
    assert api.get("/parking/lots/LOT-0001/flows?start=2026-01-02&end=2026-01-01").status_code == (
        422
    )


def test_overstays_and_sensor_health(api: TestClient, database_url: str, parked: datetime) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO alarms (source_kind, source_id, alarm_type, severity, raised_at,"
            " last_seen_at, message) VALUES ('device', 'PS-4', 'overstay', 'minor', %s, %s,"
            " 'parked 180 min')",
            (parked + timedelta(hours=2), parked + timedelta(hours=3)),
        )
        conn.execute(
            "INSERT INTO alarms (source_kind, source_id, alarm_type, severity, raised_at,"
            " last_seen_at) VALUES ('device', 'PS-1', 'stuck_sensor', 'minor', %s, %s)",
            (parked, parked),
        )
    overstays = api.get("/parking/overstays").json()
    assert [(o["device_id"], o["zone_id"], o["max_stay_min"]) for o in overstays] == [
        ("PS-4", "PZ-0001", 120)
    ]
    health = api.get("/parking/health").json()
    assert (health["sensors"], health["stuck"], health["never_reported"]) == (5, 1, 1)
    assert health["low_battery"] == 4  # every reporting sensor sent 15 %
    lot_health = api.get("/parking/health", params={"lot_id": "LOT-0001"}).json()
    assert {s["device_id"] for s in lot_health["spots"]} == {"PS-1", "PS-2", "PS-3"}
    # a stuck sensor's spot is unknown now, not free
    lots = _by_id(api.get("/parking/lots").json())
    assert (lots["LOT-0001"]["free"], lots["LOT-0001"]["unknown"]) == (1, 1)


def test_guidance_and_smart_data_models(api: TestClient, parked: datetime) -> None:
    near_lot = api.get("/parking/guidance", params={"lat": 31.3004, "lon": 120.6004}).json()
    assert [(g["id"], g["free"]) for g in near_lot] == [("LOT-0001", 2)]
    assert near_lot[0]["distance_m"] < 100
    far = api.get(
        "/parking/guidance", params={"lat": 31.3004, "lon": 120.6004, "max_distance_m": 50_000}
    ).json()
    assert [g["id"] for g in far] == ["LOT-0001"]  # the zone has no free spot it knows of

    spots = {e["id"]: e for e in api.get("/parking/ngsi/ParkingSpot").json()}
    ps3 = spots["urn:ngsi-ld:ParkingSpot:PS-3"]
    assert (ps3["type"], ps3["status"], ps3["category"]) == (
        "ParkingSpot",
        "occupied",
        ["offStreet"],
    )
    assert ps3["refParkingSite"] == "urn:ngsi-ld:OffStreetParking:LOT-0001"
    assert spots["urn:ngsi-ld:ParkingSpot:PS-5"]["status"] == "unknown"
    (lot,) = api.get("/parking/ngsi/OffStreetParking").json()
    assert {k: lot[k] for k in ("type", "totalSpotNumber", "availableSpotNumber")} == {
        "type": "OffStreetParking",
        "totalSpotNumber": 3,
        "availableSpotNumber": 2,
    }
    assert (lot["occupiedSpotNumber"], lot["occupancy"]) == (1, round(1 / 3, 4))
    (zone,) = api.get("/parking/ngsi/OnStreetParking").json()
    assert (zone["type"], zone["maximumParkingDuration"]) == ("OnStreetParking", "PT120M")


def test_import_rejects_bad_geojson(api: TestClient) -> None:
    bad = dict(LOT, geometry={"type": "Point", "coordinates": [120.6, 31.3]})
    answer = api.post("/parking/import?kind=lot", content=orjson.dumps(bad))
    assert answer.status_code == 422
    assert "LOT-0001" in answer.json()["detail"]


def test_cli_imports_lots_and_zones(database_url: str, tmp_path: Path) -> None:
    _register_spots(database_url)
    lots = tmp_path / "lots.geojson"
    zones = tmp_path / "zones.geojson"
    lots.write_bytes(orjson.dumps(LOT) + b"\n")
    zones.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": [ZONE]}))
    env = {"HUB_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub",
            "parking",
            "import",
            "--lots",
            str(lots),
            "--zones",
            str(zones),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "imported 2 lot(s)/zone(s); max stay set on 2 spot(s)" in done.stdout
    with psycopg.connect(database_url) as conn:
        stays = conn.execute(
            "SELECT device_id, attributes -> 'max_stay_min' FROM devices"
            " WHERE attributes ? 'max_stay_min' ORDER BY device_id"
        ).fetchall()
    assert stays == [("PS-4", 120), ("PS-5", 120)]
