"""Score the truck rules end to end: simulated trucks → real Mosquitto → real hub → PostgreSQL.

Starts its own PostgreSQL and Mosquitto on free ports (hub.cli.local_stack), generates a
city, migrates, imports devices, sites and permits, runs `python -m hub run` as a child,
runs the simulators' truck scenario as fast as the broker acknowledges, waits for the hub
to catch up, and prints `python -m simulators score` for the run. Everything it started
is stopped at the end.

    python bench/score_trucks.py [--trucks 60] [--faults 60] [--hours 30] [--seed 7]

`truck_offline` is left out: offline is judged on receive time (10 min of silence), which
a run at maximum speed does not give.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from hub.cli.local_stack import LocalMosquitto, LocalPostgres, free_port

ROOT = Path(__file__).resolve().parents[1]
FAULTS = (
    "truck_off_route",
    "truck_illegal_dump",
    "truck_unapproved_disposal",
    "truck_outside_hours",
    "truck_cover_open",
    "truck_overspeed",
    "truck_gps_gap",
    "truck_gps_jump",
)


def _run(cmd: list[str], env: dict[str, str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def _quiet_for(url: str, seconds: float, timeout_s: float) -> None:
    """Wait until no truck reading has been stored for `seconds` (the hub caught up)."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM telemetry_truck").fetchone()
        n = int(row[0]) if row else 0
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(1.0)


def main() -> int:
    """Run one scored scenario; exit with the score command's code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trucks", type=int, default=60)
    parser.add_argument("--faults", type=int, default=60)
    parser.add_argument("--hours", type=float, default=30.0, help="simulated hours")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep the city and logs here")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="score-trucks-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # the postgres user must reach its data directory inside
    city = work / "city"
    pg = LocalPostgres(work / "pg", free_port(), durable=False)
    broker = LocalMosquitto(work / "mqtt", free_port())
    pg.start()
    broker.start()
    hub: subprocess.Popen[bytes] | None = None
    env = dict(os.environ)
    env.update(
        {
            "HUB_DATABASE_URL": pg.url,
            "HUB_MQTT_URL": broker.url,
            "HUB_MQTT_CLIENT_ID": "score-hub",
            "HUB_API_ENABLED": "false",
            "HUB_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    py = sys.executable
    try:
        _run(
            [
                *(py, "-m", "simulators", "city", "--out", str(city), "--seed", str(args.seed)),
                *("--lamps", "0", "--manholes", "0", "--spots", "0"),
                *("--trucks", str(args.trucks), "--quiet"),
            ],
            env,
        )
        _run([py, "-m", "hub", "migrate"], env)
        _run([py, "-m", "hub", "devices", "import", str(city / "devices.csv")], env)
        _run([py, "-m", "hub", "sites", "import", str(city / "sites.geojson")], env)
        _run([py, "-m", "hub", "permits", "import", str(city / "permits.json")], env)
        scenario = work / "scenario.yaml"
        within_h = max(1.0, args.hours - 8.0)
        faults = ", ".join(FAULTS)
        scenario.write_text(
            f"random: {{count: {args.faults}, within: {within_h}h, faults: [{faults}]}}\n"
        )
        log = (work / "hub.log").open("wb")
        hub = subprocess.Popen([py, "-m", "hub", "run"], env=env, cwd=ROOT, stderr=log)
        time.sleep(3.0)
        now = datetime.now(UTC)
        start = (now - timedelta(hours=args.hours + 0.5)).replace(microsecond=0)
        began = time.monotonic()
        _run(
            [
                *(py, "-m", "simulators", "run", "--city", str(city), "--speed", "0"),
                *("--mqtt-url", broker.url, "--start", start.isoformat()),
                *("--duration", f"{args.hours}h", "--scenario", str(scenario)),
                *("--truth", str(work / "truth.jsonl"), "--kinds", "truck", "--quiet"),
            ],
            env,
        )
        print(f"simulated {args.hours} h in {time.monotonic() - began:.0f} s", flush=True)
        _quiet_for(pg.url, 5.0, 300.0)
        time.sleep(3.0)  # the rules' reorder hold and last tick
        code = subprocess.run(
            [
                *(py, "-m", "simulators", "score", "--truth", str(work / "truth.jsonl")),
                *("--database-url", pg.url),
            ],
            env=env,
            cwd=ROOT,
            check=False,
        ).returncode
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(timeout=60)
        broker.stop()
        pg.stop()
    print(f"work directory: {work}")
    return code


if __name__ == "__main__":
    sys.exit(main())
