"""Publish a file of pre-built messages at QoS 1, at full speed or paced (bench helper)."""

import argparse
import pickle
import select
import sys
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.settings import MqttEndpoint


def publish_file(
    mqtt_url: str,
    path: Path,
    client_id: str,
    inflight: int = 5000,
    rate_per_s: float | None = None,
) -> float:
    """Publish every (topic, payload) pickled in `path`; return seconds until all are acked.

    paho's network loop is driven from this one thread (no loop_start): each publish is
    written at once and PUBACKs are read in bulk, which is about four times faster than
    the threaded loop and keeps the load generator from being the bottleneck. With
    `rate_per_s` the messages go out on a schedule instead (message i at i / rate), and
    the time ahead of it is spent reading acknowledgements.
    """
    messages: list[tuple[str, bytes]] = pickle.loads(path.read_bytes())  # noqa: S301 - our own file
    endpoint = MqttEndpoint(mqtt_url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    acked = 0

    def on_publish(c: paho.Client, u: object, mid: int, rc: object, p: object) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect(endpoint.host, endpoint.port)
    sock = client.socket()
    if sock is None:
        raise ConnectionError(f"cannot connect to {mqtt_url}")

    def pump(timeout_s: float) -> None:
        readable, _, _ = select.select([sock], [], [], timeout_s)
        if readable:
            client.loop_read(max_packets=1000)
        if client.want_write():
            client.loop_write()

    started = time.perf_counter()
    for i, (topic, payload) in enumerate(messages):
        if rate_per_s and i % 50 == 0:
            # Pace in small bursts: a sleep per message would cost more than the publish.
            while (ahead_s := started + i / rate_per_s - time.perf_counter()) > 0:
                pump(min(ahead_s, 0.01))
        client.publish(topic, payload, qos=1)
        if i % 200 == 0:
            pump(0)
    while acked < len(messages):
        pump(0.05)
        client.loop_misc()
    elapsed = time.perf_counter() - started
    client.disconnect()
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
