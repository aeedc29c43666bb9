"""The gateway's broker connection: MQTT 5 over an asyncio protocol, many publishes in flight.

Every position is a QoS 1 publish whose PUBACK decides the terminal's 0x8001, so this link
is on the gateway's hot path. It keeps up to the broker's Receive Maximum publishes in
flight on one connection, matches PUBACKs to their publishes by packet id (a dict, not a
scan), and writes what one loop iteration produced in one system call. The packets come
from `hub.ingest.mqtt_packets`, the codec the hub's receiver already uses. aiomqtt (and
paho under it) cost the gateway about half of its CPU per position: a lock, a semaphore,
a scan of every pending call and a paho thread per publish.
"""

import asyncio
import contextlib
import logging
import ssl
import struct
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from hub.ingest.mqtt_packets import (
    ConnAck,
    Connect,
    Disconnect,
    PacketReader,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    encode_packet,
    encode_pubacks,
)
from hub.ingest.mqtt_properties import MalformedPacketError, PropertyId, encode_text
from hub.settings import MqttEndpoint

log = logging.getLogger(__name__)

_PINGREQ = b"\xc0\x00"
_U16 = struct.Struct(">H")
_SUBSCRIBE_ID = 1  # the only SUBSCRIBE, sent before any publish takes a packet id


class BrokerUnavailableError(ConnectionError):
    """The broker is not connected, refused a publish or did not acknowledge it in time."""


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Where and as whom to connect, and the limits of the link."""

    url: str
    client_id: str
    subscription: str | None = None
    publish_timeout_s: float = 10.0
    keepalive_s: int = 30
    reconnect_max_s: float = 30.0
    # Publishes over the broker's Receive Maximum wait here, at most this many; more fail
    # at once, so memory stays bounded when the broker is slow.
    max_waiting: int = 20_000


def encode_publish_qos1(topic: str, payload: bytes, packet_id: int, retain: bool) -> bytes:
    """A QoS 1 PUBLISH without properties: the gateway's one hot packet, built directly."""
    body = encode_text(topic) + _U16.pack(packet_id) + b"\x00" + payload
    length = len(body)
    head = bytearray((0x33 if retain else 0x32,))
    while True:
        byte = length & 0x7F
        length >>= 7
        head.append(byte | 0x80 if length else byte)
        if not length:
            break
    return bytes(head) + body


class _Connection(asyncio.Protocol):
    """One MQTT connection: packets in, PUBACKs matched, writes coalesced per iteration."""

    def __init__(self, link: "BrokerLink") -> None:
        self.link = link
        self.reader = PacketReader()
        self.transport: asyncio.Transport | None = None
        self.outbox: list[bytes] = []
        self.flush_scheduled = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.connack: asyncio.Future[ConnAck] = asyncio.get_running_loop().create_future()
        self.suback: asyncio.Future[SubAck] = asyncio.get_running_loop().create_future()
        self.received_at = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        if isinstance(transport, asyncio.Transport):
            self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Let the link fail what is in flight and reconnect."""
        for future in (self.connack, self.suback):
            if not future.done():
                future.set_exception(BrokerUnavailableError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        """Queue bytes; they go out together at the end of this loop iteration."""
        self.outbox.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write what this iteration queued in one call."""
        self.flush_scheduled = False
        if self.transport is None or self.transport.is_closing():
            self.outbox.clear()
            return
        data = b"".join(self.outbox) if len(self.outbox) > 1 else self.outbox[0]
        self.outbox.clear()
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        """Decode packets; a malformed stream closes the connection."""
        self.received_at = time.monotonic()
        try:
            packets = self.reader.feed(data)
        except MalformedPacketError as err:
            log.warning("malformed packet from the broker (%s); reconnecting", err)
            if self.transport is not None:
                self.transport.close()
            return
        link = self.link
        acked: list[int] = []
        for packet in packets:
            if type(packet) is PubAck:
                link.acknowledged(packet.packet_id, packet.reason_code)
            elif type(packet) is Publish:
                link.received(packet)
                if packet.qos:
                    acked.append(packet.packet_id)
            elif type(packet) is ConnAck:
                if not self.connack.done():
                    self.connack.set_result(packet)
            elif type(packet) is SubAck:
                if not self.suback.done():
                    self.suback.set_result(packet)
            elif type(packet) is Disconnect:
                log.warning("the broker disconnected the gateway: reason %#x", packet.reason_code)
        if acked:
            self.write(encode_pubacks(acked))


class BrokerLink:
    """One MQTT connection kept up with backoff; `publish` returns once the broker acked it.

    Publishes fail at once (BrokerUnavailableError) while disconnected, and every publish
    in flight fails when the connection drops: the caller withholds its 0x8001 and the
    terminal sends the data again, so nothing is lost and nothing piles up here.
    """

    def __init__(
        self,
        config: LinkConfig,
        on_message: Callable[[str, bytes], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._config = config
        self._on_message = on_message
        self._connection: _Connection | None = None
        # packet id → (future, monotonic send time); PUBACKs come in publish order, so the
        # oldest is first and the timeout sweep stops at the first young one.
        self._in_flight: dict[int, tuple[asyncio.Future[None], float]] = {}
        # Publishes over the broker's Receive Maximum, sent as PUBACKs make room.
        self._waiting: deque[tuple[str, bytes, bool, asyncio.Future[None]]] = deque()
        self._receive_maximum = 65_535
        self._next_id = _SUBSCRIBE_ID
        self._commands: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Publishes awaiting their PUBACK now."""
        return len(self._in_flight)

    async def run(self) -> None:
        """Stay connected until cancelled."""
        endpoint = MqttEndpoint(self._config.url)
        delay = 0.5
        while True:
            try:
                await self._session(endpoint)
                delay = 0.5  # it was up; the next try comes soon
            except (OSError, BrokerUnavailableError, TimeoutError) as err:
                log.warning("broker connection lost (%s); reconnecting in %.1f s", err, delay)
            finally:
                self._drop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._config.reconnect_max_s)

    async def _session(self, endpoint: MqttEndpoint) -> None:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context(cafile=endpoint.ca_file) if endpoint.tls else None
        _, connection = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Connection(self),
                endpoint.host,
                endpoint.port,
                ssl=context,
                server_hostname=endpoint.host if context else None,
            ),
            self._config.publish_timeout_s,
        )
        try:
            password = endpoint.password.encode() if endpoint.password is not None else None
            connection.write(
                encode_packet(
                    Connect(
                        self._config.client_id,
                        keepalive_s=self._config.keepalive_s,
                        username=endpoint.username,
                        password=password,
                    )
                )
            )
            connack = await asyncio.wait_for(connection.connack, self._config.publish_timeout_s)
            if connack.reason_code:
                raise BrokerUnavailableError(f"CONNACK refused: reason {connack.reason_code:#x}")
            self._receive_maximum = connack.properties.integer(PropertyId.RECEIVE_MAXIMUM) or 65_535
            if self._config.subscription is not None:
                subscription = Subscription(self._config.subscription, qos=1)
                connection.write(encode_packet(Subscribe(_SUBSCRIBE_ID, (subscription,))))
                suback = await asyncio.wait_for(connection.suback, self._config.publish_timeout_s)
                if any(code >= 0x80 for code in suback.reason_codes):
                    raise BrokerUnavailableError(f"SUBSCRIBE refused: {suback.reason_codes}")
            self._connection = connection
            self.connected.set()
            log.info("jt808 gateway connected to the broker at %s", endpoint.host)
            await self._watch(connection)
        finally:
            if connection.transport is not None:
                connection.transport.close()

    async def _watch(self, connection: _Connection) -> None:
        """Ping, expire late publishes; return when the connection is gone or silent."""
        tick_s = min(1.0, self._config.keepalive_s / 4)
        last_ping = time.monotonic()
        while not connection.closed.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(connection.closed), tick_s)
            now = time.monotonic()
            self._expire(now)
            if now - connection.received_at > self._config.keepalive_s * 1.5:
                raise BrokerUnavailableError("the broker stopped answering")
            if now - last_ping >= self._config.keepalive_s / 2:
                connection.write(_PINGREQ)
                last_ping = now
        raise BrokerUnavailableError("connection closed")

    def _expire(self, now: float) -> None:
        timeout_s = self._config.publish_timeout_s
        expired = []
        for packet_id, (future, sent_at) in self._in_flight.items():
            if now - sent_at < timeout_s:
                break
            expired.append(packet_id)
            if not future.done():
                future.set_exception(BrokerUnavailableError("no PUBACK in time"))
        for packet_id in expired:
            del self._in_flight[packet_id]
        self._release()

    def _drop(self) -> None:
        """The connection is gone: fail everything in flight and waiting."""
        self._connection = None
        self.connected.clear()
        error = BrokerUnavailableError("the broker connection dropped")
        for future, _ in self._in_flight.values():
            if not future.done():
                future.set_exception(error)
        self._in_flight.clear()
        while self._waiting:
            future = self._waiting.popleft()[3]
            if not future.done():
                future.set_exception(error)

    def _release(self) -> None:
        """Send waiting publishes while the broker's Receive Maximum has room."""
        while self._waiting and len(self._in_flight) < self._receive_maximum:
            topic, payload, retain, future = self._waiting.popleft()
            if not future.done():
                self._send(topic, payload, retain, future)

    def _packet_id(self) -> int:
        in_flight = self._in_flight
        packet_id = self._next_id
        while True:
            packet_id = packet_id + 1 if packet_id < 65_535 else 1
            if packet_id not in in_flight and packet_id != _SUBSCRIBE_ID:
                self._next_id = packet_id
                return packet_id

    def start_publish(
        self, topic: str, payload: bytes, *, retain: bool = False
    ) -> asyncio.Future[None]:
        """Publish at QoS 1; the future is done once the broker acknowledged it with success.

        It fails (BrokerUnavailableError) at once while disconnected or when too many wait,
        and later when the broker refuses it, does not answer in time or the connection
        drops. A callback on it costs less than a task awaiting it.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._connection is None:
            future.set_exception(BrokerUnavailableError("not connected to the broker"))
        elif len(self._in_flight) < self._receive_maximum and not self._waiting:
            self._send(topic, payload, retain, future)
        elif len(self._waiting) >= self._config.max_waiting:
            future.set_exception(BrokerUnavailableError("too many publishes wait for the broker"))
        else:
            self._waiting.append((topic, payload, retain, future))
        return future

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1; return once the broker acknowledged it with success."""
        await self.start_publish(topic, payload, retain=retain)

    def _send(self, topic: str, payload: bytes, retain: bool, future: asyncio.Future[None]) -> None:
        connection = self._connection
        if connection is None:
            future.set_exception(BrokerUnavailableError("not connected to the broker"))
            return
        packet_id = self._packet_id()
        self._in_flight[packet_id] = (future, time.monotonic())
        connection.write(encode_publish_qos1(topic, payload, packet_id, retain))

    def acknowledged(self, packet_id: int, reason_code: int) -> None:
        """A PUBACK: its publish succeeded (reason below 0x80) or was refused."""
        entry = self._in_flight.pop(packet_id, None)
        if self._waiting:
            self._release()
        if entry is None or entry[0].done():
            return
        if reason_code < 0x80:
            entry[0].set_result(None)
        else:
            entry[0].set_exception(BrokerUnavailableError(f"publish refused: {reason_code:#x}"))

    def received(self, packet: Publish) -> None:
        """A message on the subscription: hand it on in its own task."""
        if self._on_message is None:
            return
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._on_message(packet.topic, packet.payload), name="jt808-command"
        )
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)
