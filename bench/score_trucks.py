"""Score the truck rules end to end: simulated trucks → (JT/T 808 gateway →) real Mosquitto →
real hub → PostgreSQL.

Starts its own PostgreSQL and Mosquitto on free ports (hub.cli.local_stack), generates a
city, migrates, imports devices (with each truck's terminal number), sites and permits,
runs `python -m hub run` as a child (and `python -m hub jt808 serve` with `--via jt808`),
runs the simulators' trucks straight onto the MQTT contract (`--via jt808`: as JT/T 808
terminals over TCP through the gateway) as fast as they are acknowledged, waits for the hub
to catch up, and prints `python -m simulators score` for the run. Everything it started
is stopped at the end. `truck_offline` is in the scenario: the simulators' status carries
its ts, and the hub judges a device's own `offline` in event time.

`--arrival both` (the default) runs it twice on fresh services, paced and as one backlog
queued while the hub is stopped, and compares the alarm and case sets (bench/arrival.py);
the exit code is 1 when they differ.

    python bench/score_trucks.py [--trucks 60] [--faults 60] [--hours 30] [--seed 7]
        [--via jt808|mqtt]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    "truck_offline",
)


def _run(cmd: list[str], env: dict[str, str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def start_gateway(env: dict[str, str], work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`hub jt808 serve` on a free port, once it is connected to the broker."""
    port = free_port()
    log = work / "jt808.log"
    gateway_env = {
        **env,
        "HUB_JT808_HOST": "127.0.0.1",
        "HUB_JT808_PORT": str(port),
        "HUB_JT808_METRICS_PORT": str(free_port()),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub", "jt808", "serve"],
            env=gateway_env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while "connected to the broker" not in log.read_text("utf-8", errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the JT/T 808 gateway did not start; see {log}")
        time.sleep(0.2)
    return process, port


def run_once(args: argparse.Namespace, arrival: str, start: datetime, root: Path) -> Outcome:
    """One run on fresh services: the scenario published paced or as a backlog."""
    work = root / arrival
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # the postgres user must reach its data directory inside
    city = work / "city"
    pg = LocalPostgres(work / "pg", free_port(), durable=False)
    broker = LocalMosquitto(work / "mqtt", free_port())
    pg.start()
    broker.start()
    env = base_env(
        HUB_DATABASE_URL=pg.url,
        HUB_MQTT_URL=broker.url,
        HUB_MQTT_CLIENT_ID="score-hub",
        HUB_API_ENABLED="false",
        HUB_LOG_LEVEL="INFO",
    )
    py = sys.executable
    hub = HubRunner([], env, work / "hub.log")
    outcome = Outcome(arrival)
    gateway: subprocess.Popen[bytes] | None = None
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
        via: tuple[str, ...] = ()
        if args.via == "jt808":
            # each truck's terminal number (jt808_phone) into the registry, then the gateway
            _run([py, "-m", "simulators.jt808_terminal", str(city)], env)
            _run([py, "-m", "hub", "devices", "import", str(city / "devices-jt808.csv")], env)
            gateway, port = start_gateway(env, work)
            via = ("--trucks-via-jt808", f"127.0.0.1:{port}")
        _run([py, "-m", "hub", "sites", "import", str(city / "sites.geojson")], env)
        _run([py, "-m", "hub", "permits", "import", str(city / "permits.json")], env)
        scenario = work / "scenario.yaml"
        within_h = max(1.0, args.hours - 8.0)
        faults = ", ".join(FAULTS)
        scenario.write_text(
            f"random: {{count: {args.faults}, within: {within_h}h, faults: [{faults}]}}\n"
        )
        truth = work / "truth.jsonl"

        def publish() -> None:
            _run(
                [
                    *(py, "-m", "simulators", "run", "--city", str(city), "--speed", "0"),
                    *("--mqtt-url", broker.url, "--start", start.isoformat()),
                    *("--duration", f"{args.hours}h", "--scenario", str(scenario)),
                    *("--truth", str(truth), "--kinds", "truck", "--quiet"),
                    *via,
                ],
                env,
            )

        outcome.seconds = run_arrival(arrival, hub, publish, pg.url)
        outcome.score = score(truth, env, pg.url)
        collect(outcome, pg.url)
    finally:
        hub.stop()
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=30)
        broker.stop()
        pg.stop()
    return outcome


def main() -> int:
    """Run the scored scenario (paced, as a backlog, or both); 1 when the runs differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trucks", type=int, default=60)
    parser.add_argument("--faults", type=int, default=60)
    parser.add_argument("--hours", type=float, default=30.0, help="simulated hours")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep the city and logs here")
    parser.add_argument(
        "--via",
        choices=("jt808", "mqtt"),
        default="mqtt",
        help="trucks straight on MQTT (default), or as JT/T 808 terminals through the gateway;"
        " through the gateway the end of the run hangs up every terminal, and the gateway's"
        " offline status for each is an offline alarm the ground truth does not know",
    )
    add_arrival_argument(parser)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="score-trucks-"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    now = datetime.now(UTC)
    start = (now - timedelta(hours=args.hours + 0.5)).replace(microsecond=0)
    outcomes = [run_once(args, arrival, start, root) for arrival in arrivals(args.arrival)]
    identical = report(outcomes)
    print(f"work directory: {root}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
