"""Commands to devices over MQTT: QoS 1 on `<root>/<kind>/<device_id>/cmd`, any kind.

A paho client of its own with `loop_start` (commands are rare). While the broker is away
paho queues up to `max_queued` messages and sends them on reconnect; beyond that `send`
returns False and the caller keeps the command pending and tries again later. The
device answers on `…/cmd/ack` with the command's id; ingest stores that in `command_acks`.
"""

import logging
from collections.abc import Mapping
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub.devices.kinds import Channel, Kind
from hub.settings import MqttEndpoint

log = logging.getLogger(__name__)


def command_topic(root: str, kind: Kind, device_id: str) -> str:
    """The topic a device listens on for commands."""
    return f"{root}/{kind.value}/{device_id}/{Channel.CMD.value}"


class MqttCommandSender:
    """Sends command documents to devices at QoS 1 from any thread; never blocks."""

    def __init__(self, *, url: str, client_id: str, root: str, max_queued: int = 10_000) -> None:
        self._endpoint = MqttEndpoint(url)
        self._root = root
        self.sent = 0
        self.refused = 0
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311
        )
        if self._endpoint.username:
            client.username_pw_set(self._endpoint.username, self._endpoint.password)
        if self._endpoint.tls:
            client.tls_set()
        client.max_queued_messages_set(max_queued)
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the command sender: %s", reason)
        else:
            log.info("command sender connected")

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        log.info("command sender disconnected: %s", reason)

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself."""
        self._client.connect_async(self._endpoint.host, self._endpoint.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def send(self, kind: Kind, device_id: str, document: Mapping[str, object]) -> bool:
        """Queue one command for QoS 1 delivery; False when paho refused it (queue full)."""
        topic = command_topic(self._root, kind, device_id)
        info = self._client.publish(topic, orjson.dumps(document), qos=1)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self.sent += 1
            return True
        self.refused += 1
        log.warning("command on %s not queued: %s", topic, paho.error_string(info.rc))
        return False
