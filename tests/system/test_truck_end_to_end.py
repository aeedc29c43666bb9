"""A truck scenario over the real broker into a real hub child: sites, permit and zones set
through its API, a truck leaving its corridor and dumping away from any site, then the
violations with their track evidence, the 06011 case at enforcement and the stored track."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hub.cli.local_stack import free_port
from tests.hub_process import api_headers, hub_env, publish_all, running_hub, wait_for
from tests.store.cases.case_fixtures import register_device
from tests.truck_fixtures import SITES, TRUCK, ZONES, lonlat, permit

pytestmark = pytest.mark.integration

FIX_INTERVAL_S = 15


def _position(at: datetime, x_m: float, y_m: float, **fields: object) -> bytes:
    lon, lat = lonlat(x_m, y_m)
    body: dict[str, object] = {
        "ts": round(at.timestamp() * 1000),
        "device_id": TRUCK,
        "lat": lat,
        "lon": lon,
        "speed_kmh": 35.0,
        "heading_deg": 90.0,
        "acc_on": True,
        "body_lifted": False,
        "cover_closed": True,
        "load": "full",
    }
    body.update(fields)
    return orjson.dumps(body)


def _scenario(start: datetime) -> list[bytes]:
    """On the route for 1 min, 300 m north of it for 4 min, then 4 min dumping there."""
    out = []
    for k in range(36):
        t = start + timedelta(seconds=FIX_INTERVAL_S * k)
        if k < 5:
            out.append(_position(t, 100 + 146 * k, 0))
        elif k < 20:
            out.append(_position(t, 830 + 85 * (k - 5), 300))
        else:
            out.append(_position(t, 2100, 300, speed_kmh=0.0, body_lifted=True))
    return out


def test_a_truck_off_its_corridor_dumping_becomes_violations_and_an_enforcement_case(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    register_device(
        database_url,
        TRUCK,
        kind="truck",
        class_code=None,
        attributes='{"company": "苏州市测试渣土运输有限公司", "permit_id": "PMT-1"}',
    )
    port = free_port()
    env = hub_env(
        database_url,
        mqtt_url,
        mqtt_root,
        HUB_API_PORT=str(port),
        HUB_ALARM_TICK_S="0.2",
        HUB_LOG_LEVEL="INFO",
    )
    api = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "hub.log"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    messages = [(f"{mqtt_root}/truck/{TRUCK}/telemetry", m) for m in _scenario(start)]
    with running_hub(env, log_path, api=True):

        def api_up() -> bool:
            try:
                return httpx.get(f"{api}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(api_up, 20, "the API")
        headers = api_headers(database_url)
        with httpx.Client(base_url=api, timeout=10, headers=headers) as client:
            for site in SITES:
                response = client.post("/trucks/sites", json=site.model_dump(mode="json"))
                assert response.status_code == 201
            for zone in ZONES:
                assert (
                    client.post("/trucks/zones", json=zone.model_dump(mode="json")).status_code
                    == 201
                )
            assert (
                client.post("/trucks/zones", json=ZONES[0].model_dump(mode="json")).status_code
                == 409
            )
            assert client.get("/trucks/zones/SZ-1").json()["speed_limit_kmh"] == 30
            assert client.get("/trucks/zones/NOPE").status_code == 404
            any_hour = permit(allowed_hours="00:00-24:00").model_dump(mode="json")
            assert client.post("/trucks/permits", json=any_hour).status_code == 201
            wait_for(
                lambda: "truck context: 3 sites, 1 permits, 2 zones" in log_path.read_text(),
                10,
                "the rules to load the new context",
            )

            publish_all(mqtt_url, messages, f"pub-{mqtt_root}")

            def violations() -> dict[str, dict[str, Any]]:
                found = client.get("/trucks/violations", params={"device_id": TRUCK}).json()
                return {v["alarm_type"]: v for v in found}

            wait_for(
                lambda: {"route_deviation", "illegal_dumping"} <= set(violations()),
                20,
                "route deviation and illegal dumping",
            )
            found = violations()
            assert set(found) == {"route_deviation", "illegal_dumping"}
            deviation, dumping = found["route_deviation"], found["illegal_dumping"]
            assert deviation["details"]["route_distance_m"] > 250
            assert dumping["severity"] == "critical"
            stop_lon, stop_lat = lonlat(2100, 300)
            assert dumping["details"]["stop"]["lon"] == pytest.approx(stop_lon, abs=1e-5)
            assert dumping["details"]["stop"]["lat"] == pytest.approx(stop_lat, abs=1e-5)
            # the evidence: the fixes leading up to the lift, in order, inside the scenario
            evidence = dumping["details"]["track"]
            assert len(evidence) >= 5
            times_ms = [row[0] for row in evidence]
            assert times_ms == sorted(times_ms)
            assert times_ms[0] >= start.timestamp() * 1000
            assert any(row[3] > 0 for row in evidence)  # it drove there

            def filed() -> list[dict[str, Any]]:
                cases: list[dict[str, Any]] = client.get(
                    "/cases", params={"alarm_id": str(dumping["id"])}
                ).json()
                return cases

            wait_for(lambda: bool(filed()), 15, "the dumping case")
            (case,) = filed()
            assert case["class_code"] == "06011"
            assert case["department"] == "enforcement"
            # a route deviation stays in the enforcement views: never filed
            assert client.get("/cases", params={"alarm_id": str(deviation["id"])}).json() == []

            window = {
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
            }
            track = client.get(f"/trucks/{TRUCK}/track", params=window).json()
            assert track["properties"]["fixes"] == len(messages)
            assert track["geometry"]["coordinates"][-1] == pytest.approx(list(lonlat(2100, 300)))
            trips = client.get(f"/trucks/{TRUCK}/trips", params=window).json()
            assert [s["unloaded"] for s in trips["stops"]] == [True]
            positions = client.get("/trucks/positions", params={"state": "unloading"}).json()
            assert [f["id"] for f in positions["features"]] == [TRUCK]
