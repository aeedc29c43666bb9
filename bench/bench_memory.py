"""Resident memory of a hub process with 100,000 registered devices, before and after every
device has reported once.

Starts its own PostgreSQL and Mosquitto. First runs the hub with an empty registry (the
baseline of the code and its libraries), then imports a simulated city of `--devices`
devices (simulators.generator: 60 % lamps, ~20 % manhole covers, ~20 % parking spots,
trucks with permits and sites, a cabinet per 120 lamps; devices by COPY, the rest through
the store) and starts the hub again with its API, as deployed. It reads VmRSS and VmHWM
(peak) from /proc/<pid>/status after start-up, then publishes one realistic reading per
device (the first each simulated device sends in half an hour ending now) and reads them
again once all are stored and the rules have judged them, so per-device rule state exists.

    python bench/bench_memory.py [--devices 100000] [--json PATH]
"""

import argparse
import sys
import time
from collections import Counter

from figures import Figure, add_json_option, publish_figures
from stack import (
    Stack,
    hub_env,
    import_city,
    local_stack,
    memory_kib,
    publish_all,
    query_int,
    running_hub,
)

from hub.cli.local_stack import free_port
from simulators.city import City, CitySpec
from simulators.engine import Simulation
from simulators.faults import NoiseModel
from simulators.generator import generate_city
from simulators.publisher import MemoryPublisher

ROOT_TOPIC = "mem"
TARGET = "< 400 MB"
SETTLE_S = 5.0
LATER_S = 30.0
TELEMETRY_COUNT = (
    "SELECT (SELECT count(*) FROM telemetry_lighting) + (SELECT count(*) FROM telemetry_cabinet)"
    " + (SELECT count(*) FROM telemetry_truck) + (SELECT count(*) FROM telemetry_manhole)"
    " + (SELECT count(*) FROM telemetry_parking)"
)


def first_readings(city: City, window_s: float = 1800.0) -> list[tuple[str, bytes]]:
    """Each device's first telemetry or event message in `window_s` of simulation ending now."""
    publisher = MemoryPublisher()
    end_ms = int(time.time() * 1000)
    simulation = Simulation(
        city,
        publisher,
        start_ms=end_ms - int(window_s * 1000),
        root=ROOT_TOPIC,
        noise=NoiseModel.silent(),
    )
    simulation.advance_to(end_ms)
    chosen: dict[str, tuple[str, bytes]] = {}
    for message in publisher.messages:
        _, _, device_id, channel = message.topic.split("/", 3)
        if channel in ("telemetry", "event") and device_id not in chosen:
            chosen[device_id] = (message.topic, message.payload)
    return list(chosen.values())


def megabytes(kib: int) -> float:
    """KiB (as /proc reports) in MB."""
    return kib * 1024 / 1e6


def wait_stored(url: str, count: int, timeout_s: float) -> None:
    """Wait until `count` readings are stored."""
    deadline = time.monotonic() + timeout_s
    while query_int(url, TELEMETRY_COUNT) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{query_int(url, TELEMETRY_COUNT)} of {count} readings stored")
        time.sleep(0.5)


def baseline_kib(stack: Stack) -> int:
    """VmRSS of a hub with no devices registered, after start-up."""
    env = hub_env(stack, ROOT_TOPIC, HUB_API_PORT=str(free_port()))
    with running_hub(env, stack.work / "hub-empty.log", api=True) as hub:
        time.sleep(SETTLE_S)
        return memory_kib(hub.pid)["VmRSS"]


def main() -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="publish the readings paced at this many msg/s (default: as fast as acknowledged)",
    )
    add_json_option(parser)
    args = parser.parse_args()

    city = generate_city(CitySpec.for_devices(args.devices, seed=args.seed))
    messages = first_readings(city)
    kinds = Counter(topic.split("/")[1] for topic, _ in messages)
    with local_stack("memory") as stack:
        empty = baseline_kib(stack)
        imported = import_city(stack.database_url, city, stack.work / "city")
        # A registry imported long before the hub starts, as in service, not seconds before
        # (the hub re-reads devices changed in the last 10 s at each registry refresh).
        query_int(
            stack.database_url,
            "UPDATE devices SET updated_at = now() - interval '1 day' RETURNING 1",
        )
        env = hub_env(stack, ROOT_TOPIC, HUB_API_PORT=str(free_port()))
        with running_hub(env, stack.work / "hub.log", api=True) as hub:
            start_s = hub.startup_s
            time.sleep(SETTLE_S)
            started = memory_kib(hub.pid)
            clock = time.monotonic()
            publish_s = publish_all(stack.mqtt_url, messages, "bench-memory", args.rate)
            wait_stored(stack.database_url, len(messages), 600)
            stored_s = time.monotonic() - clock
            time.sleep(SETTLE_S)  # the rules judge the last committed batches
            ingested = memory_kib(hub.pid)
            time.sleep(LATER_S)  # readings held for reordering are released by then
            later = memory_kib(hub.pid)
    devices = imported["devices"]
    rss_after = megabytes(ingested["VmRSS"])
    mix = ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common())
    figures = [
        Figure("memory", "registered devices", devices, "", None, mix),
        Figure(
            "memory",
            "hub start-up to subscribed",
            start_s,
            "s",
            None,
            "registry, rules state, open alarms and truck context loaded",
        ),
        Figure("memory", "RSS, no devices registered", megabytes(empty), "MB", None, None),
        Figure("memory", "RSS after start-up", megabytes(started["VmRSS"]), "MB", TARGET, None),
        Figure(
            "memory",
            "RSS after every device reported once",
            rss_after,
            "MB",
            TARGET,
            f"{len(messages):,} readings published in {publish_s:.1f} s, all stored "
            f"{stored_s:.1f} s after the first; read {SETTLE_S:g} s later",
        ),
        Figure(
            "memory",
            f"RSS {LATER_S:g} s later",
            megabytes(later["VmRSS"]),
            "MB",
            TARGET,
            "no more readings meanwhile",
        ),
        Figure("memory", "peak RSS (VmHWM)", megabytes(later["VmHWM"]), "MB", TARGET, None),
        Figure(
            "memory",
            "RSS per registered device",
            (later["VmRSS"] - empty) * 1024 / devices,
            "B",
            None,
            f"RSS {LATER_S:g} s after the readings minus the empty hub's, per device",
        ),
    ]
    publish_figures(
        f"hub memory with {devices:,} registered devices (API on, as deployed)",
        figures,
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
