"""JSON documents the hubs publish (alarm changes, crew alerts), read back from the broker.

In a cluster each member raises the alarms of the devices it owns, so no member's own
changes are the whole picture. A member's live streams (the API's SSE endpoints) are fed
from what every member published instead: a low-rate client subscribes to those topics,
unshared and without a persistent session (a live stream has no backlog to catch up on),
and hands each document to the stream's fan-out.
"""

import logging
from collections.abc import Callable, Mapping, Sequence

import orjson
import paho.mqtt.client as paho

from hub.ingest.outbound import MqttOutbound

log = logging.getLogger(__name__)

DocumentSink = Callable[[Sequence[dict[str, object]]], None]


def document_handler(sink: DocumentSink) -> Callable[[paho.MQTTMessage], None]:
    """Pass each JSON object published on a topic to `sink`; log and skip anything else."""

    def handle(message: paho.MQTTMessage) -> None:
        try:
            document = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            log.warning("not JSON on %s; not streamed", message.topic)
            return
        if not isinstance(document, dict):
            log.warning("not a JSON object on %s; not streamed", message.topic)
            return
        sink([document])

    return handle


def document_feed(url: str, client_id: str, routes: Mapping[str, DocumentSink]) -> MqttOutbound:
    """A client reading the documents published on each topic filter into its sink."""
    return MqttOutbound(
        url=url,
        client_id=client_id,
        name="stream feed",
        subscriptions={topic: document_handler(sink) for topic, sink in routes.items()},
    )
