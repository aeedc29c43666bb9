"""Alarm changes to MQTT: QoS 1 to `<root>/alarms/<source_kind>/<source_id>/<alarm_type>`.

A paho client of its own (low rate, so `loop_start` is fine here) with a persistent
session. While the broker is away, paho queues up to `max_queued` messages and sends
them on reconnect; beyond that a change is dropped, counted and logged: the alarm
table stays the record, MQTT is the push.
"""

import logging
from collections.abc import Sequence
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub.rules.alarm_changes import AlarmChange, alarm_change_document, alarm_topic
from hub.settings import MqttEndpoint

log = logging.getLogger(__name__)


class MqttAlarmPublisher:
    """An AlarmPublisher that sends each change as one JSON message at QoS 1."""

    def __init__(self, *, url: str, client_id: str, root: str, max_queued: int = 10_000) -> None:
        self._endpoint = MqttEndpoint(url)
        self._root = root
        self.dropped = 0
        self.published = 0
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
            log.error("broker refused the alarm publisher: %s", reason)
        else:
            log.info("alarm publisher connected")

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        log.info("alarm publisher disconnected: %s", reason)

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself."""
        self._client.connect_async(self._endpoint.host, self._endpoint.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish_changes(self, changes: Sequence[AlarmChange]) -> None:
        """Queue each change for QoS 1 delivery; never blocks."""
        for change in changes:
            topic = alarm_topic(self._root, change.alarm)
            payload = orjson.dumps(alarm_change_document(change))
            info = self._client.publish(topic, payload, qos=1)
            if (
                info.rc is MQTTErrorCode.MQTT_ERR_SUCCESS
                or info.rc is MQTTErrorCode.MQTT_ERR_NO_CONN
            ):
                self.published += 1
                continue
            self.dropped += 1
            log.warning(
                "alarm change on %s not published (%s); %d dropped so far",
                topic,
                paho.error_string(info.rc),
                self.dropped,
            )
