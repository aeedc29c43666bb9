"""The receiver's codec against a real Mosquitto: what v5 publishers send arrives whole."""

import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.ingest.mqtt import MqttReceiver
from hub.ingest.pipeline import RawMessage
from tests.hub_process import wait_for

pytestmark = pytest.mark.integration


def test_topic_aliases_and_properties_of_a_v5_publisher_reach_the_handler_intact(
    mqtt_url: str, mqtt_root: str
) -> None:
    inbox: list[RawMessage] = []
    lock = threading.Lock()

    def take(message: RawMessage) -> None:
        with lock:
            inbox.append(message)

    receiver = MqttReceiver(
        url=mqtt_url, client_id=f"{mqtt_root}-aliases", root=mqtt_root, on_message=take
    )
    publisher = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{mqtt_root}-alias-pub", protocol=paho.MQTTv5
    )
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    receiver.start()
    try:
        wait_for(lambda: receiver.connected, 10, "connected")
        publisher.connect(host, int(port))
        publisher.loop_start()
        topics = [f"{mqtt_root}/lighting/l-{i}/telemetry" for i in range(3)]
        sent: list[tuple[str, bytes]] = []
        for round_ in range(3):
            for alias, topic in enumerate(topics, start=1):
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.TopicAlias = alias
                props.UserProperty = [("round", str(round_))]
                payload = b'{"round": %d}' % round_
                # The first round sets each alias, later rounds publish by alias alone.
                publisher.publish(
                    topic if round_ == 0 else "", payload, 1, properties=props
                ).wait_for_publish(10)
                sent.append((topic, payload))
        wait_for(lambda: len(inbox) >= len(sent), 10, "every message")
        receiver.ack([m.ack_token for m in inbox])
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        receiver.stop()
    assert sorted((m.topic, m.payload) for m in inbox) == sorted(sent)
    assert all(m.ack_token >= 0 and not m.retained for m in inbox)
