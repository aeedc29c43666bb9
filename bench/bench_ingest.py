"""End-to-end ingest benchmark: MQTT publish → hub → PostgreSQL, against a naive baseline.

The headline is the highest paced rate each hub kept up (every row stored, the last at
most 1 s after the schedule's last publish), found by bisection over `--paced-steps` runs of
`--paced-seconds` after its full-speed run: what a city sending steadily gets. Full speed
(a flood, the hub draining a backlog in large batches) is the second row.

Starts its own PostgreSQL (durable settings) and Mosquitto (the repository's tuning) on
free ports, registers devices, and in one run measures:
  hub    the hub process (`python -m hub run`), publisher running at full speed meanwhile
  naive  one INSERT and commit per message (bench/naive_subscriber.py), same publisher
  copy   a raw binary COPY of the same rows straight into the table (the ceiling)
It prints messages per second, zero-loss checks and the ratios.
"""

import argparse
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
from figures import Figure, add_json_option, encode_figures
from stack import cpu_seconds

from hub.cli.local_stack import LocalMosquitto, LocalPostgres, free_port
from hub.store.migrations import apply_migrations

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("lighting", "parking", "truck")
KEPT_UP_S = 1.0  # a paced run kept up: its last row at most this long after its schedule


def behind_schedule_s(done: float, first_publish: float, count: int, rate: float) -> float:
    """How long after a paced run's scheduled last publish its last row was stored (>= 0).

    Read from the schedule, not from when the publisher finished: on a saturated machine
    the publisher falls behind, and the rate it was asked for is not the rate it sent.
    """
    return max(0.0, done - (first_publish + count / rate))


def payload(kind: str, ts_ms: int, i: int) -> bytes:
    """A realistic ~200-byte reading of a kind."""
    body: dict[str, object]
    if kind == "lighting":
        body = {
            "ts": ts_ms,
            "on": True,
            "dim_pct": 80,
            "voltage_v": 220.0 + i % 7,
            "current_a": 0.52,
            "power_w": 110.5,
            "power_factor": 0.95,
            "energy_kwh": 1000.0 + i / 1000,
        }
    elif kind == "parking":
        body = {"ts": ts_ms, "occupied": i % 3 == 0, "battery_pct": 77}
    else:
        body = {
            "ts": ts_ms,
            "lat": 31.3 + (i % 1000) / 1e5,
            "lon": 120.6,
            "speed_kmh": 31.5,
            "heading_deg": 90,
            "acc_on": True,
            "body_lifted": False,
            "cover_closed": True,
            "load": "full",
        }
    return orjson.dumps(body)


def build_messages(root: str, devices: int, count: int, start_ms: int) -> list[tuple[str, bytes]]:
    """`count` messages spread over `devices` devices, unique (device, ts)."""
    out = []
    for i in range(count):
        d = i % devices
        kind = KINDS[d % len(KINDS)]
        out.append(
            (
                f"{root}/{kind}/{kind}-{d}/telemetry",
                payload(kind, start_ms + (i // devices) * 1000, i),
            )
        )
    return out


def register_devices(database_url: str, devices: int) -> None:
    """Register the devices `build_messages` publishes for: lighting-0, parking-1, truck-2 …"""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon)"
            " SELECT k || '-' || g, k, 31.3, 120.6 FROM generate_series(0, %s) g,"
            " LATERAL (SELECT (%s::text[])[g %% %s + 1] AS k) x",
            (devices - 1, list(KINDS), len(KINDS)),
        )


def stored(url: str, tables: tuple[str, ...]) -> int:
    """Rows in the given tables."""
    total = 0
    with psycopg.connect(url) as conn:
        for table in tables:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            total += int(row[0]) if row else 0
    return total


def wait_rows(url: str, tables: tuple[str, ...], target: int, timeout_s: float) -> float:
    """Poll until `target` rows exist; return the monotonic time they were first seen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stored(url, tables) >= target:
            return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"only {stored(url, tables)} of {target} rows after {timeout_s} s")


def run_publisher(
    mqtt_url: str,
    messages: list[tuple[str, bytes]],
    work: Path,
    name: str,
    rate: float | None = None,
) -> subprocess.Popen[str]:
    """Start the publisher process on a pickled message file (full speed, or paced)."""
    path = work / f"{name}.pkl"
    path.write_bytes(pickle.dumps(messages))
    pacing = [] if rate is None else ["--rate", str(rate)]
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench/publisher.py"),
            mqtt_url,
            str(path),
            f"pub-{name}",
            *pacing,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )


@dataclass
class RateSearch:
    """Bisection for the highest paced rate a side keeps up with."""

    low: float  # the bracket; probes go to its middle
    high: float
    kept: float | None = None  # highest rate kept up so far
    failed: float | None = None  # lowest rate not kept up so far

    def next_rate(self) -> float:
        """The middle of the bracket, to the nearest 100 msg/s."""
        return max(100.0, round((self.low + self.high) / 2, -2))

    def record(self, rate: float, kept: bool) -> None:
        """Narrow the bracket by one probe's outcome."""
        if kept:
            self.low = rate
            self.kept = rate if self.kept is None else max(self.kept, rate)
        else:
            self.high = rate
            self.failed = rate if self.failed is None else min(self.failed, rate)

    def describe(self) -> str:
        """What the search found, e.g. "≥ 7,000 (not 7,900)"."""
        if self.kept is None:
            return "none tried" if self.failed is None else f"< {self.failed:,.0f}"
        return f"{self.kept:,.0f}" + ("" if self.failed is None else f" (not {self.failed:,.0f})")


@dataclass(frozen=True, slots=True)
class HubRun:
    """One measured run of the hub: how many processes, msg/s, rows stored, dead letters."""

    members: int
    published: int
    rate: float
    stored: int
    dead: int
    cpu_s: float  # CPU time of the hub processes over the run
    paced: float | None = None  # the publisher's schedule in msg/s; None: full speed
    # Paced: the last row stored after the schedule's last publish. A publisher held back by a
    # saturated machine ends late, and that counts: the rate was not sustained.
    drain_s: float | None = None

    @property
    def cpu_us_per_message(self) -> float:
        """Hub CPU per message, all processes together: what contention does not change."""
        return self.cpu_s / self.stored * 1e6 if self.stored else float("nan")

    @property
    def kept_up(self) -> bool:
        """A paced run: every message stored, the last row within KEPT_UP_S of the schedule."""
        return self.stored >= self.published and (self.drain_s or 0.0) <= KEPT_UP_S

    @property
    def who(self) -> str:
        """The hub's processes, as the table names them."""
        return "1 process" if self.members == 1 else f"{self.members} members on this machine"

    @property
    def label(self) -> str:
        """How the run is named in the table."""
        who = "1 process" if self.members == 1 else f"{self.members} members on this machine"
        return who if self.paced is None else f"{who}, paced at {self.paced:,.0f} msg/s"


def hub_member_envs(base: dict[str, str], members: int) -> list[dict[str, str]]:
    """Environments of `members` hub processes: one plain hub, or a cluster on one machine."""
    if members == 1:
        return [base]
    cluster = {
        "HUB_CLUSTER_MEMBERS": str(members),
        "HUB_MQTT_SHARED_GROUP": "bench",
    }
    return [{**base, **cluster, "HUB_CLUSTER_MEMBER": str(i)} for i in range(members)]


def bench_hub(
    pg_url: str,
    mqtt_url: str,
    work: Path,
    n: int,
    devices: int,
    start_ms: int,
    members: int = 1,
    extra_env: dict[str, str] | None = None,
    paced: float | None = None,
) -> HubRun:
    """Messages/s of the hub with the publisher running concurrently.

    With `members` > 1 that many hub processes share the stream as a cluster (MQTT
    shared subscription, rules judged by each device's owner), all on this machine.
    With `paced` the publisher keeps to that rate instead of its full speed: the rate is
    then measured from the first publish to the last row, and `drain_s` says how far the
    last row came after the schedule's last publish (a hub that keeps up is not behind).
    """
    root = f"bench{members}"
    messages = build_messages(root, devices, n, start_ms)
    base = {
        "HUB_DATABASE_URL": pg_url,
        "HUB_MQTT_URL": mqtt_url,
        "HUB_MQTT_ROOT": root,
        "HUB_MQTT_CLIENT_ID": f"bench-hub{members}",
        "HUB_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "HUB_MAX_AGE_S": str(30 * 86400),
        **(extra_env or {}),
    }
    tables = tuple(f"telemetry_{k}" for k in KINDS)
    before = stored(pg_url, tables)
    hubs = []
    for i, env in enumerate(hub_member_envs(base, members)):
        log = (work / f"hub{members}-{i}.log").open("w")
        hubs.append(
            subprocess.Popen(
                [sys.executable, "-m", "hub", "run", "--no-api"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        )
    time.sleep(12.0)  # connect and subscribe (3 s lost messages on a loaded machine)
    cpu_before = sum(cpu_seconds(hub.pid) for hub in hubs)
    started = time.monotonic()
    publisher = run_publisher(mqtt_url, messages, work, f"hub{members}", paced)
    drain_s = None
    if paced is not None:
        out, _ = publisher.communicate(timeout=n / paced + 600)
        published_at = time.monotonic()
        started = published_at - float(out.strip())  # the first publish
    done = wait_rows(pg_url, tables, before + n, 600)
    cpu_s = sum(cpu_seconds(hub.pid) for hub in hubs) - cpu_before
    if paced is not None:
        drain_s = behind_schedule_s(done, started, n, paced)
    publisher.wait()
    for hub in hubs:
        hub.terminate()
    for hub in hubs:
        hub.wait(30)
    with psycopg.connect(pg_url) as conn:
        dead = int(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])  # type: ignore[index]
    return HubRun(
        members,
        n,
        n / (done - started),
        stored(pg_url, tables) - before,
        dead,
        cpu_s,
        paced,
        drain_s,
    )


def bench_naive(pg_url: str, mqtt_url: str, work: Path, n: int, devices: int) -> float:
    """Messages/s of the naive one-INSERT-per-message subscriber."""
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS naive_readings (device_id text, ts timestamptz,"
            " received_at timestamptz, body jsonb, PRIMARY KEY (device_id, ts))"
        )
    root = "naive"
    messages = build_messages(root, devices, n, int(time.time() * 1000))
    sub = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench/naive_subscriber.py"),
            mqtt_url,
            pg_url,
            root,
            "bench-naive",
        ],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    time.sleep(2.0)
    started = time.monotonic()
    publisher = run_publisher(mqtt_url, messages, work, "naive")
    done = wait_rows(pg_url, ("naive_readings",), n, 900)
    publisher.wait()
    sub.terminate()
    sub.wait(10)
    return n / (done - started)


def bench_copy(pg_url: str, n: int, devices: int) -> float:
    """Rows/s of a raw binary COPY of the same rows into an identical, indexed table."""
    now = datetime.now(UTC)
    rows = [
        (
            f"lighting-{i % devices}",
            datetime.fromtimestamp(1.7e9 + i / 10, UTC),
            now,
            False,
            True,
            80.0,
            220.0,
            0.52,
            110.5,
            0.95,
            1000.0,
            None,
            None,
        )
        for i in range(n)
    ]
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE copy_ref (LIKE telemetry_lighting INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        for chunk in range(0, n, 20_000):
            with conn.cursor().copy("COPY copy_ref FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(
                    [
                        "text",
                        "timestamptz",
                        "timestamptz",
                        "bool",
                        "bool",
                        "float4",
                        "float4",
                        "float4",
                        "float4",
                        "float4",
                        "float8",
                        "text",
                        "jsonb",
                    ]
                )
                for row in rows[chunk : chunk + 20_000]:
                    copy.write_row(row)
            conn.commit()
        return n / (time.perf_counter() - started)


def main() -> int:
    """Run the three measurements and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--naive-messages", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument(
        "--hub-setting",
        action="append",
        default=[],
        metavar="HUB_NAME=VALUE",
        help="an extra setting of the hub, e.g. HUB_BATCH_INTERVAL_MS=200",
    )
    parser.add_argument(
        "--members",
        type=int,
        nargs="+",
        default=[1, 2],
        help="hub processes per run, one run each (default: 1 2; 2 = a cluster on this machine)",
    )
    parser.add_argument(
        "--sustain-rate",
        type=float,
        default=20_000,
        help="then publish paced at this rate (msg/s) to show the hub keeps up (0: skip)",
    )
    parser.add_argument("--sustain-seconds", type=float, default=30.0)
    parser.add_argument(
        "--paced-steps",
        type=int,
        default=3,
        help="paced runs per member count after its full-speed run, bisecting for the highest"
        " rate kept up (the headline; 0: skip)",
    )
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="length of a paced run")
    parser.add_argument("--sustain-members", type=int, default=2)
    add_json_option(parser)
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.hub_setting)
    runs: list[HubRun] = []
    searches: dict[int, tuple[RateSearch, list[HubRun]]] = {}
    sustained = round(args.sustain_rate * args.sustain_seconds) if args.sustain_rate else 0
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        pg = LocalPostgres(work / "pg", free_port(), durable=True)
        broker = LocalMosquitto(work / "mqtt", free_port())
        pg.start()
        broker.start()
        try:
            apply_migrations(pg.url, "plain")
            register_devices(pg.url, args.devices)
            # Each run's readings are older than the next run's and never overlap them:
            # windows one after the other from a week ago (the hubs accept 30 days).
            next_ms = int(time.time() * 1000) - 7 * 86_400_000

            def measure_hub(members: int, count: int, paced: float | None) -> HubRun:
                nonlocal next_ms
                start_ms = next_ms
                next_ms += (count // args.devices + 10) * 1000
                return bench_hub(
                    pg.url, broker.url, work, count, args.devices, start_ms, members, extra, paced
                )

            for members in args.members:
                full = measure_hub(members, args.messages, None)
                runs.append(full)
                search = RateSearch(full.rate * 0.4, full.rate * 1.1)
                probes: list[HubRun] = []
                for _ in range(args.paced_steps):
                    rate = search.next_rate()
                    probe = measure_hub(members, max(1, round(rate * args.paced_seconds)), rate)
                    print(
                        f"hub, {probe.label}: {'kept up' if probe.kept_up else 'NOT kept up'}"
                        f" (last row {probe.drain_s or 0.0:.2f} s after the schedule's end,"
                        f" {probe.cpu_us_per_message:.0f} µs CPU/msg)",
                        flush=True,
                    )
                    probes.append(probe)
                    search.record(rate, probe.kept_up)
                if args.paced_steps:
                    searches[members] = (search, probes)
            if sustained:
                runs.append(measure_hub(args.sustain_members, sustained, args.sustain_rate))
            naive_rate = bench_naive(pg.url, broker.url, work, args.naive_messages, args.devices)
            copy_rate = bench_copy(pg.url, args.messages, args.devices)
        finally:
            broker.stop()
            pg.stop()
    print(f"end-to-end ingest, {args.messages:,} messages from {args.devices:,} devices, QoS 1")
    if searches:
        print(
            f"highest paced rate kept up ({args.paced_seconds:g} s runs, every row stored and the"
            f" last <= {KEPT_UP_S:g} s after the schedule's last publish):"
        )
        for members, (search, probes) in searches.items():
            best = best_kept(probes)
            cpu = "" if best is None else f", {best.cpu_us_per_message:.0f} µs hub CPU/msg there"
            who = probes[0].who if probes else str(members)
            print(f"  hub, {who}: {search.describe()} msg/s{cpu}")
        print("full speed:")
    print(f"{'path':<50}{'msg/s':>10}{'/ naive':>9}{'/ COPY':>8}{'hub CPU/msg':>13}")
    for run in runs:
        print(
            f"{'hub, ' + run.label:<50}{run.rate:>10,.0f}"
            f"{run.rate / naive_rate:>8.1f}x{run.rate / copy_rate:>8.3f}"
            f"{run.cpu_us_per_message:>10.0f} µs"
        )
    print(f"{'naive (INSERT + commit per message)':<50}{naive_rate:>10,.0f}")
    print(f"{'raw binary COPY of the same rows':<50}{copy_rate:>10,.0f}")
    for run in runs:
        print(
            f"zero loss, {run.label}: stored {run.stored:,} of {run.published:,},"
            f" dead letters {run.dead}"
            + (
                ""
                if run.drain_s is None
                else f"; last row {run.drain_s:.2f} s after the schedule's end"
            )
        )
    if args.json is not None:
        args.json.write_text(
            encode_figures(
                paced_figures(args, searches) + ingest_figures(args, runs, naive_rate, copy_rate)
            ),
            encoding="utf-8",
        )
    return 0 if all(run.stored == run.published and run.dead == 0 for run in runs) else 1


def best_kept(probes: list[HubRun]) -> HubRun | None:
    """The paced run at the highest rate kept up."""
    kept = [probe for probe in probes if probe.kept_up]
    return max(kept, key=lambda probe: probe.paced or 0.0) if kept else None


def paced_figures(
    args: argparse.Namespace, searches: dict[int, tuple[RateSearch, list[HubRun]]]
) -> list[Figure]:
    """The headline rows: the highest paced rate each hub kept up, and its CPU there."""
    figures: list[Figure] = []
    for search, probes in searches.values():
        best = best_kept(probes)
        who = probes[0].who if probes else "?"
        figures.append(
            Figure(
                "ingest",
                f"hub, every rule on, highest paced rate kept up, {who}",
                best.paced if best else None,
                "msg/s",
                None,
                f"{search.describe()} msg/s; {len(probes)} paced runs of {args.paced_seconds:g} s"
                f" (bisection from 40-110% of full speed), kept up = every row stored, the last"
                f" <= {KEPT_UP_S:g} s after the schedule's last publish",
            )
        )
        if best is not None:
            figures.append(
                Figure(
                    "ingest",
                    f"hub CPU per message at the highest paced rate kept up, {who}",
                    best.cpu_us_per_message,
                    "µs",
                    None,
                    "user + system time of the hub processes, all members together",
                )
            )
    return figures


def ingest_figures(
    args: argparse.Namespace, runs: list[HubRun], naive_rate: float, copy_rate: float
) -> list[Figure]:
    """The printed figures as rows for bench/report.py."""
    figures: list[Figure] = []
    for run in runs:
        load = f"{run.published:,} messages from {args.devices:,} devices, " + (
            "publisher at full speed"
            if run.paced is None
            else f"first publish to last row stored; {run.drain_s:.2f} s after the schedule's end"
        )
        figures += [
            Figure(
                "ingest",
                f"hub, every rule on, {run.label}",
                run.rate,
                "msg/s",
                # A paced run cannot beat its schedule; whether it kept up is the next row.
                ">= 20,000 msg/s" if run.paced is None else None,
                load,
            ),
            *(
                []
                if run.drain_s is None
                else [
                    Figure(
                        "ingest",
                        f"behind the schedule's end, {run.label}",
                        run.drain_s,
                        "s",
                        "<= 1 s",
                        "last row stored after the schedule's last publish (a publisher held"
                        " back by a saturated machine counts): sustained when within a second",
                    )
                ]
            ),
            *(
                [
                    Figure(
                        "ingest",
                        f"hub / naive, {run.label}",
                        run.rate / naive_rate,
                        "×",
                        ">= 10×",
                        None,
                    ),
                    Figure(
                        "ingest",
                        f"hub / raw COPY, {run.label}",
                        run.rate / copy_rate,
                        "×",
                        None,
                        None,
                    ),
                ]
                if run.paced is None  # a paced run's rate is its schedule's
                else []
            ),
            Figure(
                "ingest",
                f"hub CPU per message, {run.label}",
                run.cpu_us_per_message,
                "µs",
                None,
                "user + system time of the hub processes, all members together",
            ),
            Figure(
                "ingest",
                f"messages lost, {run.label}",
                run.published - run.stored,
                "",
                "<= 0",
                f"stored {run.stored:,} of {run.published:,}; {run.dead} dead letters",
            ),
        ]
    return [
        *figures,
        Figure(
            "ingest",
            "naive (INSERT + commit per message)",
            naive_rate,
            "msg/s",
            None,
            f"{args.naive_messages:,} messages",
        ),
        Figure("ingest", "raw binary COPY of the same rows", copy_rate, "rows/s", None, None),
    ]


if __name__ == "__main__":
    sys.exit(main())
