"""End-to-end ingest benchmark: MQTT publish → hub → PostgreSQL, against a naive baseline.

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
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
from figures import Figure, add_json_option, encode_figures

from hub.local_services import LocalMosquitto, LocalPostgres, free_port
from hub.store.migrations import apply_migrations

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("lighting", "parking", "truck")


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
    mqtt_url: str, messages: list[tuple[str, bytes]], work: Path, name: str
) -> subprocess.Popen[str]:
    """Start the publisher process on a pickled message file."""
    path = work / f"{name}.pkl"
    path.write_bytes(pickle.dumps(messages))
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bench/publisher.py"), mqtt_url, str(path), f"pub-{name}"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )


def bench_hub(
    pg_url: str, mqtt_url: str, work: Path, n: int, devices: int
) -> tuple[float, int, int]:
    """Messages/s of the hub with the publisher running concurrently; (rate, stored, dead)."""
    root = "bench"
    messages = build_messages(
        root, devices, n, int(time.time() * 1000) - n // devices * 1000 - 60_000
    )
    env = {
        "HUB_DATABASE_URL": pg_url,
        "HUB_MQTT_URL": mqtt_url,
        "HUB_MQTT_ROOT": root,
        "HUB_MQTT_CLIENT_ID": "bench-hub",
        "HUB_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "HUB_MAX_AGE_S": str(30 * 86400),
    }
    log = (work / "hub.log").open("w")
    hub = subprocess.Popen(
        [sys.executable, "-m", "hub", "run", "--no-api"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    time.sleep(3.0)  # connect and subscribe
    tables = tuple(f"telemetry_{k}" for k in KINDS)
    started = time.monotonic()
    publisher = run_publisher(mqtt_url, messages, work, "hub")
    done = wait_rows(pg_url, tables, n, 600)
    publisher.wait()
    hub.terminate()
    hub.wait(30)
    with psycopg.connect(pg_url) as conn:
        dead = int(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])  # type: ignore[index]
    return n / (done - started), stored(pg_url, tables), dead


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
    add_json_option(parser)
    args = parser.parse_args()
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
            hub_rate, hub_stored, dead = bench_hub(
                pg.url, broker.url, work, args.messages, args.devices
            )
            naive_rate = bench_naive(pg.url, broker.url, work, args.naive_messages, args.devices)
            copy_rate = bench_copy(pg.url, args.messages, args.devices)
        finally:
            broker.stop()
            pg.stop()
    print(f"end-to-end ingest, {args.messages:,} messages from {args.devices:,} devices, QoS 1")
    print(f"{'path':<34}{'msg/s':>12}")
    print(f"{'hub (validate, COPY, ack after commit)':<34}{hub_rate:>12,.0f}")
    print(f"{'naive (INSERT + commit per message)':<34}{naive_rate:>12,.0f}")
    print(f"{'raw binary COPY of the same rows':<34}{copy_rate:>12,.0f}")
    print(
        f"hub / naive = {hub_rate / naive_rate:.1f}x; hub / raw COPY = {hub_rate / copy_rate:.2f}"
    )
    print(f"zero loss: stored {hub_stored:,} of {args.messages:,}, dead letters {dead}")
    if args.json is not None:
        args.json.write_text(
            encode_figures(ingest_figures(args, hub_rate, naive_rate, copy_rate, hub_stored, dead)),
            encoding="utf-8",
        )
    return 0 if hub_stored == args.messages and dead == 0 else 1


def ingest_figures(
    args: argparse.Namespace,
    hub_rate: float,
    naive_rate: float,
    copy_rate: float,
    hub_stored: int,
    dead: int,
) -> list[Figure]:
    """The printed figures as rows for bench/report.py."""
    run = f"{args.messages:,} messages from {args.devices:,} devices, publisher at full speed"
    return [
        Figure("ingest", "hub, every rule on", hub_rate, "msg/s", ">= 20,000 msg/s", run),
        Figure(
            "ingest",
            "naive (INSERT + commit per message)",
            naive_rate,
            "msg/s",
            None,
            f"{args.naive_messages:,} messages",
        ),
        Figure("ingest", "raw binary COPY of the same rows", copy_rate, "rows/s", None, None),
        Figure("ingest", "hub / naive", hub_rate / naive_rate, "×", ">= 10×", None),
        Figure("ingest", "hub / raw COPY", hub_rate / copy_rate, "×", None, None),
        Figure(
            "ingest",
            "messages lost",
            args.messages - hub_stored,
            "",
            "<= 0",
            f"stored {hub_stored:,} of {args.messages:,}; {dead} dead letters",
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
