"""The MQTT receiver against a real Mosquitto: buffered reads, batched acks, redelivery."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.ingest.mqtt import MqttReceiver
from hub.ingest.pipeline import RawMessage
from tests.hub_process import publish_all, wait_for


@contextmanager
def receiving(mqtt_url: str, root: str, inbox: list[RawMessage]) -> Iterator[MqttReceiver]:
    lock = threading.Lock()

    def take(message: RawMessage) -> None:
        with lock:
            inbox.append(message)

    receiver = MqttReceiver(
        url=mqtt_url,
        client_id=f"{root}-receiver",
        root=root,
        on_message=take,
        receive_maximum=5_000,
    )
    receiver.start()
    try:
        wait_for(lambda: receiver.connected, 10, "connected")
        yield receiver
    finally:
        receiver.stop()


def test_messages_arrive_intact_and_acknowledged_ones_are_not_redelivered(
    mqtt_url: str, mqtt_root: str
) -> None:
    # Sizes on both sides of the 64 KiB read and of the one/two-byte length boundary,
    # so packets straddle buffer ends.
    sizes = [0, 1, 126, 127, 128, 16_383, 16_384, 70_000, 300_000]
    messages = [
        (f"{mqtt_root}/parking/p-{i}/telemetry", bytes([i % 251]) * sizes[i % len(sizes)])
        for i in range(2_000)
    ]
    first: list[RawMessage] = []
    with receiving(mqtt_url, mqtt_root, first) as receiver:
        publish_all(mqtt_url, messages, "receiver-test-pub")
        wait_for(lambda: len(first) >= len(messages), 30, "every message")
        assert sorted((m.topic, m.payload) for m in first) == sorted(messages)
        # Acknowledge the first half in one call (sent as one write) just before stopping;
        # keep the rest open.
        receiver.ack([m.ack_token for m in first[:1_000]])
    again: list[RawMessage] = []
    with receiving(mqtt_url, mqtt_root, again) as receiver:
        wait_for(lambda: len(again) >= 1_000, 30, "the unacknowledged half redelivered")
        assert sorted(m.topic for m in again) == sorted(m.topic for m in first[1_000:])
        receiver.ack([m.ack_token for m in again])
    last: list[RawMessage] = []
    with receiving(mqtt_url, mqtt_root, last):
        publish_all(mqtt_url, [(f"{mqtt_root}/parking/p-end/telemetry", b"end")], "pub-end")
        wait_for(lambda: len(last) >= 1, 10, "the marker")
        assert [m.payload for m in last] == [b"end"]  # nothing acknowledged came back


def test_publish_properties_are_skipped_and_the_payload_kept(mqtt_url: str, mqtt_root: str) -> None:
    # The short PUBLISH path reads past the properties a v5 publisher may attach.
    publisher = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="props-pub", protocol=paho.MQTTv5
    )
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    publisher.connect(host, int(port))
    publisher.loop_start()
    inbox: list[RawMessage] = []
    try:
        with receiving(mqtt_url, mqtt_root, inbox):
            for i in range(3):
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.ContentType = "application/json"
                props.MessageExpiryInterval = 3600
                props.UserProperty = [("firmware", "x" * (200 * i)), ("site", "东区")]
                publisher.publish(
                    f"{mqtt_root}/parking/p-{i}/telemetry", b'{"n": %d}' % i, 1, properties=props
                ).wait_for_publish(10)
            wait_for(lambda: len(inbox) >= 3, 10, "three messages")
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    assert sorted((m.topic, m.payload) for m in inbox) == [
        (f"{mqtt_root}/parking/p-{i}/telemetry", b'{"n": %d}' % i) for i in range(3)
    ]


def test_a_crashed_network_loop_is_restarted_and_never_reads_as_connected(
    mqtt_url: str, mqtt_root: str
) -> None:
    inbox: list[RawMessage] = []
    seen_while_crashed: list[bool] = []

    def take(message: RawMessage) -> None:
        if not inbox and not seen_while_crashed:
            seen_while_crashed.append(True)
            raise RuntimeError("a bug on the network thread")  # the loop dies here
        inbox.append(message)

    receiver = MqttReceiver(
        url=mqtt_url, client_id=f"{mqtt_root}-crash", root=mqtt_root, on_message=take
    )
    receiver.start()
    try:
        wait_for(lambda: receiver.connected, 10, "connected")
        publish_all(mqtt_url, [(f"{mqtt_root}/parking/p-1/telemetry", b"{}")], "crash-pub")
        wait_for(lambda: receiver.restarts == 1, 10, "the supervisor's restart")
        # The message was never acknowledged: the broker delivers it again after the restart.
        wait_for(lambda: len(inbox) == 1, 20, "the message redelivered")
        assert receiver.running()
        assert receiver.connected
    finally:
        receiver.stop()
    assert not receiver.running()
    assert not receiver.connected  # a stopped loop never reads as connected
