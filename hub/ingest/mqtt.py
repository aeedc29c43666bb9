"""The MQTT receiving edge: paho on its own network thread, acks only after commit."""

import logging
import select
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub.ingest.connect import prepare_client
from hub.ingest.pipeline import RawMessage
from hub.settings import MqttEndpoint

log = logging.getLogger(__name__)

# Topics under the root that the hub itself publishes; never telemetry.
HUB_OWN_SEGMENTS = frozenset({"alarms", "alerts"})
# Packets read per readable socket before looking at acknowledgements again.
_READS_PER_TURN = 200
# Bytes asked of the socket per read.
_RECV_BYTES = 64 * 1024
# A PUBACK's fixed header (type, remaining length 2) above its 16-bit packet id.
_PUBACK_HEAD = (PUBACK << 24) | (2 << 16)


def _is_hub_topic(topic: str, root: str) -> bool:
    parts = topic.split("/")
    return (
        len(parts) >= 2
        and parts[0] == root
        and (parts[1] in HUB_OWN_SEGMENTS or parts[-1] == "cmd")
    )


class _BufferedClient(paho.Client):
    """paho's client, reading the socket 64 KiB at a time instead of a few bytes at a time.

    paho asks the socket for a packet's first byte, then for each byte of its remaining
    length, then for the rest: three or four recv calls per message, and each one lets go
    of the GIL, which the writer and rule threads take meanwhile (py-spy put 15% of the
    hub's samples in those calls at 9,000 msg/s). Here one recv fills a buffer and paho's
    reads are served from it. This hooks paho's `_sock_recv`, through which paho 2.x does
    every read (the version is pinned in constraints.txt; tests/ingest cover the receiver).

    QoS 0 and 1 PUBLISH packets take a short path too when `on_publish_received` is set:
    paho builds a Properties object and an MQTTMessage for each (14% of the hub's CPU at
    10,000 msg/s); the hub needs the topic, the payload and the packet id, read straight
    from the packet. The writer's acknowledgements are queued as one packet of PUBACKs
    (`queue_pubacks`). Connection handling and everything else stay paho's.
    """

    _rx = b""
    _rx_pos = 0
    # (topic bytes, payload, packet id, QoS, retain flag) of each QoS 0/1 PUBLISH, instead
    # of on_message.
    on_publish_received: Callable[[bytes, bytes, int, int, bool], None] | None = None
    _rx_sock: object = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rx_sock is not self._sock:  # a new connection: the old bytes are void
            self._rx, self._rx_pos, self._rx_sock = b"", 0, self._sock
        if self._rx_pos >= len(self._rx):
            data = super()._sock_recv(_RECV_BYTES)
            if not data:
                return data  # the connection closed; paho handles that
            self._rx, self._rx_pos = data, 0
        start = self._rx_pos
        chunk = self._rx[start : start + bufsize]
        self._rx_pos = start + len(chunk)
        return chunk

    def buffered(self) -> bool:
        """Whether bytes already read from the socket wait to be parsed."""
        return self._rx_sock is self._sock and self._rx_pos < len(self._rx)

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_publish_received
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if handler is None or qos == 2 or self._protocol != paho.MQTTv5:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        try:
            pos = 2 + ((packet[0] << 8) | packet[1])
            topic = packet[2:pos]
            mid = 0
            if qos:
                mid = (packet[pos] << 8) | packet[pos + 1]
                pos += 2
            # Properties (a variable-length size, then the properties): skipped, the hub
            # asks for none (no topic aliases are negotiated).
            size = shift = 0
            while True:
                byte = packet[pos]
                pos += 1
                size |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            pos += size
        except IndexError:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        if pos > len(packet):
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        handler(bytes(topic), bytes(packet[pos:]), mid, qos, bool(header & 0x01))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        # paho first matches every topic against the filters of message_callback_add
        # (5% of the hub's samples at 9,000 msg/s); the hub registers none, so the
        # message goes straight to on_message.
        on_message = self.on_message
        if on_message is not None:
            on_message(self, self._userdata, message)

    def queue_pubacks(self, mids: Sequence[int]) -> None:
        """Queue the PUBACKs of many packet ids as one packet of bytes, for one write.

        paho's `ack` builds, queues and signals each PUBACK separately (a system call on
        its wake-up socket per ack); the writer acknowledges thousands at once. A PUBACK
        with reason code 0 is four bytes: type, remaining length 2, packet id (MQTT 5.0
        section 3.4.2.1 lets the reason code be left out when it is 0, as paho does).
        """
        if not mids:
            return
        packet = struct.pack(f">{len(mids)}I", *[_PUBACK_HEAD | mid for mid in mids])
        self._out_packet.append(
            {
                "command": PUBACK,
                "mid": 0,
                "qos": 0,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": None,
            }
        )


class MqttReceiver:
    """Subscribes to the root with a persistent MQTT v5 session and feeds a message handler.

    paho's network loop runs on a thread of its own. Acknowledgements arrive from the
    writer thread as tokens and are sent from the network thread, because paho writes to
    the socket from whichever thread queues a packet. A token encodes the connection
    generation, so a commit that finishes after a reconnect does not acknowledge a packet
    id the broker has since reused; the broker redelivers those and storage dedupes them.
    """

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        root: str,
        on_message: Callable[[RawMessage], None],
        shared_group: str | None = None,
        session_expiry_s: int = 7 * 24 * 3600,
        receive_maximum: int = 20_000,
        on_connection_change: Callable[[bool], None] | None = None,
        backlog: Callable[[], int] | None = None,
        direct: Mapping[str, Callable[[bytes], None]] | None = None,
    ) -> None:
        self._endpoint = MqttEndpoint(url)
        self._root = root
        self._handler = on_message
        self._backlog = backlog
        # Topics of this hub alone (the cluster hand-off): subscribed unshared, handled on
        # the network thread, acknowledged as soon as the handler has taken the message.
        self._direct = dict(direct or {})
        self._on_connection_change = on_connection_change
        self._shared_group = shared_group
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._acks: deque[int] = deque()
        self._generation = 0
        self._stop = threading.Event()
        self._unsubscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self.restarts = 0  # times the supervisor restarted the network loop after a crash
        self._messages_seen = 0
        client = _BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        prepare_client(client, self._endpoint)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish_received = self._on_publish
        client.on_unsubscribe = lambda *args: self._unsubscribed.set()
        self._client = client

    @property
    def subscription(self) -> str:
        """The topic filter subscribed to (a shared subscription when a group is set)."""
        base = f"{self._root}/#"
        return f"$share/{self._shared_group}/{base}" if self._shared_group else base

    def ack(self, tokens: Sequence[int]) -> None:
        """Queue acknowledgements; the network thread sends them."""
        self._acks.extend(tokens)

    def _drain_acks(self) -> None:
        generation = self._generation
        acks = self._acks
        mids: list[int] = []
        while acks:
            token = acks.popleft()
            if token >> 16 == generation:
                mids.append(token & 0xFFFF)
        self._client.queue_pubacks(mids)
        self._client.loop_write()

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused connection: %s", reason)
            return
        self._generation += 1
        self._acks.clear()
        log.info(
            "connected to %s:%s (session present: %s); subscribing to %s",
            self._endpoint.host,
            self._endpoint.port,
            flags.session_present,
            ", ".join((self.subscription, *self._direct)),
        )
        # Retained messages only when the subscription is new: a resumed session has had
        # them already (MQTT 5.0, 3.8.3.1, Retain Handling 1).
        client.subscribe(
            [
                (topic, SubscribeOptions(qos=1, noLocal=True, retainHandling=1))
                for topic in (self.subscription, *self._direct)
            ]
        )
        self._connected = True
        if self._on_connection_change:
            self._on_connection_change(True)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connected:
            log.warning("disconnected from broker: %s", reason)
        self._connected = False
        if self._on_connection_change:
            self._on_connection_change(False)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # paho's path, for what the short one leaves to it (QoS 2, which a QoS 1
        # subscription should never bring).
        self._on_publish(
            message._topic, bytes(message.payload), message.mid, message.qos, message.retain
        )

    def _on_publish(
        self, raw_topic: bytes, payload: bytes, mid: int, qos: int, retained: bool
    ) -> None:
        self._messages_seen += 1
        received_at = datetime.now(UTC)
        try:
            topic = raw_topic.decode()
        except UnicodeDecodeError:
            topic = repr(raw_topic)  # the raw bytes are the only evidence left
        token = -1 if qos == 0 else (self._generation << 16) | mid
        direct = self._direct.get(topic)
        if direct is not None:
            try:
                direct(payload)
            except Exception:
                log.exception("message on %s not handled; dropped", topic)
        if direct is not None or _is_hub_topic(topic, self._root):
            if token >= 0:
                self._client.ack(mid, qos)
            return
        self._handler(RawMessage(topic, payload, received_at, token, retained))
        if self._acks:
            self._drain_acks()

    def _connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = self._receive_maximum
        self._client.connect(
            self._endpoint.host,
            self._endpoint.port,
            keepalive=30,
            clean_start=False,
            properties=props,
        )

    def _loop(self) -> None:
        """Connect, run paho's loop, send acknowledgements; reconnect with backoff.

        A new connection attempt is made only when none is open or pending: calling
        connect again while the CONNACK is still on its way (a slow broker, a big backlog)
        would drop the half-open session and start a reconnect storm.
        """
        backoff_s = 0.2
        client = self._client
        socket_open = False
        connect_deadline = 0.0
        while not self._stop.is_set():
            if not socket_open:
                try:
                    self._connect()
                except OSError as err:
                    log.warning("cannot reach broker (%s); retrying in %.1f s", err, backoff_s)
                    self._stop.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, 10.0)
                    continue
                socket_open = True
                connect_deadline = time.monotonic() + 30.0
            rc = self._pump(0.05)
            if rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
                socket_open = False
                self._connected = False
                log.warning("connection lost (%s); reconnecting in %.1f s", rc.name, backoff_s)
                self._stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 10.0)
                continue
            if self._connected:
                backoff_s = 0.2
                if self._acks:
                    self._drain_acks()
            elif time.monotonic() > connect_deadline:
                log.warning("no CONNACK within 30 s; reconnecting")
                client.disconnect()
                socket_open = False
        # Send the last acknowledgements before leaving, and wait until the broker has
        # handled them: with the DISCONNECT written right behind 1,000 PUBACKs, Mosquitto
        # redelivered 200-500 of those messages at the next connection (measured). The
        # answer to an UNSUBSCRIBE comes after every packet sent before it was handled.
        deadline = time.monotonic() + 5.0
        while self._acks and self._connected and time.monotonic() < deadline:
            self._drain_acks()
            self._pump(0.05)
        if self._connected:
            self._unsubscribed.clear()
            client.unsubscribe(f"{self._root}/hub-flush")  # never subscribed; harmless
            while not self._unsubscribed.is_set() and time.monotonic() < deadline:
                if self._pump(0.05) is not MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        client.disconnect()
        self._pump(0.1)

    def _pump(self, timeout_s: float) -> MQTTErrorCode:
        """One turn of the network loop, driven here rather than by paho's loop().

        paho's loop() wakes itself through a socket pair on every queued packet, one
        extra system call per acknowledgement; driving loop_read/loop_write from this
        thread avoids it. When the socket is readable we keep reading while messages
        keep coming, instead of one select per message.
        """
        client = self._client
        sock = client.socket()
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        writable = [sock] if client.want_write() else []
        # Our own bound on memory, whatever the broker does with the receive maximum:
        # with that many messages waiting for a commit, stop reading and let TCP push
        # back to the broker, which keeps them queued in the session.
        full = self._full()
        buffered = client.buffered() and not full
        readable, _, _ = select.select(
            [] if full else [sock], writable, [], 0 if buffered else timeout_s
        )
        if readable or buffered:
            for _ in range(_READS_PER_TURN):
                if self._full():
                    break
                before = self._messages_seen
                rc = client.loop_read()
                if rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return rc
                if self._messages_seen == before:
                    break
        if client.want_write():
            rc = client.loop_write()
            if rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
        return client.loop_misc()

    def _full(self) -> bool:
        """Whether as many messages wait for a commit as the receive maximum allows."""
        return self._backlog is not None and self._backlog() >= self._receive_maximum

    @property
    def connected(self) -> bool:
        """Connected now, and the network thread that keeps the connection is running."""
        thread = self._thread
        return self._connected and thread is not None and thread.is_alive()

    def running(self) -> bool:
        """Whether the network thread is alive (it is restarted after a crash)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _supervise(self) -> None:
        """Run the network loop; restart it after a crash instead of leaving ingest dead.

        The loop connects afresh: what was received and not acknowledged is delivered again
        on the new connection (the session persists), and storage dedupes it.
        """
        backoff_s = 0.5
        while True:
            try:
                self._loop()
            except Exception:
                self.restarts += 1
                log.exception(
                    "MQTT network loop crashed; restarting it in %.1f s (restart %d)",
                    backoff_s,
                    self.restarts,
                )
                self._connected = False
                if self._on_connection_change:
                    self._on_connection_change(False)
                # The next connect closes the old socket (paho's reconnect does).
                if self._stop.wait(backoff_s):
                    return
                backoff_s = min(backoff_s * 2, 10.0)
            else:
                return

    def start(self) -> None:
        """Start the network thread; it connects and reconnects with backoff."""
        self._thread = threading.Thread(target=self._supervise, name="mqtt-network", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Send pending acknowledgements, disconnect and join the network thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
