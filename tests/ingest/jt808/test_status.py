"""A terminal's online/offline status is published in the terminal's own time: online at its
first fix (before that fix), offline just after its last one. The hub judges a device's
status in its reading order, so a gateway clock ahead of a blind-area batch or a replay
would make every later reading of the truck look late to the rules."""

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.gateway import Gateway, Terminal
from hub.settings import MqttEndpoint
from tests.hub_process import wait_for
from tests.ingest.jt808.terminal import TerminalClient, gateway_thread
from tests.ingest.jt808.test_metrics import config

pytestmark = pytest.mark.integration
PHONE = "13912346666"


class OneTruck:
    """A directory holding one terminal."""

    async def find(self, phone: str) -> Terminal | None:
        """The truck T-6 for PHONE."""
        return Terminal("T-6", PHONE) if phone == PHONE else None


def test_status_follows_the_terminals_fixes(mqtt_url: str, mqtt_root: str) -> None:
    seen: list[tuple[str, dict[str, object]]] = []
    lock = threading.Lock()
    endpoint = MqttEndpoint(mqtt_url)
    listener = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"status-{mqtt_root}")

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        with lock:
            seen.append((message.topic.rsplit("/", 1)[1], orjson.loads(message.payload)))

    listener.on_message = on_message
    listener.connect(endpoint.host, endpoint.port)
    listener.subscribe(f"{mqtt_root}/truck/T-6/#", qos=1)
    listener.loop_start()
    quiet = dataclasses.replace(config(mqtt_url, mqtt_root), metrics_port=None)
    yesterday = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)  # a replay, or a blind-area upload
    try:
        with gateway_thread(Gateway(quiet, OneTruck())) as running:
            terminal = TerminalClient(running.port, PHONE)
            assert terminal.authenticate(terminal.register("").auth_code).result == 0
            assert terminal.answer(terminal.send(m.MsgId.HEARTBEAT)).result == 0
            for k in range(2):
                at = yesterday + timedelta(seconds=10 * k)
                location = m.Location(0, 0b11, 31_230_000, 121_470_000, 5, 300, 45, at, {})
                sent = terminal.send(m.MsgId.LOCATION, m.encode_location(location))
                assert terminal.answer(sent).result == 0
            terminal.close()
            wait_for(lambda: len(seen) == 4, what="status and positions")
    finally:
        listener.loop_stop()
        listener.disconnect()
    first_ms = int(yesterday.timestamp() * 1000)
    assert [(channel, doc.get("state"), doc["ts"]) for channel, doc in seen] == [
        ("status", "online", first_ms),
        ("telemetry", None, first_ms),
        ("telemetry", None, first_ms + 10_000),
        ("status", "offline", first_ms + 10_001),
    ]
