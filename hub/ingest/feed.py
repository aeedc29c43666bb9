"""JSON documents the hubs publish (alarm changes, crew alerts), read back from the broker.

In a cluster each member raises the alarms of the devices it owns, so no member's own
changes are the whole picture. A member's live streams (the API's SSE endpoints) are fed
from what every member published instead: this client subscribes to those topics,
unshared and without a persistent session (a live stream has no backlog to catch up on),
and hands each document to the stream's fan-out.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub.ingest.connect import prepare_client
from hub.settings import MqttEndpoint

log = logging.getLogger(__name__)

DocumentSink = Callable[[Sequence[dict[str, object]]], None]


class MqttDocumentFeed:
    """Subscribes to topic filters and passes each JSON object published there to its sink."""

    def __init__(self, *, url: str, client_id: str, routes: Mapping[str, DocumentSink]) -> None:
        self._endpoint = MqttEndpoint(url)
        self._routes = dict(routes)
        self.connected = False
        self.received = 0
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311
        )
        prepare_client(client, self._endpoint)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        for topic_filter, sink in self._routes.items():
            client.message_callback_add(topic_filter, self._handler(topic_filter, sink))
        self._client = client

    def _handler(
        self, topic_filter: str, sink: DocumentSink
    ) -> Callable[[paho.Client, Any, paho.MQTTMessage], None]:
        def handle(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
            try:
                document = orjson.loads(message.payload)
            except orjson.JSONDecodeError:
                log.warning("not JSON on %s (%s); not streamed", message.topic, topic_filter)
                return
            if not isinstance(document, dict):
                log.warning("not a JSON object on %s; not streamed", message.topic)
                return
            self.received += 1
            sink([document])

        return handle

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
            log.error("broker refused the stream feed: %s", reason)
            return
        client.subscribe([(topic_filter, 1) for topic_filter in self._routes])

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected = False

    def start(self) -> None:
        """Connect in the background; paho reconnects (and we resubscribe) by itself."""
        self._client.connect_async(self._endpoint.host, self._endpoint.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
