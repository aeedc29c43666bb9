"""Publish a file of pre-built messages at QoS 1 as fast as the broker takes them (bench helper)."""

import argparse
import pickle
import select
import sys
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.settings import MqttEndpoint


def publish_file(mqtt_url: str, path: Path, client_id: str, inflight: int = 5000) -> float:
    """Publish every (topic, payload) pickled in `path`; return seconds until all are acked.

    paho's network loop is driven from this one thread (no loop_start): each publish is
    written at once and PUBACKs are read in bulk, which is about four times faster than
    the threaded loop and keeps the load generator from being the bottleneck.
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
    """CLI: publisher.py MQTT_URL FILE CLIENT_ID."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mqtt_url")
    parser.add_argument("file", type=Path)
    parser.add_argument("client_id")
    args = parser.parse_args()
    elapsed = publish_file(args.mqtt_url, args.file, args.client_id)
    sys.stdout.write(f"{elapsed:.3f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
