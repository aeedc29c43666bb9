"""Score the lighting rules end to end: simulators → real Mosquitto → real hub → PostgreSQL.

Starts its own PostgreSQL and Mosquitto on free ports (under --work), generates a lighting
city, runs a real `python -m hub run` child, replays a night of lighting faults (offline
faults included: the simulators' status carries its ts, judged in event time) as fast as
the broker takes them (simulated time stays in the past), then prints `python -m
simulators score` and the number of alarms and cases per lighting alarm type.

`--arrival both` (the default) runs the scenario twice, on fresh services each time:
paced (the hub runs while the simulators publish) and as one backlog (published while the
hub is stopped, queued in its broker session, drained when it starts), prints both runs'
figures side by side and whether their alarm and case sets are identical (bench/arrival.py).
The exit code is 1 when they differ.

    python bench/lighting_score.py [--lamps 600] [--random 40] [--arrival paced|backlog|both]
"""

import argparse
import datetime as dt
import shutil
import subprocess
import sys
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

from hub.cli.local_stack import LocalMosquitto, LocalPostgres, free_port

ROOT = Path(__file__).resolve().parent.parent
LAMP_FAULTS = [
    "lamp_out",
    "lit_by_day",
    "voltage_sag",
    "voltage_surge",
    "power_degradation",
    "lamp_offline",
]


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
    postgres.start()
    broker.start()
    env = base_env(
        HUB_DATABASE_URL=postgres.url,
        HUB_MQTT_URL=broker.url,
        HUB_MQTT_CLIENT_ID="lighting-score-hub",
        HUB_LOG_LEVEL="INFO",
    )
    hub = HubRunner(["--no-api"], env, work / "hub.log")
    outcome = Outcome(arrival)
    try:
        _run(["-m", "hub", "migrate"], env)
        city = work / "city"
        _run(
            [
                "-m", "simulators", "city", "--out", str(city), "--seed", str(args.seed),
                "--lamps", str(args.lamps), "--trucks", "0", "--manholes", "0", "--spots", "0",
                "--quiet",
            ],
            env,
        )  # fmt: skip
        _run(["-m", "hub", "devices", "import", str(city / "devices.csv")], env)
        scenario = work / "scenario.yaml"
        scenario.write_text(
            f"start: {start.isoformat()}\n"
            "faults:\n"
            "  - {fault: cabinet_trip, device: CAB-00001, at: 4h, duration: 2h}\n"
            "  - {fault: circuit_loss, device: CAB-00002, at: 5h, duration: 2h,"
            " params: {circuit: 2}}\n"
            "  - {fault: cabinet_offline, device: CAB-00003, at: 10h, duration: 2h}\n"
            "  - {fault: flicker, at: 3h, duration: 1h}\n"
            "  - {fault: flicker, at: 9h, duration: 1h}\n"
            f"random: {{count: {args.random}, within: 20h, faults: [{', '.join(LAMP_FAULTS)}]}}\n",
            encoding="utf-8",
        )
        truth = work / "truth.jsonl"

        def publish() -> None:
            _run(
                [
                    "-m", "simulators", "run", "--city", str(city), "--speed", "0",
                    "--mqtt-url", broker.url, "--duration", "26h", "--scenario", str(scenario),
                    "--truth", str(truth), "--quiet",
                ],
                env,
            )  # fmt: skip

        outcome.seconds = run_arrival(arrival, hub, publish, postgres.url)
        outcome.score = score(truth, env, postgres.url)
        collect(outcome, postgres.url)
        with psycopg.connect(postgres.url) as conn:
            groups = conn.execute(
                "SELECT source_id, alarm_type, raised_at, cleared_at FROM alarms"
                " WHERE source_kind = 'group' ORDER BY raised_at"
            ).fetchall()
        for source_id, alarm_type, raised_at, cleared_at in groups:
            outcome.lines.append(
                f"group alarm {source_id} {alarm_type} raised {raised_at} cleared {cleared_at}"
            )
        outcome.lines.append("alarm type            alarms  cases")
        for alarm_type, alarms, cases in outcome.per_type:
            outcome.lines.append(f"{alarm_type:<20} {alarms:>7} {cases:>6}")
    finally:
        hub.stop()
        broker.stop()
        if args.keep_db:
            print(f"database left running: {postgres.url}")
        else:
            postgres.stop()
    return outcome


def main() -> int:
    """Run the scenario (paced, as a backlog, or both) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lamps", type=int, default=600)
    parser.add_argument("--random", type=int, default=40, help="random lamp faults")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "lighting-score")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true", help="leave PostgreSQL running")
    add_arrival_argument(parser)
    args = parser.parse_args()
    # 16:00 local two days ago: a whole night and the next day lie in the past.
    local = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    start = (local - dt.timedelta(days=2)).replace(hour=16, minute=0, second=0, microsecond=0)
    outcomes = [run_once(args, arrival, start) for arrival in arrivals(args.arrival)]
    return 0 if report(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
