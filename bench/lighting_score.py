"""Score the lighting rules end to end: simulators → real Mosquitto → real hub → PostgreSQL.

Starts its own PostgreSQL and Mosquitto on free ports (under --work), generates a lighting
city, runs a real `python -m hub run` child, replays a night of lighting faults as fast as
the broker takes them (simulated time stays in the past), then prints
`python -m simulators score` and the number of cases per lighting alarm type.

    python bench/lighting_score.py [--lamps 600] [--random 40] [--work var/lighting-score]
"""

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from hub.cli.local_stack import LocalMosquitto, LocalPostgres, free_port

ROOT = Path(__file__).resolve().parent.parent
# Offline faults are left out: the offline rule measures silence on the receive clock, so a
# replay at many times real speed cannot show it (tests/rules cover it with a fake clock).
LAMP_FAULTS = ["lamp_out", "lit_by_day", "voltage_sag", "voltage_surge", "power_degradation"]


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, *args], env=env, cwd=ROOT, check=True)


def main() -> int:
    """Run the scenario and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lamps", type=int, default=600)
    parser.add_argument("--random", type=int, default=40, help="random lamp faults")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "lighting-score")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-db", action="store_true", help="leave PostgreSQL running")
    args = parser.parse_args()
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    postgres = LocalPostgres(work / "pg", free_port(), durable=False)
    broker = LocalMosquitto(work / "mqtt", free_port())
    postgres.start()
    broker.start()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": postgres.url,
        "HUB_MQTT_URL": broker.url,
        "HUB_LOG_LEVEL": "INFO",
    }
    hub: subprocess.Popen[bytes] | None = None
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
        # 16:00 local two days ago: a whole night and the next day lie in the past.
        local = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
        start = (local - dt.timedelta(days=2)).replace(hour=16, minute=0, second=0, microsecond=0)
        scenario = work / "scenario.yaml"
        scenario.write_text(
            f"start: {start.isoformat()}\n"
            "faults:\n"
            "  - {fault: cabinet_trip, device: CAB-00001, at: 4h, duration: 2h}\n"
            "  - {fault: circuit_loss, device: CAB-00002, at: 5h, duration: 2h,"
            " params: {circuit: 2}}\n"
            "  - {fault: flicker, at: 3h, duration: 1h}\n"
            "  - {fault: flicker, at: 9h, duration: 1h}\n"
            f"random: {{count: {args.random}, within: 20h, faults: [{', '.join(LAMP_FAULTS)}]}}\n",
            encoding="utf-8",
        )
        log = (work / "hub.log").open("ab")
        hub = subprocess.Popen(
            [sys.executable, "-m", "hub", "run", "--no-api"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        while "subscribing to" not in (work / "hub.log").read_text(errors="replace"):
            if time.monotonic() > deadline or hub.poll() is not None:
                raise RuntimeError("hub did not start; see " + str(work / "hub.log"))
            time.sleep(0.2)
        truth = work / "truth.jsonl"
        started = time.monotonic()
        _run(
            [
                "-m", "simulators", "run", "--city", str(city), "--speed", "0",
                "--duration", "26h", "--scenario", str(scenario), "--truth", str(truth),
                "--quiet",
            ],
            env,
        )  # fmt: skip
        print(f"simulated 26 h in {time.monotonic() - started:.0f} s", flush=True)
        time.sleep(15)  # let the hub commit and judge the tail, and file cases
        _run(["-m", "simulators", "score", "--truth", str(truth)], env)
        with psycopg.connect(postgres.url) as conn:
            rows = conn.execute(
                "SELECT a.alarm_type, count(DISTINCT a.id), count(DISTINCT c.id)"
                " FROM alarms a LEFT JOIN cases c ON c.id = a.case_id"
                " GROUP BY a.alarm_type ORDER BY 1"
            ).fetchall()
            groups = conn.execute(
                "SELECT source_id, alarm_type, raised_at, cleared_at FROM alarms"
                " WHERE source_kind = 'group' ORDER BY raised_at"
            ).fetchall()
        for source_id, alarm_type, raised_at, cleared_at in groups:
            print(f"group alarm {source_id} {alarm_type} raised {raised_at} cleared {cleared_at}")
        print("alarm type            alarms  cases")
        for alarm_type, alarms, cases in rows:
            print(f"{alarm_type:<20} {alarms:>7} {cases:>6}")
    finally:
        if hub is not None and hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
            hub.wait(timeout=60)
        broker.stop()
        if args.keep_db:
            print(f"database left running: {postgres.url}")
        else:
            postgres.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
