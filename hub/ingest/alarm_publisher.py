"""Alarm changes to MQTT: QoS 1 to `<root>/alarms/<source_kind>/<source_id>/<alarm_type>`.

A change the publishing client cannot queue (the broker long away) is dropped, counted
and logged: the alarm table stays the record, MQTT is the push.
"""

import logging
from collections.abc import Sequence

import orjson

from hub.ingest.outbound import MqttOutbound
from hub.rules.alarm_changes import AlarmChange, alarm_change_document, alarm_topic

log = logging.getLogger(__name__)


class MqttAlarmPublisher:
    """An AlarmPublisher that sends each change as one JSON message at QoS 1."""

    def __init__(self, *, url: str, client_id: str, root: str, max_queued: int = 10_000) -> None:
        self._root = root
        self._outbound = MqttOutbound(
            url=url, client_id=client_id, name="alarm", max_queued=max_queued
        )

    @property
    def published(self) -> int:
        """Changes handed to the broker (or queued for it)."""
        return self._outbound.published

    @property
    def dropped(self) -> int:
        """Changes that could not be queued."""
        return self._outbound.dropped

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself."""
        self._outbound.start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._outbound.stop()

    def publish_changes(self, changes: Sequence[AlarmChange]) -> None:
        """Queue each change for QoS 1 delivery; never blocks."""
        for change in changes:
            topic = alarm_topic(self._root, change.alarm)
            self._outbound.publish(topic, orjson.dumps(alarm_change_document(change)))
