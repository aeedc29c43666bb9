"""Publish a file of pre-built messages at QoS 1, at full speed or paced (bench helper)."""

import argparse
import pickle
import sys
import time
from pathlib import Path

from mqtt_load import LoadPublisher


def publish_file(
    mqtt_url: str,
    path: Path,
    client_id: str,
    inflight: int = 5000,
    rate_per_s: float | None = None,
) -> float:
    """Publish every (topic, payload) pickled in `path`; return seconds until all are acked.

    With `rate_per_s` the messages go out on a schedule (message i at i / rate, in bursts
    of 50) and the time ahead of it is spent reading acknowledgements.
    """
    messages: list[tuple[str, bytes]] = pickle.loads(path.read_bytes())  # noqa: S301 - our own file
    publisher = LoadPublisher(mqtt_url, client_id, inflight)
    started = time.perf_counter()
    for i, (topic, payload) in enumerate(messages):
        if rate_per_s and i % 50 == 0:
            # Pace in small bursts: a sleep per message would cost more than the publish.
            while (ahead_s := started + i / rate_per_s - time.perf_counter()) > 0:
                publisher.pump(min(ahead_s, 0.01))
        publisher.publish(topic, payload)
        if i % 200 == 0:
            publisher.pump(0)
    if not publisher.wait_acked(600):
        raise TimeoutError(f"{publisher.sent - publisher.acked} publishes not acknowledged")
    elapsed = time.perf_counter() - started
    publisher.close()
    return elapsed


def main() -> int:
    """CLI: publisher.py MQTT_URL FILE CLIENT_ID [--rate MSG_PER_S]; prints seconds to all acked."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mqtt_url")
    parser.add_argument("file", type=Path)
    parser.add_argument("client_id")
    parser.add_argument(
        "--rate", type=float, default=None, help="messages per second (default: full speed)"
    )
    args = parser.parse_args()
    elapsed = publish_file(args.mqtt_url, args.file, args.client_id, rate_per_s=args.rate)
    sys.stdout.write(f"{elapsed:.3f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
