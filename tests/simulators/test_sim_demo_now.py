"""A demo-like run (the simulators' default start and speed, a hub with its API) gives parking
operators real numbers "now": the replay of the history since yesterday catches up with the
wall clock, so the spots' newest reports are recent and occupancy is not all unknown."""

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hub.__main__ import main as hub_main
from hub.cli.local_stack import free_port
from tests.hub_process import ROOT, api_headers, hub_env, running_hub, wait_for

pytestmark = pytest.mark.integration


def _generate_and_register(city: Path, database_url: str) -> None:
    subprocess.run(
        [
            *(sys.executable, "-m", "simulators", "city", "--out", str(city), "--seed", "3"),
            *("--lamps", "30", "--lamps-per-cabinet", "30", "--trucks", "2"),
            *("--manholes", "10", "--spots", "40", "--quiet"),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUB_DATABASE_URL", database_url)
        for argv in (
            ["devices", "import", str(city / "devices.csv")],
            [
                *("parking", "import", "--lots", str(city / "lots.geojson")),
                *("--zones", str(city / "zones.geojson")),
            ],
        ):
            assert hub_main(argv) == 0, argv


def test_default_run_reports_occupancy_now(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    city = tmp_path / "city"
    _generate_and_register(city, database_url)
    port = free_port()
    env = hub_env(
        database_url, mqtt_url, mqtt_root, HUB_API_PORT=str(port), HUB_MODBUS_ENABLED="false"
    )
    api = f"http://127.0.0.1:{port}"
    with running_hub(env, tmp_path / "hub.log", api=True):
        auth = api_headers(database_url, "parking_operator")
        # the demo's command line, less its files: no --start and no --speed
        simulators = subprocess.Popen(
            [
                *(sys.executable, "-m", "simulators", "run", "--city", str(city)),
                *("--mqtt-url", mqtt_url, "--root", mqtt_root, "--quiet"),
                *("--random-faults", "3", "--random-within", "6h"),
                *("--truth", str(tmp_path / "truth.jsonl")),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            counts: dict[str, int] = {}

            def settled_spots() -> bool:
                counts.clear()
                for kind in ("lots", "zones"):
                    response = httpx.get(f"{api}/parking/{kind}", headers=auth, timeout=5)
                    response.raise_for_status()
                    for area in response.json():
                        for key in ("sensors", "occupied", "free", "unknown"):
                            counts[key] = counts.get(key, 0) + int(area[key])
                return counts.get("occupied", 0) + counts.get("free", 0) > 0

            wait_for(settled_spots, 120, "parking occupancy now from the simulators")
            assert counts["sensors"] == 40
            assert counts["unknown"] < counts["sensors"]
            if counts["free"]:
                guidance = httpx.get(
                    f"{api}/parking/guidance",
                    params={"lat": 31.30, "lon": 120.62, "max_distance_m": 50_000},
                    headers=auth,
                    timeout=5,
                )
                assert guidance.status_code == 200
                assert guidance.json(), "a free spot now is offered as guidance"
        finally:
            simulators.send_signal(signal.SIGINT)
            out, _ = simulators.communicate(timeout=30)
    assert b"caught up" in out or b"published" in out, out.decode(errors="replace")[-2000:]
