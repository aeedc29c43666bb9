"""Commands to devices over MQTT: QoS 1 on `<root>/<kind>/<device_id>/cmd`, any kind.

When the command cannot be queued (the broker long away) `send` returns False and the
caller keeps the command pending and tries again later. The device answers on
`…/cmd/ack` with the command's id; ingest stores that in `command_acks`.
"""

from collections.abc import Mapping

import orjson

from hub.devices.decode import device_topic
from hub.devices.kinds import Channel, Kind
from hub.ingest.outbound import MqttOutbound


class MqttCommandSender:
    """Sends command documents to devices at QoS 1 from any thread; never blocks."""

    def __init__(self, *, url: str, client_id: str, root: str, max_queued: int = 10_000) -> None:
        self._root = root
        self._outbound = MqttOutbound(
            url=url, client_id=client_id, name="command", max_queued=max_queued
        )

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself."""
        self._outbound.start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._outbound.stop()

    def send(self, kind: Kind, device_id: str, document: Mapping[str, object]) -> bool:
        """Queue one command for QoS 1 delivery; False when it could not be queued."""
        topic = device_topic(self._root, kind, device_id, Channel.CMD)
        return self._outbound.publish(topic, orjson.dumps(document))
