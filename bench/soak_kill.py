"""kill -9 soak: the hub is SIGKILLed and restarted under paced QoS 1 load, and loses nothing.

Starts its own PostgreSQL (durable settings) and Mosquitto (the repository's tuning) on
free ports, registers devices, starts `python -m hub run --no-api`, and publishes at a
paced rate at QoS 1 from a separate process. Meanwhile it kills the hub with SIGKILL at
random moments and restarts it each time; the broker keeps the hub's persistent session.
After the backlog has drained it checks in SQL that every published (device_id, ts) is
stored exactly once and that nothing was dead-lettered. It prints published, stored,
duplicates, lost, the achieved publish rate, the drain times and the restarts; the exit
status is 1 on any loss, duplicate, stray row or dead letter.

    python bench/soak_kill.py --rate 5000 --seconds 60 --kills 3 --devices 10000

tests/system/test_kill_soak.py runs a short variant of the same code in the suite.
"""

import argparse
import os
import pickle
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
from bench_ingest import KINDS, build_messages, register_devices, stored
from figures import Figure, add_json_option, publish_figures
from stack import ROOT, local_stack

from tests.hub_process import HubChild, hub_env

BENCHMARK = "kill -9 soak"
TABLES = tuple(f"telemetry_{kind}" for kind in KINDS)
MIN_UPTIME_S = 1.0  # a restarted hub works this long before the next kill
POLL_S = 0.2
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """How hard and how often: messages per second, for how long, kills, devices."""

    rate_per_s: float
    seconds: float
    kills: int
    devices: int
    seed: int = 0
    drain_timeout_s: float = 300.0

    @property
    def messages(self) -> int:
        """Messages published in all."""
        return round(self.rate_per_s * self.seconds)


@dataclass(frozen=True, slots=True)
class SoakFigures:
    """What a soak found, from the database and the processes."""

    published: int
    stored: int
    distinct: int
    lost: int
    stray: int  # stored rows that nobody published
    dead_letters: int
    publish_rate_per_s: float
    kill_offsets_s: tuple[float, ...]  # after the publisher started
    stored_at_kills: tuple[int, ...]
    restart_s: tuple[float, ...]  # from each kill until the new hub had subscribed
    sessions_resumed: int  # restarts the broker answered with the persistent session
    drain_after_last_restart_s: float | None  # None: never drained
    drain_after_publishing_s: float | None

    @property
    def duplicates(self) -> int:
        """Stored rows beyond one per (device_id, ts)."""
        return self.stored - self.distinct

    @property
    def restarts(self) -> int:
        """Times the hub was killed and came back."""
        return len(self.restart_s)

    @property
    def exactly_once(self) -> bool:
        """Every published message stored once, nothing else stored, nothing dead-lettered."""
        return (
            self.lost == 0
            and self.duplicates == 0
            and self.stray == 0
            and self.dead_letters == 0
            and self.stored == self.published
        )


def start_publisher(
    mqtt_url: str, messages: list[tuple[str, bytes]], work: Path, rate_per_s: float
) -> subprocess.Popen[str]:
    """Run bench/publisher.py on the messages at a paced rate, in its own process."""
    path = work / "soak-messages.pkl"
    path.write_bytes(pickle.dumps(messages))
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench/publisher.py"),
            mqtt_url,
            str(path),
            "pub-soak",
            "--rate",
            str(rate_per_s),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def wait_stored(database_url: str, target: int, timeout_s: float) -> float | None:
    """Poll until `target` rows are stored; the monotonic time they were, None on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stored(database_url, TABLES) >= target:
            return time.monotonic()
        time.sleep(POLL_S)
    return None


def check_exactly_once(
    database_url: str, messages: list[tuple[str, bytes]]
) -> tuple[int, int, int, int, int]:
    """(stored, distinct, lost, stray, dead letters): the published keys against the tables."""
    union = " UNION ALL ".join(f"SELECT device_id, ts FROM {table}" for table in TABLES)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "CREATE TEMP TABLE published (device_id text, ts timestamptz,"
            " PRIMARY KEY (device_id, ts))"
        )
        with conn.cursor().copy("COPY published (device_id, ts) FROM STDIN") as copy:
            for topic, payload in messages:
                ts = EPOCH + timedelta(milliseconds=orjson.loads(payload)["ts"])
                copy.write_row((topic.split("/")[2], ts))
        row = conn.execute(
            f"WITH kept AS MATERIALIZED ({union})"
            " SELECT (SELECT count(*) FROM kept),"
            " (SELECT count(*) FROM (SELECT DISTINCT device_id, ts FROM kept) d),"
            " (SELECT count(*) FROM published p WHERE NOT EXISTS (SELECT 1 FROM kept k"
            "  WHERE k.device_id = p.device_id AND k.ts = p.ts)),"
            " (SELECT count(*) FROM kept k WHERE NOT EXISTS (SELECT 1 FROM published p"
            "  WHERE k.device_id = p.device_id AND k.ts = p.ts)),"
            " (SELECT count(*) FROM dead_letters)"
        ).fetchone()
    if row is None:
        raise RuntimeError("the check query returned nothing")
    kept, distinct, lost, stray, dead = (int(value) for value in row)
    return kept, distinct, lost, stray, dead


def run_kill_soak(
    database_url: str, mqtt_url: str, root: str, work: Path, plan: SoakPlan
) -> SoakFigures:
    """Publish at the plan's pace while killing and restarting the hub; check what was stored.

    The database must be migrated and the broker running; devices are registered here.
    """
    register_devices(database_url, plan.devices)
    n = plan.messages
    start_ms = int(time.time() * 1000) - (n // plan.devices + 1) * 1000 - 60_000
    messages = build_messages(root, plan.devices, n, start_ms)
    rng = random.Random(plan.seed)  # reproducible: the seed is printed
    schedule = sorted(rng.uniform(0.1, 0.9) * plan.seconds for _ in range(plan.kills))
    env = hub_env(
        database_url,
        mqtt_url,
        root,
        # Production pacing, not the tests' quick one.
        HUB_BATCH_INTERVAL_MS="200",
        HUB_REGISTRY_REFRESH_S="5",
    )
    log_path = work / "hub.log"
    hub = HubChild(env, log_path)
    hub.mark()
    hub.start()  # subscribed before the first publish: the session exists from here on
    publisher = start_publisher(mqtt_url, messages, work, plan.rate_per_s)
    started = time.monotonic()
    kill_offsets: list[float] = []
    stored_at_kills: list[int] = []
    restart_s: list[float] = []
    last_restart = started
    try:
        for offset in schedule:
            kill_at = max(started + offset, last_restart + MIN_UPTIME_S)
            time.sleep(max(0.0, kill_at - time.monotonic()))
            hub.kill()
            kill_offsets.append(time.monotonic() - started)
            stored_at_kills.append(stored(database_url, TABLES))
            hub.mark()
            hub.start()
            last_restart = time.monotonic()
            restart_s.append(last_restart - started - kill_offsets[-1])
        out, _ = publisher.communicate(timeout=plan.seconds * 3 + 120)
        if publisher.returncode != 0:
            raise RuntimeError(f"publisher failed with exit status {publisher.returncode}")
        published_at = time.monotonic()
        publish_s = float(out.split()[-1])
        drained_at = wait_stored(database_url, n, plan.drain_timeout_s)
        if drained_at is not None:
            time.sleep(1.0)  # a redelivered straggler would land now
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        hub.stop()
    kept, distinct, lost, stray, dead = check_exactly_once(database_url, messages)
    log_text = log_path.read_text(errors="replace")
    return SoakFigures(
        published=n,
        stored=kept,
        distinct=distinct,
        lost=lost,
        stray=stray,
        dead_letters=dead,
        publish_rate_per_s=n / publish_s,
        kill_offsets_s=tuple(kill_offsets),
        stored_at_kills=tuple(stored_at_kills),
        restart_s=tuple(restart_s),
        sessions_resumed=log_text.count("session present: True"),
        drain_after_last_restart_s=None if drained_at is None else drained_at - last_restart,
        drain_after_publishing_s=None
        if drained_at is None
        else max(0.0, drained_at - published_at),
    )


def soak_figures(plan: SoakPlan, figures: SoakFigures) -> list[Figure]:
    """The soak's figures in the benchmarks' common row format."""
    undrained = f"did not drain within {plan.drain_timeout_s:g} s"
    return [
        Figure(BENCHMARK, "published", figures.published, "messages"),
        Figure(BENCHMARK, "stored", figures.stored, "rows"),
        Figure(BENCHMARK, "duplicates", figures.duplicates, "rows", "<= 0"),
        Figure(BENCHMARK, "lost", figures.lost, "messages", "<= 0"),
        Figure(BENCHMARK, "stored but never published", figures.stray, "rows", "<= 0"),
        Figure(BENCHMARK, "dead letters", figures.dead_letters, "messages", "<= 0"),
        Figure(
            BENCHMARK,
            "achieved publish rate",
            figures.publish_rate_per_s,
            "msg/s",
            note=f"paced at {plan.rate_per_s:,.0f} msg/s, QoS 1, until the last PUBACK",
        ),
        Figure(
            BENCHMARK,
            "hub restarts after kill -9",
            figures.restarts,
            "restarts",
            f">= {plan.kills}",
            note=f"{figures.sessions_resumed} resumed the broker's persistent session",
        ),
        Figure(
            BENCHMARK,
            "drain after the last restart",
            figures.drain_after_last_restart_s,
            "s",
            note=undrained if figures.drain_after_last_restart_s is None else None,
        ),
        Figure(
            BENCHMARK,
            "drain after publishing ended",
            figures.drain_after_publishing_s,
            "s",
            note=undrained if figures.drain_after_publishing_s is None else None,
        ),
    ]


def main() -> int:
    """Start the services, run the soak, print (and optionally write) the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate", type=float, default=5000, help="messages per second (%(default)s)"
    )
    parser.add_argument(
        "--seconds", type=float, default=60, help="seconds of publishing (%(default)s)"
    )
    parser.add_argument(
        "--kills", type=int, default=3, help="SIGKILLs while publishing (%(default)s)"
    )
    parser.add_argument(
        "--devices", type=int, default=10_000, help="registered devices (%(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the kill moments (default: random)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=300,
        help="seconds to wait for the backlog (%(default)s)",
    )
    add_json_option(parser)
    args = parser.parse_args()
    plan = SoakPlan(
        rate_per_s=args.rate,
        seconds=args.seconds,
        kills=args.kills,
        devices=args.devices,
        seed=random.SystemRandom().randrange(1 << 31) if args.seed is None else args.seed,
        drain_timeout_s=args.drain_timeout,
    )
    with local_stack("soak") as stack:
        figures = run_kill_soak(stack.database_url, stack.mqtt_url, "soak", stack.work, plan)
    title = (
        f"kill -9 soak: {plan.rate_per_s:,.0f} msg/s for {plan.seconds:g} s at QoS 1,"
        f" {plan.devices:,} devices, {plan.kills} kill(s), seed {plan.seed}"
    )
    publish_figures(title, soak_figures(plan, figures), args.json)
    for at_s, rows, back_s in zip(
        figures.kill_offsets_s, figures.stored_at_kills, figures.restart_s, strict=True
    ):
        print(f"  kill -9 at {at_s:.1f} s with {rows:,} rows stored; back in {back_s:.1f} s")
    print(
        "every published message stored exactly once: " + ("yes" if figures.exactly_once else "NO")
    )
    return 0 if figures.exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
