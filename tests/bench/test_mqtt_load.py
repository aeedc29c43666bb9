"""The benchmarks' load publisher against a real Mosquitto: every message arrives intact."""

import threading

import paho.mqtt.client as paho
import pytest
from mqtt_load import LoadPublisher, PacketScanner, publish_packet
from paho.mqtt.enums import CallbackAPIVersion

from tests.hub_process import wait_for


def test_every_publish_arrives_with_its_topic_and_payload_and_is_acknowledged(
    mqtt_url: str, mqtt_root: str
) -> None:
    received: list[tuple[str, bytes, int]] = []
    subscribed = threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="load-check")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{mqtt_root}/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    sub.on_message = lambda c, u, m: received.append((m.topic, bytes(m.payload), m.qos))
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    sub.connect(host, int(port))
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        # Payloads across the one- and two-byte remaining lengths and a 70 KiB one, more
        # messages than the packet id space (ids wrap) and a small in-flight window.
        messages = [
            (f"{mqtt_root}/parking/p-{i % 7}/telemetry", b"x" * (i % 300)) for i in range(70_000)
        ]
        messages.append((f"{mqtt_root}/truck/t-1/telemetry", bytes(range(256)) * 280))
        publisher = LoadPublisher(mqtt_url, "load-pub", inflight=500)
        for topic, payload in messages:
            publisher.publish(topic, payload)
        assert publisher.wait_acked(60)
        publisher.close()
        assert publisher.acked == publisher.sent == len(messages)
        wait_for(lambda: len(received) >= len(messages), 60, "every message delivered")
        assert sorted(received) == sorted((t, p, 1) for t, p in messages)
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_the_scanner_counts_packets_split_anywhere_in_the_stream() -> None:
    stream = b"\x20\x02\x00\x00" + b"".join(b"\x40\x02" + i.to_bytes(2, "big") for i in range(9))
    stream += b"\xd0\x00" + publish_packet("a/b", b"y" * 200, 7)  # PINGRESP; a long packet
    for cut in range(len(stream) + 1):
        scanner = PacketScanner()
        scanner.feed(stream[:cut])
        scanner.feed(stream[cut:])
        assert (scanner.connack, scanner.pubacks) == (0, 9)


def test_a_tls_url_is_refused(mqtt_url: str) -> None:
    with pytest.raises(ValueError, match="plain MQTT"):
        LoadPublisher(mqtt_url.replace("mqtt://", "mqtts://"), "x")
