"""CPU per message of the ingest path's stages, each alone: where a hub's core goes.

bench_ingest measures the whole hub; this splits it. Each stage runs on its own in this
process, on bench_ingest's messages (lamps, parking spots, trucks; ~200-byte JSON):
  receive  the hub's MQTT receiver (hub/ingest/mqtt.py) draining a backlog the broker
           holds in its persistent session, acknowledging every message: a real Mosquitto
           started on a free port with the repository's tuning
  decode   topic routing, JSON parsing and payload validation (hub/devices/decode.py)
The rules' share is bench_rules' "CPU per reading, bench_ingest's mix", and the COPY's is
bench_ingest's raw COPY row rate. CPU time is user + system of this process over the
stage, so what else the machine runs changes it little.
"""

import argparse
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench_ingest import KINDS, build_messages
from figures import Figure, add_json_option, publish_figures
from mqtt_load import LoadPublisher

from hub.cli.local_stack import LocalMosquitto, free_port
from hub.devices.decode import DecodeLimits, decode_message
from hub.devices.kinds import Kind
from hub.ingest.mqtt import MqttReceiver
from hub.ingest.pipeline import RawMessage


def cpu_s() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll until predicate() is true."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def receive_us(messages: list[tuple[str, bytes]]) -> float:
    """CPU per message of receiving a backlog and acknowledging it, batch by batch."""
    with tempfile.TemporaryDirectory(prefix="hub-bench-stages-") as tmp:
        broker = LocalMosquitto(Path(tmp), free_port())
        broker.start()
        try:
            inbox: list[RawMessage] = []
            lock = threading.Lock()

            def take(message: RawMessage) -> None:
                with lock:
                    inbox.append(message)

            def receiver() -> MqttReceiver:
                return MqttReceiver(
                    url=broker.url, client_id="stages", root="bench", on_message=take
                )

            first = receiver()  # creates the persistent session, then leaves
            first.start()
            wait_until(lambda: first.connected, 10, "the first connection")
            first.stop()
            publisher = LoadPublisher(broker.url, "stages-pub")
            for topic, payload in messages:
                publisher.publish(topic, payload)
            if not publisher.wait_acked(300):
                raise TimeoutError("the broker did not acknowledge the backlog")
            publisher.close()
            drain = receiver()
            before = cpu_s()
            drain.start()
            acked = 0
            while acked < len(messages):
                with lock:
                    batch = inbox[acked:]
                if batch:
                    drain.ack([m.ack_token for m in batch])  # as the writer does per commit
                    acked += len(batch)
                else:
                    time.sleep(0.005)
            used = cpu_s() - before
            drain.stop()
        finally:
            broker.stop()
    return used / len(messages) * 1e6


def decode_us(messages: list[tuple[str, bytes]], devices: int) -> float:
    """CPU per message of routing, parsing and validating."""
    kinds = {f"{KINDS[d % len(KINDS)]}-{d}": Kind(KINDS[d % len(KINDS)]) for d in range(devices)}
    now = datetime.now(UTC)
    limits = DecodeLimits()
    before = cpu_s()
    for topic, payload in messages:
        decode_message(topic, payload, now, root="bench", registry=kinds.get, limits=limits)
    return (cpu_s() - before) / len(messages) * 1e6


def main() -> int:
    """Run each stage and print its CPU per message."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=10_000)
    add_json_option(parser)
    args = parser.parse_args()
    start_ms = int(time.time() * 1000) - (args.messages // args.devices + 60) * 1000
    messages = build_messages("bench", args.devices, args.messages, start_ms)
    where = f"{args.messages:,} messages of {args.devices:,} devices, one thread"
    figures = [
        Figure(
            "stages",
            "MQTT receive and acknowledge, per message",
            receive_us(messages),
            "µs",
            None,
            f"{where}; a backlog drained from Mosquitto's persistent session",
        ),
        Figure(
            "stages",
            "decode and validate, per message",
            decode_us(messages, args.devices),
            "µs",
            None,
            where,
        ),
    ]
    publish_figures("CPU per message of each ingest stage, alone", figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
