"""Hub-originated MQTT messages (alarm changes, device commands, crew alerts), QoS 1.

The client of the hub's low-rate traffic: what it publishes, and the few low-rate topics
it reads back (hub/ingest/feed.py), so paho's own `loop_start` thread is fine. While the
broker is away paho queues up to `max_queued` messages and sends them on reconnect;
beyond that `publish` returns False and the caller decides: a command stays due and is
sent again, an alarm change is dropped (the table is the record, MQTT only the push).
"""

import logging
from collections.abc import Callable, Mapping
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub.ingest.connect import prepare_client
from hub.settings import MqttEndpoint

log = logging.getLogger(__name__)


def _callback(
    handle: Callable[[paho.MQTTMessage], None],
) -> Callable[[paho.Client, Any, paho.MQTTMessage], None]:
    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        handle(message)

    return on_message


class MqttOutbound:
    """Publishes hub messages at QoS 1 from any thread; never blocks."""

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        name: str = "outbound",
        max_queued: int = 10_000,
        subscriptions: Mapping[str, Callable[[paho.MQTTMessage], None]] | None = None,
    ) -> None:
        self._endpoint = MqttEndpoint(url)
        self._name = name
        self.connected = False
        self.published = 0
        self.dropped = 0
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311
        )
        prepare_client(client, self._endpoint)
        client.max_queued_messages_set(max_queued)
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        # Topic filters read at QoS 1, resubscribed on every connection (clean session).
        self._subscriptions = dict(subscriptions or {})
        for topic_filter, handle in self._subscriptions.items():
            client.message_callback_add(topic_filter, _callback(handle))
        self._client = client

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected = not reason.is_failure
        if reason.is_failure:
            log.error("broker refused the %s client: %s", self._name, reason)
            return
        log.info("%s client connected", self._name)
        if self._subscriptions:
            client.subscribe([(topic_filter, 1) for topic_filter in self._subscriptions])

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected = False
        log.info("%s client disconnected: %s", self._name, reason)

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself."""
        self._client.connect_async(self._endpoint.host, self._endpoint.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> bool:
        """Queue one QoS 1 message; False when paho refused it (queue full)."""
        info = self._client.publish(topic, payload, qos=1)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self.published += 1
            return True
        self.dropped += 1
        log.warning("%s not published: %s", topic, paho.error_string(info.rc))
        return False
