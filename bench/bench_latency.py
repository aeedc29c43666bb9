"""Publish → alarm and publish → case latency at a paced background load of 5,000 msg/s.

Starts its own PostgreSQL and Mosquitto, registers background devices (parking spots and
manhole covers reporting normal readings) and fresh trigger covers, and runs the hub as
`python -m hub run --no-api`. One paced publisher sends the background load round-robin
over the devices at `--rate` msg/s and, after a warm-up, a trigger reading every
1/`--trigger-rate` s: a cover reported open on a cover that never reported before. That
raises a `cover_open` alarm on one reading (no debounce) and the case policy files it at
once (`hub/cases/policy.yaml`), so each trigger gives one alarm row and one case row.
Latency is the row's `created_at` (PostgreSQL's clock at the start of the transaction that
wrote it) minus the publisher's wall clock just before the publish: the same machine's
clock on both sides.

The rule engine holds every reading for up to `reorder_tolerance_s` to put late readings
in order, and a lone reading waits that long before it is judged (the packaged rules had
10 s, which gave a p99 of 13 s; they now have 0). The main phase runs with a rules file of
tolerance `--tolerance-s` (default 0); an optional second phase (`--packaged-duration`)
measures the packaged rules file as it is.

    python bench/bench_latency.py [--rate 5000] [--duration 60] [--json PATH]
"""

import argparse
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import orjson
import psycopg
import yaml
from figures import Figure, add_json_option, percentile, publish_figures
from stack import (
    LoadPublisher,
    Stack,
    copy_devices,
    cpu_seconds,
    hub_env,
    local_stack,
    query_int,
    running_hub,
)

from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord

ROOT_TOPIC = "lat"
GRID = "320506001001001"
TARGET_ALARM_P99 = "< 250 ms"
COVER_ATTRIBUTES: dict[str, str | int | float | bool] = {
    "cover_type": "storm_water",
    "baseline_tilt_deg": 1.0,
    "road_class": "branch",
}


@dataclass(frozen=True, slots=True)
class Phase:
    """What one hub run measured."""

    label: str
    background_sent: int
    background_rate: float
    triggers: dict[str, float]  # device id → publisher wall clock just before the publish
    hub_cpu_share: float


def background_devices(count: int) -> list[DeviceRecord]:
    """Half parking spots, half manhole covers, at one grid."""
    records = []
    for i in range(count):
        lat, lon = 31.30 + (i % 200) * 1e-4, 120.60 + (i // 200) * 1e-4
        if i % 2:
            records.append(
                DeviceRecord(
                    device_id=f"MH-B{i:06d}",
                    kind=Kind.MANHOLE,
                    lat=lat,
                    lon=lon,
                    grid_code=GRID,
                    class_code="01003",
                    department="排水管理处",
                    attributes=COVER_ATTRIBUTES,
                )
            )
        else:
            records.append(
                DeviceRecord(
                    device_id=f"PS-B{i:06d}",
                    kind=Kind.PARKING,
                    lat=lat,
                    lon=lon,
                    grid_code=GRID,
                    class_code="02003",
                    department="停车管理公司",
                )
            )
    return records


def trigger_devices(prefix: str, count: int) -> list[DeviceRecord]:
    """Manhole covers that report only once: open."""
    return [
        DeviceRecord(
            device_id=f"MH-{prefix}{i:05d}",
            kind=Kind.MANHOLE,
            lat=31.29,
            lon=120.59 + i * 1e-5,
            grid_code=GRID,
            class_code="01003",
            department="排水管理处",
            attributes=COVER_ATTRIBUTES,
        )
        for i in range(count)
    ]


def background_message(device: DeviceRecord, round_no: int, ts_ms: int) -> tuple[str, bytes]:
    """A normal reading: a parked car that comes and goes, a cover lying flat."""
    if device.kind is Kind.PARKING:
        body: dict[str, object] = {
            "ts": ts_ms,
            "occupied": (round_no // 8) % 2 == 0,
            "battery_pct": 81.5,
        }
    else:
        body = {
            "ts": ts_ms,
            "tilt_deg": 1.0 + (round_no % 5) * 0.1,
            "cover_open": False,
            "battery_pct": 79.0,
            "rssi_dbm": -91.0,
        }
    return f"{ROOT_TOPIC}/{device.kind.value}/{device.device_id}/telemetry", orjson.dumps(body)


def trigger_message(device_id: str, ts_ms: int) -> tuple[str, bytes]:
    """A cover reported open."""
    body = {"ts": ts_ms, "tilt_deg": 1.2, "cover_open": True, "battery_pct": 79.0}
    return f"{ROOT_TOPIC}/manhole/{device_id}/event", orjson.dumps(body)


def run_load(
    publisher: LoadPublisher,
    background: list[DeviceRecord],
    triggers: list[DeviceRecord],
    rate: float,
    warmup_s: float,
    duration_s: float,
) -> tuple[int, float, dict[str, float]]:
    """Paced background load with triggers spread over `duration_s` after the warm-up.

    Returns (background messages sent, seconds the load ran, trigger publish wall times).
    """
    trigger_every_s = duration_s / max(1, len(triggers))
    published: dict[str, float] = {}
    started = time.monotonic()
    end = started + warmup_s + duration_s
    next_trigger = started + warmup_s
    sent = 0
    count = len(background)
    while (now := time.monotonic()) < end:
        due = int((now - started) * rate)
        wall_ms = int(time.time() * 1000)
        while sent < due:
            device = background[sent % count]
            publisher.publish(*background_message(device, sent // count, wall_ms))
            sent += 1
            if sent % 500 == 0:
                publisher.pump(0)
        if now >= next_trigger and len(published) < len(triggers):
            device_id = triggers[len(published)].device_id
            wall = time.time()
            publisher.publish(*trigger_message(device_id, int(wall * 1000)))
            published[device_id] = wall
            next_trigger += trigger_every_s
        publisher.pump(0.001)
    return sent, time.monotonic() - started, published


def wait_rows(url: str, device_ids: list[str], timeout_s: float) -> None:
    """Wait until every trigger has its alarm and its case, or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cases = query_int(
            url,
            "SELECT count(*) FROM alarms a JOIN cases c ON c.alarm_id = a.id"
            " WHERE a.alarm_type = 'cover_open' AND a.source_id = ANY(%s)",
            (device_ids,),
        )
        if cases >= len(device_ids):
            return
        time.sleep(0.5)


@dataclass(frozen=True, slots=True)
class Latencies:
    """Per trigger, in ms: publish → hub receipt, receipt → alarm row, publish → alarm and case."""

    receipt: list[float]
    receipt_to_alarm: list[float]
    alarm: list[float]
    case: list[float]


def measure_latencies(url: str, published: dict[str, float]) -> Latencies:
    """Latencies of the triggers from the alarm and case rows and the stored reading's receipt."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT a.source_id, a.created_at, c.created_at, t.received_at FROM alarms a"
            " LEFT JOIN cases c ON c.alarm_id = a.id"
            " LEFT JOIN telemetry_manhole t ON t.device_id = a.source_id"
            " WHERE a.alarm_type = 'cover_open' AND a.source_id = ANY(%s)",
            (list(published),),
        ).fetchall()
    found = Latencies([], [], [], [])
    for device_id, alarm_at, case_at, received_at in rows:
        sent = published[device_id]
        found.alarm.append((alarm_at.timestamp() - sent) * 1000)
        if case_at is not None:
            found.case.append((case_at.timestamp() - sent) * 1000)
        if received_at is not None:
            found.receipt.append((received_at.timestamp() - sent) * 1000)
            found.receipt_to_alarm.append((alarm_at - received_at).total_seconds() * 1000)
    return found


def run_phase(
    stack: Stack,
    label: str,
    env: dict[str, str],
    background: list[DeviceRecord],
    triggers: list[DeviceRecord],
    args: argparse.Namespace,
    duration_s: float,
) -> Phase:
    """Start a hub, run the load, stop the hub."""
    log = stack.work / f"hub-{label}.log"
    with running_hub(env, log, api=False) as hub:
        publisher = LoadPublisher(stack.mqtt_url, f"bench-pub-{label}")
        try:
            cpu_before = cpu_seconds(hub.pid)
            sent, elapsed, published = run_load(
                publisher, background, triggers, args.rate, args.warmup, duration_s
            )
            cpu_used = cpu_seconds(hub.pid) - cpu_before
            publisher.wait_acked()
        finally:
            publisher.close()
        wait_rows(stack.database_url, list(published), 30.0 + args.tolerance_s + 15.0)
    return Phase(label, sent, sent / elapsed, published, cpu_used / elapsed)


def tolerance_rules_file(path: Path, tolerance_s: float) -> Path:
    """The packaged rules file with another reorder tolerance."""
    text = resources.files("hub.rules").joinpath("rules.yaml").read_text("utf-8")
    config = yaml.safe_load(text)
    config["reorder_tolerance_s"] = tolerance_s
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), "utf-8")
    return path


def phase_figures(
    url: str, phase: Phase, tolerance: str, with_target: bool, rate: float
) -> list[Figure]:
    """Latency percentiles, where the time goes, and load figures of one phase."""
    found = measure_latencies(url, phase.triggers)
    n = len(phase.triggers)
    where = f"reorder_tolerance_s {tolerance}"
    missing = n - len(found.alarm)
    sample = f"{len(found.alarm)} of {n} triggers raised an alarm" + (
        f"; {missing} had none after the wait" if missing else ""
    )

    def series(name: str, values: list[float], target: bool, note: str | None) -> list[Figure]:
        return [
            Figure(
                "latency",
                f"{name} p{q} ({where})",
                percentile(values, q),
                "ms",
                TARGET_ALARM_P99 if target and q == 99 else None,
                note if q == 50 else None,
            )
            for q in (50, 95, 99)
        ]

    figures = series("publish → alarm", found.alarm, with_target, sample)
    figures += series(
        "publish → case",
        found.case,
        False,
        f"{len(found.case)} of {n} triggers filed into a case (cover_open: at once)",
    )
    figures += [
        Figure(
            "latency",
            f"publish → hub receipt p50 ({where})",
            percentile(found.receipt, 50),
            "ms",
            None,
            "received_at of the stored reading",
        ),
        Figure(
            "latency",
            f"hub receipt → alarm row p50 ({where})",
            percentile(found.receipt_to_alarm, 50),
            "ms",
            None,
            "batching (HUB_BATCH_INTERVAL_MS), COPY commit, rules, alarm insert",
        ),
        Figure(
            "latency",
            f"background load achieved ({where})",
            phase.background_rate,
            "msg/s",
            None,
            f"asked for {rate:,.0f} msg/s",
        ),
        Figure(
            "latency",
            f"hub CPU during the load ({where})",
            100 * phase.hub_cpu_share,
            "%",
            None,
            "of one core; the broker, PostgreSQL and the publisher share the machine",
        ),
    ]
    return figures


def main() -> int:
    """Run the phases and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=5000.0, help="background msg/s")
    parser.add_argument("--devices", type=int, default=20_000, help="background devices")
    parser.add_argument("--warmup", type=float, default=10.0, help="s of load before triggers")
    parser.add_argument("--duration", type=float, default=60.0, help="s of triggers")
    parser.add_argument("--trigger-rate", type=float, default=5.0, help="triggers per second")
    parser.add_argument(
        "--tolerance-s", type=float, default=0.0, help="reorder tolerance of the main phase"
    )
    parser.add_argument(
        "--packaged-duration",
        type=float,
        default=0.0,
        help="s of triggers with the packaged rules file (0: skip that phase)",
    )
    parser.add_argument(
        "--hub-setting",
        action="append",
        default=[],
        metavar="HUB_NAME=VALUE",
        help="an extra setting of the hub in both phases, e.g. HUB_BATCH_INTERVAL_MS=50",
    )
    add_json_option(parser)
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.hub_setting)

    main_triggers = trigger_devices("T", round(args.duration * args.trigger_rate))
    packaged_triggers = trigger_devices("P", round(args.packaged_duration * args.trigger_rate))
    background = background_devices(args.devices)
    figures: list[Figure] = []
    with local_stack("latency") as stack:
        copy_devices(stack.database_url, background + main_triggers + packaged_triggers)
        rules = tolerance_rules_file(stack.work / "rules.yaml", args.tolerance_s)
        env = hub_env(stack, ROOT_TOPIC, HUB_RULES_FILE=str(rules), **extra)
        phase = run_phase(stack, "main", env, background, main_triggers, args, args.duration)
        figures += phase_figures(
            stack.database_url, phase, f"{args.tolerance_s:g} s", True, args.rate
        )
        sent = phase.background_sent
        if packaged_triggers:
            packaged = run_phase(
                stack,
                "packaged",
                hub_env(stack, ROOT_TOPIC, **extra),
                background,
                packaged_triggers,
                args,
                args.packaged_duration,
            )
            figures += [
                f
                for f in phase_figures(stack.database_url, packaged, "packaged", True, args.rate)
                if "→ alarm" in f.metric or "receipt" in f.metric
            ]
            sent += packaged.background_sent
        triggers = len(main_triggers) + len(packaged_triggers)
        stored = query_int(
            stack.database_url,
            "SELECT (SELECT count(*) FROM telemetry_parking)"
            " + (SELECT count(*) FROM telemetry_manhole)",
        )
        dead = query_int(stack.database_url, "SELECT count(*) FROM dead_letters")
        figures.append(
            Figure(
                "latency",
                "readings stored of published",
                100 * stored / (sent + triggers),
                "%",
                None,
                f"{stored:,} of {sent + triggers:,}; {dead} dead letters",
            )
        )
    publish_figures(
        f"publish → alarm / case latency: {args.devices:,} background devices at "
        f"{args.rate:,.0f} msg/s, a cover_open trigger every {1 / args.trigger_rate:g} s",
        figures,
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
