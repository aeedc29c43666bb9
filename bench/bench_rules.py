"""Readings per second the rule engine evaluates on one core with 100,000 devices registered."""

import argparse
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from bench_ingest import KINDS, build_messages
from figures import Figure, add_json_option, encode_figures

from hub.devices.decode import DecodeLimits, Reading, decode_readings, parse_topic
from hub.devices.kinds import Channel, Kind
from hub.devices.manholes import ManholePayload
from hub.devices.parking import ParkingPayload
from hub.rules.catalogue import domain_group_rules, domain_rules
from hub.rules.config import RulesConfig, load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import DeviceInfo

DEVICES = 100_000
ROUNDS = 3
BATCH = 2_000
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def build_readings() -> list[Reading]:
    """One reading per device per minute; manholes (half) with a few tilted, parking the rest."""
    readings: list[Reading] = []
    for round_no in range(ROUNDS):
        for i in range(DEVICES):
            ts = T0 + timedelta(seconds=60 * round_no + i % 60, milliseconds=i % 1000)
            ts_ms = round(ts.timestamp() * 1000)
            received = ts + timedelta(milliseconds=300)
            if i % 2:
                tilt = 14.0 if i % 97 == 0 else 1.0
                payload: ManholePayload | ParkingPayload = ManholePayload(
                    ts=ts_ms, tilt_deg=tilt, cover_open=False
                )
                kind = Kind.MANHOLE
            else:
                payload = ParkingPayload(ts=ts_ms, occupied=bool(i % 3))
                kind = Kind.PARKING
            readings.append(Reading(kind, f"dev-{i}", Channel.TELEMETRY, ts, received, payload))
    readings.sort(key=lambda r: r.received_at)
    return readings


def run(readings: list[Reading], devices: list[DeviceInfo], config: RulesConfig) -> list[Figure]:
    """Register all devices, feed batches with a tick per second of receive time, print rates."""
    tracemalloc.start()
    started = time.perf_counter()
    engine = RuleEngine(
        config, devices, now=T0, rules=domain_rules(), group_rules=domain_group_rules()
    )
    registered = time.perf_counter()
    engine_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    signals = 0
    process_s = 0.0
    tick_s = 0.0
    ticks = 0
    next_tick = T0 + timedelta(seconds=1)
    for start in range(0, len(readings), BATCH):
        batch = readings[start : start + BATCH]
        t = time.perf_counter()
        signals += len(engine.process(batch))
        process_s += time.perf_counter() - t
        while next_tick <= batch[-1].received_at:
            t = time.perf_counter()
            signals += len(engine.tick(next_tick))
            tick_s += time.perf_counter() - t
            ticks += 1
            next_tick += timedelta(seconds=1)
    total = len(readings)
    print(f"-- reorder_tolerance_s={config.reorder_tolerance_s:g}")
    print(
        f"registered {len(devices):,} devices in {registered - started:.2f} s, "
        f"{engine_bytes / len(devices):.0f} bytes each"
    )
    print(f"process(): {total / process_s:,.0f} readings/s ({process_s:.2f} s)")
    print(f"tick(): {ticks} ticks, {1000 * tick_s / max(1, ticks):.2f} ms each")
    print(
        f"overall, readings evaluated incl. ticks: {total / (process_s + tick_s):,.0f} readings/s"
    )
    print(f"signals: {signals:,}; live conditions: {engine.live_conditions:,}; {engine.stats}")
    where = f"reorder_tolerance_s {config.reorder_tolerance_s:g}"
    return [
        Figure(
            "rules",
            f"engine memory per registered device ({where})",
            engine_bytes / len(devices),
            "B",
            None,
            f"{len(devices):,} devices registered in {registered - started:.2f} s (tracemalloc)",
        ),
        Figure("rules", f"process() ({where})", total / process_s, "readings/s", None, None),
        Figure("rules", f"tick() ({where})", 1000 * tick_s / max(1, ticks), "ms", None, None),
        Figure(
            "rules",
            f"readings evaluated incl. ticks ({where})",
            total / (process_s + tick_s),
            "readings/s",
            None,
            f"{total:,} readings of manhole covers and parking spots, one core",
        ),
    ]


def ingest_mix_figures(devices: int = 10_000, count: int = 200_000) -> list[Figure]:
    """The rules on bench_ingest's readings: lamps, parking spots and muck trucks.

    The manhole and parking readings above exercise the engine; this mix is what the
    ingest benchmark's hub judges, and trucks cost the most (projection, permit and
    site lookups, eight rules on one derived fix).
    """
    now = datetime.now(UTC)
    kinds = {f"{KINDS[d % len(KINDS)]}-{d}": Kind(KINDS[d % len(KINDS)]) for d in range(devices)}
    readings: list[Reading] = []
    start_ms = int(now.timestamp() * 1000) - (count // devices + 60) * 1000
    for topic, payload in build_messages("bench", devices, count, start_ms):
        readings.extend(decode_readings(parse_topic(topic, "bench"), payload, now, DecodeLimits()))
    engine = RuleEngine(
        load_rules_config(),
        [DeviceInfo(d, k, lat=31.3, lon=120.6) for d, k in kinds.items()],
        now=now,
        rules=domain_rules(),
        group_rules=domain_group_rules(),
    )
    started = time.perf_counter()
    for start in range(0, len(readings), BATCH):
        engine.process(readings[start : start + BATCH])
        engine.tick(now)
    elapsed = time.perf_counter() - started
    per_reading_us = elapsed / len(readings) * 1e6
    print(f"-- bench_ingest's mix: {per_reading_us:.1f} µs per reading incl. ticks")
    return [
        Figure(
            "rules",
            "CPU per reading, bench_ingest's mix (lamps, parking, trucks)",
            per_reading_us,
            "µs",
            None,
            f"{len(readings):,} readings of {devices:,} devices, packaged rules, one core",
        )
    ]


def main() -> None:
    """Run the benchmark with the packaged rules file, then without reorder buffering."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_json_option(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    readings = build_readings()
    print(
        f"built {len(readings):,} readings in {time.perf_counter() - started:.2f} s (not counted)"
    )
    devices = [
        DeviceInfo(f"dev-{i}", Kind.MANHOLE if i % 2 else Kind.PARKING, group_id=f"g-{i // 50}")
        for i in range(DEVICES)
    ]
    config = load_rules_config()
    figures = run(readings, devices, config)
    # Also with a 10 s hold, for rules files that ask for one (the packaged tolerance is 0).
    figures += run(readings, devices, config.model_copy(update={"reorder_tolerance_s": 10.0}))
    figures += ingest_mix_figures()
    if args.json is not None:
        args.json.write_text(encode_figures(figures), encoding="utf-8")


if __name__ == "__main__":
    main()
