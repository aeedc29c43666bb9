"""Score manhole and parking rules end to end, and check occupancy against the simulators' truth.

Starts its own PostgreSQL and Mosquitto on free ports (under --work), generates a city of
covers and parking spots, imports devices, lots and zones, runs a real `python -m hub run`
child, then runs the simulation in this process (so it can sample each lot's true
occupancy) as fast as the broker takes it, with simulated time in the past. Prints
`python -m simulators score` and, per lot and zone, the largest difference between the
hub's occupancy (`GET /parking/lots?at=`, the hub's parking router run in this process over
the hub's database) and the truth at every sampled time. Each sample's truly occupied spots go
to `<work>/spot_truth.jsonl` for a per-spot comparison. Offline faults are in the scenario:
the simulators' status carries its ts, and the hub judges a device's own `offline` in
event time.

`--arrival both` (the default) runs it twice on fresh services, paced and as one backlog
queued while the hub is stopped, and compares the alarm and case sets (bench/arrival.py);
the exit code is 1 when they differ.

    python bench/manholes_parking_score.py [--manholes 300] [--spots 600] [--random 40]
        [--arrival paced|backlog|both]
"""

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
from arrival import (
    HubRunner,
    Outcome,
    add_arrival_argument,
    arrivals,
    base_env,
    collect,
    report,
    run_arrival,
    score,
)
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.api.parking import router as parking_router
from hub.cli.local_stack import LocalMosquitto, LocalPostgres, free_port
from hub.devices.kinds import Kind
from hub.store.database import Database
from simulators.city import load_city
from simulators.engine import Simulation
from simulators.faults import FaultSpecModel, ScenarioModel, TruthWriter
from simulators.mqtt import PahoPublisher
from simulators.parking import SpotSim
from simulators.scenario import plan_faults

ROOT = Path(__file__).resolve().parent.parent
RANDOM_FAULTS = [
    "manhole_tilt",
    "manhole_displaced",
    "manhole_open",
    "manhole_water_rising",
    "manhole_low_battery",
    "parking_overstay",
    "manhole_offline",
    "parking_offline",
]
DURATION_H = 32
SAMPLE_EVERY_MIN = 30


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, *args], env=env, cwd=ROOT, check=True)


def run_once(args: argparse.Namespace, arrival: str, start: dt.datetime) -> Outcome:
    """One run on fresh services: the scenario published paced or as a backlog."""
    work: Path = args.work / arrival
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    work.chmod(0o755)  # the postgres user must reach its data directory inside
    postgres = LocalPostgres(work / "pg", free_port(), durable=False)
    broker = LocalMosquitto(work / "mqtt", free_port())
    api_port = free_port()
    postgres.start()
    broker.start()
    env = base_env(
        HUB_DATABASE_URL=postgres.url,
        HUB_MQTT_URL=broker.url,
        HUB_MQTT_CLIENT_ID="manholes-parking-score-hub",
        HUB_API_PORT=str(api_port),
        HUB_API_ENABLED="false",  # occupancy is read with the parking router in this process
        HUB_LOG_LEVEL="INFO",
    )
    hub = HubRunner([], env, work / "hub.log")
    outcome = Outcome(arrival)
    lines = outcome.lines
    try:
        _run(["-m", "hub", "migrate"], env)
        city_dir = work / "city"
        _run(
            [
                "-m", "simulators", "city", "--out", str(city_dir), "--seed", str(args.seed),
                "--lamps", "0", "--trucks", "0", "--manholes", str(args.manholes),
                "--spots", str(args.spots), "--quiet",
            ],
            env,
        )  # fmt: skip
        _run(["-m", "hub", "devices", "import", str(city_dir / "devices.csv")], env)
        _run(
            [
                "-m", "hub", "parking", "import", "--lots", str(city_dir / "lots.geojson"),
                "--zones", str(city_dir / "zones.geojson"),
            ],
            env,
        )  # fmt: skip
        city = load_city(city_dir)
        start_ms = int(start.timestamp() * 1000)
        until_ms = start_ms + DURATION_H * 3_600_000
        # Stuck sensors on street spots of distinct zones, long enough for the 24 h rule.
        stuck: list[FaultSpecModel] = []
        zones_used: set[str] = set()
        for spot in city.spots:
            if len(stuck) >= args.stuck:
                break
            if spot.zone_id and spot.zone_id not in zones_used:
                zones_used.add(spot.zone_id)
                at_h = 1 + len(stuck)
                stuck.append(
                    FaultSpecModel(
                        fault="parking_stuck", device=spot.device_id, at=f"{at_h}h", duration="26h"
                    )
                )
        scenario = ScenarioModel.model_validate(
            {"faults": [s.model_dump() for s in stuck]}
            | {"random": {"count": args.random, "within": "20h", "faults": RANDOM_FAULTS}}
        )
        truth_path = work / "truth.jsonl"
        samples: list[tuple[int, Counter[str]]] = []

        def publish() -> None:
            publisher = PahoPublisher(broker.url, client_id="manholes-parking-score")
            # Each sample's truly occupied spots, to compare the hub's per-spot state with.
            spot_truth = (work / "spot_truth.jsonl").open("w")
            with truth_path.open("wb") as handle, spot_truth:
                simulation = Simulation(
                    city,
                    publisher,
                    start_ms=start_ms,
                    seed=args.seed,
                    noise=scenario.noise,
                    truth=TruthWriter(handle),
                    kinds=[Kind.MANHOLE, Kind.PARKING],
                )
                simulation.add_faults(plan_faults(city, scenario, start_ms, seed=args.seed))
                spots = [d for d in simulation.devices if isinstance(d, SpotSim)]
                started = time.monotonic()
                step_ms = SAMPLE_EVERY_MIN * 60_000
                t = start_ms
                while t < until_ms:
                    t += step_ms
                    simulation.advance_to(t)
                    if t - start_ms >= 3_600_000:
                        truth: Counter[str] = Counter()
                        for sim_spot in spots:
                            area = sim_spot.spot.lot_id or sim_spot.spot.zone_id or ""
                            truth[area] += int(sim_spot.occupied)
                        samples.append((t, truth))
                        occupied = [s.device_id for s in spots if s.occupied]
                        spot_truth.write(json.dumps({"t_ms": t, "occupied": occupied}) + "\n")
                publisher.flush(30.0)
                publisher.close()
            print(
                f"[{arrival}] simulated {DURATION_H} h ({simulation.messages} messages) in"
                f" {time.monotonic() - started:.0f} s",
                flush=True,
            )

        outcome.seconds = run_arrival(arrival, hub, publish, postgres.url)
        outcome.score = score(truth_path, env, postgres.url)
        collect(outcome, postgres.url)
        with psycopg.connect(postgres.url) as conn:
            dead = conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY 1").fetchall()
        lines.append(f"dead letters: {dict(dead)}")
        lines.extend(_occupancy(postgres.url, samples))
    finally:
        hub.stop()
        broker.stop()
        postgres.stop()
    return outcome


def _occupancy(database_url: str, samples: list[tuple[int, Counter[str]]]) -> list[str]:
    """The hub's occupancy per lot and zone at every sampled time against the truth."""
    lines: list[str] = []
    worst: dict[str, int] = {}
    over = 0
    checks = 0
    # The hub's own parking router over its database, in this process: the same code as
    # GET /parking/lots?at= without the access layer in front of it.
    db = Database(database_url, max_size=2)
    db.open()
    try:
        with TestClient(create_app(db, CollectorRegistry(), routers=[parking_router])) as api:
            for ts_ms, truth in samples:
                at = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
                for kind in ("lots", "zones"):
                    rows = api.get(f"/parking/{kind}", params={"at": at.isoformat()}).json()
                    if not isinstance(rows, list):
                        raise TypeError(f"unexpected answer: {rows!r}")
                    for row in rows:
                        diff = abs(int(row["occupied"]) - truth[row["id"]])
                        if diff > 1 and over < 5:
                            lines.append(
                                f"  {at.isoformat()} {row['id']}: hub"
                                f" {row['occupied']}+{row['unknown']}? truth {truth[row['id']]}"
                            )
                        worst[row["id"]] = max(worst.get(row["id"], 0), diff)
                        checks += 1
                        over += diff > 1
    finally:
        db.close()
    lots = {k: v for k, v in worst.items() if k.startswith("LOT")}
    zones = {k: v for k, v in worst.items() if not k.startswith("LOT")}
    lines.append(
        f"occupancy: {len(samples)} sampled times x {len(worst)} lots/zones = {checks} checks;"
        f" off by more than one spot: {over}"
    )
    lines.append(f"  worst difference per lot: {dict(sorted(Counter(lots.values()).items()))}")
    lines.append(f"  worst difference per zone: {dict(sorted(Counter(zones.values()).items()))}")
    return lines


def main() -> int:
    """Run the scenario (paced, as a backlog, or both) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manholes", type=int, default=300)
    parser.add_argument("--spots", type=int, default=600)
    parser.add_argument("--random", type=int, default=40, help="random manhole/parking faults")
    parser.add_argument("--stuck", type=int, default=4, help="stuck sensors (26 h each)")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "manholes-parking-score")
    parser.add_argument("--seed", type=int, default=7)
    add_arrival_argument(parser)
    args = parser.parse_args()
    local = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    start = (local - dt.timedelta(days=2)).replace(hour=16, minute=0, second=0, microsecond=0)
    outcomes = [run_once(args, arrival, start) for arrival in arrivals(args.arrival)]
    return 0 if report(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
