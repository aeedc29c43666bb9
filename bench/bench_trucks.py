"""How many truck positions per second the rule engine judges with the truck rules, on one core.

Builds a synthetic city (sites, one permit and route per truck), then feeds positions of
`--trucks` trucks driving their routes (every truck every `--interval` seconds, a few off
route, speeding or with the cover open) through `RuleEngine.process` in batches, as the
alarm flow does, and prints positions/s with all truck rules and with none (the engine's
own cost), and the share of one core that 10,000 trucks every 10 s (1,000/s) would use.

    python bench/bench_trucks.py [--trucks 10000] [--rounds 20] [--sites 60]
"""

import argparse
import itertools
import math
import random
import time
from datetime import UTC, date, datetime, timedelta

from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind, Load
from hub.devices.trucks import TruckPayload
from hub.geometry import LocalProjection
from hub.rules.config import load_rules_config
from hub.rules.engine import RuleEngine
from hub.rules.interface import AnyRule, DeviceInfo
from hub.rules.truck_context import TruckContext, TruckContextSource
from hub.rules.truck_records import Permit, Site, SiteType
from hub.rules.trucks import build_rules

CENTRE = LocalProjection(31.30, 120.62)
T0 = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 21:00 in Suzhou: night permits allow it


def _lonlat(x: float, y: float) -> tuple[float, float]:
    lat = CENTRE.centre_lat + y / CENTRE.m_per_deg_lat
    lon = CENTRE.centre_lon + x / CENTRE.m_per_deg_lon
    return (lon, lat)


def _square(x: float, y: float, half_m: float) -> list[tuple[float, float]]:
    return [
        _lonlat(x - half_m, y - half_m),
        _lonlat(x + half_m, y - half_m),
        _lonlat(x + half_m, y + half_m),
        _lonlat(x - half_m, y + half_m),
        _lonlat(x - half_m, y - half_m),
    ]


def build_city(
    trucks: int, n_sites: int, rng: random.Random
) -> tuple[TruckContext, list[list[tuple[float, float]]]]:
    """Sites on a 20 km square and a 6-10 vertex Manhattan route per truck (metres too)."""
    sites = []
    centres = []
    for i in range(n_sites):
        x, y = rng.uniform(-10_000, 10_000), rng.uniform(-10_000, 10_000)
        kind = SiteType.CONSTRUCTION if i % 2 == 0 else SiteType.DISPOSAL
        sites.append(Site(site_id=f"S-{i}", site_type=kind, ring=_square(x, y, 60.0)))
        centres.append((x, y, kind))
    construction = [c for c in centres if c[2] is SiteType.CONSTRUCTION]
    disposal = [c for c in centres if c[2] is SiteType.DISPOSAL]
    permits = []
    routes_xy = []
    for t in range(trucks):
        ox, oy, _ = rng.choice(construction)
        dx, dy, _ = rng.choice(disposal)
        route = [(ox, oy)]
        x, y = ox, oy
        for k in range(rng.randint(3, 5)):
            share = (k + 1) / 5
            x = x + (dx - x) * share
            route.append((x, y))
            y = y + (dy - y) * share
            route.append((x, y))
        route.append((dx, dy))
        routes_xy.append(route)
        permits.append(
            Permit(
                permit_id=f"P-{t}",
                truck_id=f"TRK-{t:05d}",
                route=[_lonlat(px, py) for px, py in route],
                disposal_site_ids=["S-1"],
                allowed_hours="20:00-06:00",
                valid_from=date(2025, 1, 1),
                valid_to=date(2030, 12, 31),
            )
        )
    return TruckContext.build(sites, permits), routes_xy


def _along(route: list[tuple[float, float]], d_m: float) -> tuple[float, float]:
    for (ax, ay), (bx, by) in itertools.pairwise(route):
        seg = math.hypot(bx - ax, by - ay)
        if d_m <= seg and seg > 0:
            t = d_m / seg
            return ax + t * (bx - ax), ay + t * (by - ay)
        d_m -= seg
    return route[-1]


def build_readings(
    routes: list[list[tuple[float, float]]], rounds: int, interval_s: float, rng: random.Random
) -> list[list[Reading]]:
    """Per round, one position per truck (1 in 50 off route, speeding or with cover open)."""
    batches = []
    for r in range(rounds):
        batch = []
        for t, route in enumerate(routes):
            ts = T0 + timedelta(seconds=r * interval_s + (t % 1000) / 100)
            x, y = _along(route, (r * interval_s * 10.0) % 8_000)
            odd = t % 50 == 0
            x += 300.0 if odd else rng.uniform(-10, 10)
            lon, lat = _lonlat(x, y)
            ms = round(ts.timestamp() * 1000)
            payload = TruckPayload(
                ts=ms,
                lat=lat,
                lon=lon,
                speed_kmh=75.0 if odd else 35.0,
                heading_deg=90.0,
                acc_on=True,
                body_lifted=False,
                cover_closed=not odd,
                load=Load.FULL,
            )
            batch.append(Reading(Kind.TRUCK, f"TRK-{t:05d}", Channel.TELEMETRY, ts, ts, payload))
        batches.append(batch)
    return batches


def run(rules: tuple[AnyRule, ...], trucks: int, batches: list[list[Reading]]) -> float:
    """Positions per second through `RuleEngine.process` (CPU time of this process)."""
    config = load_rules_config(None, {r.name: r.params_model for r in rules})
    devices = [DeviceInfo(f"TRK-{t:05d}", Kind.TRUCK) for t in range(trucks)]
    engine = RuleEngine(config, devices, now=T0, rules=rules)
    engine.process(batches[0])  # warm up: first fixes, states created
    count = 0
    started = time.process_time()
    for batch in batches[1:]:
        for i in range(0, len(batch), 2000):
            engine.process(batch[i : i + 2000])
        count += len(batch)
    engine.tick(T0 + timedelta(days=1))
    return count / (time.process_time() - started)


def main() -> None:
    """Build, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trucks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between fixes")
    parser.add_argument("--sites", type=int, default=60)
    args = parser.parse_args()
    rng = random.Random(7)
    context, routes = build_city(args.trucks, args.sites, rng)
    source = TruckContextSource()
    source.replace(context)
    batches = build_readings(routes, args.rounds, args.interval, rng)
    n = args.trucks * (args.rounds - 1)
    baseline = run((), args.trucks, batches)
    with_rules = run(build_rules(source), args.trucks, batches)
    per_reading_us = 1e6 / with_rules - 1e6 / baseline
    print(f"{args.trucks} trucks, {args.sites} sites, {n} positions judged")
    print(f"engine without rules:   {baseline:10,.0f} positions/s")
    print(f"engine with truck rules:{with_rules:10,.0f} positions/s")
    print(f"truck rules alone:      {per_reading_us:10.1f} µs/position")
    print(f"10,000 trucks every 10 s = 1,000 positions/s = {1000 / with_rules:.1%} of one core")


if __name__ == "__main__":
    main()
