"""Benchmark: how many messages per second one simulator process publishes to a real broker.

python bench/bench_simulator.py --mqtt-url mqtt://127.0.0.1:1883 --devices 100000 --seconds 20
"""

import argparse
import sys
import time
from datetime import UTC, datetime

from simulators.city import CitySpec
from simulators.engine import Simulation
from simulators.faults import NoiseModel
from simulators.generator import generate_city
from simulators.mqtt import DEFAULT_MQTT_URL, PahoPublisher
from simulators.publisher import CountingPublisher, Publisher

STEP_MS = 10_000


def main() -> int:
    """Generate a city, simulate as fast as the broker acknowledges, print the rate reached."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mqtt-url", default=DEFAULT_MQTT_URL)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="wall time to publish for")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--root", default="benchcity")
    parser.add_argument("--dry-run", action="store_true", help="no broker: simulation cost only")
    args = parser.parse_args()

    t0 = time.perf_counter()
    city = generate_city(CitySpec.for_devices(args.devices, seed=args.seed))
    print(f"generated {city.device_count()} devices in {time.perf_counter() - t0:.1f} s")
    publisher: Publisher
    paho_publisher: PahoPublisher | None = None
    if args.dry_run:
        publisher = CountingPublisher()
    else:
        paho_publisher = PahoPublisher(args.mqtt_url, client_id="bench-simulator")
        publisher = paho_publisher
    start_ms = int(datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp() * 1000)  # 17:00 local
    simulation = Simulation(city, publisher, start_ms=start_ms, root=args.root, noise=NoiseModel())
    t0 = time.perf_counter()
    simulation.start()  # retained online status for every device
    status_s = time.perf_counter() - t0
    print(f"published {simulation.messages} retained statuses in {status_s:.1f} s")

    before = simulation.messages
    t0 = time.perf_counter()
    sim_ms = start_ms
    while time.perf_counter() - t0 < args.seconds:
        sim_ms += STEP_MS
        simulation.advance_to(sim_ms)
    publish_s = time.perf_counter() - t0
    flushed = publisher.flush(60.0)
    total_s = time.perf_counter() - t0
    published = simulation.messages - before
    sim_hours = (sim_ms - start_ms) / 3_600_000
    print(f"simulated {sim_hours:.2f} h of {city.device_count()} devices")
    print(
        f"published {published} messages in {publish_s:.1f} s: {published / publish_s:,.0f} msg/s"
    )
    if paho_publisher is not None:
        print(
            f"acknowledged (QoS 1) {paho_publisher.acknowledged - before} in {total_s:.1f} s: "
            f"{(paho_publisher.acknowledged - before) / total_s:,.0f} msg/s"
            + ("" if flushed else " (flush timed out)")
        )
        paho_publisher.close()
    return 0 if flushed else 1


if __name__ == "__main__":
    sys.exit(main())
