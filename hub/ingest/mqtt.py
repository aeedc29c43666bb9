"""The MQTT receiving edge: our own socket loop on its own thread, acks only after commit."""

import logging
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from hub.ingest.connect import open_connection
from hub.ingest.mqtt_packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    encode_packet,
    encode_pubacks,
)
from hub.ingest.mqtt_properties import (
    MalformedPacketError,
    Properties,
    PropertyId,
)
from hub.ingest.pipeline import RawMessage
from hub.settings import MqttEndpoint

log = logging.getLogger(__name__)

# Topics under the root that the hub itself publishes; never telemetry.
HUB_OWN_SEGMENTS = frozenset({"alarms", "alerts"})
# Bytes asked of the socket per read: one read takes hundreds of 200-byte messages.
_RECV_BYTES = 64 * 1024
# Reads per readable socket before looking at acknowledgements and the clock again.
_READS_PER_TURN = 16
# How long one turn of the loop waits for the socket; acknowledgements queued by the
# writer go out within this.
_TURN_S = 0.05
# Topic aliases the broker may use towards us (MQTT 5.0 section 3.1.2.11.5).
_TOPIC_ALIAS_MAXIMUM = 1024
_CONNACK_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10.0
# Reason codes of a DISCONNECT we send (MQTT 5.0 section 3.14.2.1).
_MALFORMED = 0x81
_PROTOCOL_ERROR = 0x82
_KEEP_ALIVE_TIMEOUT = 0x8D
_new_tuple = tuple.__new__


def _is_hub_topic(topic: str, root: str) -> bool:
    parts = topic.split("/")
    return (
        len(parts) >= 2
        and parts[0] == root
        and (parts[1] in HUB_OWN_SEGMENTS or parts[-1] == "cmd")
    )


class ConnectionLostError(Exception):
    """The broker closed the connection, refused it, or stopped answering."""


class ProtocolViolationError(ConnectionLostError):
    """The broker sent a well-formed packet it must not send us (a QoS 2 PUBLISH, ...)."""


class ConnectionStalledError(ConnectionLostError):
    """Nothing came from the broker for twice the keep-alive, not even a PINGRESP."""


class _Connection:
    """One socket to the broker: its reader, its unsent bytes, its clocks."""

    def __init__(self, sock: socket.socket, keepalive_s: int) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.reader = PacketReader(_TOPIC_ALIAS_MAXIMUM)
        self.out = bytearray()
        self.keepalive_s = keepalive_s
        now = time.monotonic()
        self.last_read = self.last_write = now
        self.ping_sent_at: float | None = None
        self.packet_id = 0
        self.connected = False
        # Packets decoded and not yet handled (the backlog was full), from held_from on.
        self.held: list[Packet] = []
        self.held_from = 0

    def next_packet_id(self) -> int:
        """A packet id for our SUBSCRIBE or UNSUBSCRIBE (the broker numbers its own)."""
        self.packet_id = self.packet_id % 0xFFFF + 1
        return self.packet_id

    def queue(self, packet: Packet) -> None:
        """Add a packet to the bytes to send."""
        self.out += encode_packet(packet)

    def recv(self) -> bytes | None:
        """Bytes from the socket, or None when none are there yet."""
        try:
            data = self.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        if not data:
            raise ConnectionLostError("the broker closed the connection")
        self.last_read = time.monotonic()
        return data

    def flush(self) -> None:
        """Write what the socket takes now; the rest waits for the next turn."""
        out = self.out
        while out:
            try:
                sent = self.sock.send(out)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            del out[:sent]
            self.last_write = time.monotonic()

    def wait(self, timeout_s: float, read: bool = True) -> bool:
        """Wait until the socket is readable (or writable with bytes to send); readable?"""
        sock = self.sock
        if read and isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True  # decrypted bytes wait inside the TLS layer, select cannot see them
        readable, _, _ = select.select(
            [self.sock] if read else [], [self.sock] if self.out else [], [], timeout_s
        )
        return bool(readable)

    def check_keepalive(self, reading: bool) -> None:
        """Ping when quiet; give up when the broker has been silent for two keep-alives.

        While we do not read (the backlog is full) the broker's bytes wait in the socket,
        so silence then says nothing about the broker and the clock is reset.
        """
        now = time.monotonic()
        if not reading:
            self.last_read = now
        if self.ping_sent_at is not None and self.last_read >= self.ping_sent_at:
            self.ping_sent_at = None
        keepalive_s = self.keepalive_s
        if not keepalive_s:
            return
        if self.ping_sent_at is None and (
            now - self.last_write >= keepalive_s or now - self.last_read >= keepalive_s
        ):
            self.queue(PingReq())
            self.ping_sent_at = now
        if now - self.last_read > 2 * keepalive_s:
            raise ConnectionStalledError(
                f"nothing from the broker for {now - self.last_read:.0f} s, no PINGRESP"
            )


class MqttReceiver:
    """Subscribes to the root with a persistent MQTT v5 session and feeds a message handler.

    The network loop runs on a thread of its own, over a plain socket (TLS for mqtts://)
    and the packet codec of hub/ingest/mqtt_packets.py. Acknowledgements arrive from the
    writer thread as tokens and are sent from the network thread. A token encodes the
    connection generation, so a commit that finishes after a reconnect does not
    acknowledge a packet id the broker has since reused; the broker redelivers those and
    storage dedupes them.
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
        receive_maximum: int = 65_535,
        on_connection_change: Callable[[bool], None] | None = None,
        backlog: Callable[[], int] | None = None,
        direct: Mapping[str, Callable[[bytes], None]] | None = None,
        keepalive_s: int = 30,
    ) -> None:
        self._endpoint = MqttEndpoint(url)
        self._client_id = client_id
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
        self._keepalive_s = keepalive_s
        # Topics under these are the hub's own (an exact <root>/alarms is checked by the split).
        self._own_prefixes = tuple(f"{root}/{segment}" for segment in sorted(HUB_OWN_SEGMENTS))
        self._acks: deque[int] = deque()
        self._generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._turned_at = time.monotonic()
        self.restarts = 0  # times the supervisor restarted the network loop after a crash
        self.stalls = 0  # connections dropped because the broker fell silent

    @property
    def subscription(self) -> str:
        """The topic filter subscribed to (a shared subscription when a group is set)."""
        base = f"{self._root}/#"
        return f"$share/{self._shared_group}/{base}" if self._shared_group else base

    def ack(self, tokens: Sequence[int]) -> None:
        """Queue acknowledgements; the network thread sends them."""
        self._acks.extend(tokens)

    def _drain_acks(self, conn: _Connection) -> None:
        """Move the queued acknowledgements of this connection into its bytes to send."""
        generation = self._generation
        acks = self._acks
        mids: list[int] = []
        while acks:
            token = acks.popleft()
            if token >> 16 == generation:
                mids.append(token & 0xFFFF)
        if mids:
            conn.out += encode_pubacks(mids)

    def _set_connected(self, up: bool) -> None:
        self._connected = up
        if self._on_connection_change:
            self._on_connection_change(up)

    # -- packets --------------------------------------------------------------------------

    def _hand_over(self, conn: _Connection, received_at: datetime) -> None:
        """Handle the connection's decoded packets, as many as the backlog has room for.

        Our own bound on memory, whatever the broker does with the receive maximum: with
        that many messages waiting for a commit, the rest of a read waits here (and the
        socket is not read) until the writer has committed some.
        """
        packets = conn.held
        room = len(packets)
        if self._backlog is not None:
            room = min(room, self._receive_maximum - self._backlog())
        handler = self._handler
        direct_topics = self._direct
        generation = self._generation << 16
        root = self._root
        own_prefixes = self._own_prefixes
        new_tuple = _new_tuple
        for index in range(conn.held_from, len(packets)):
            packet = packets[index]
            if type(packet) is not Publish:
                self._handle_control(conn, packet)
                generation = self._generation << 16
                continue
            topic, payload, qos, retained, packet_id, _, _ = packet
            if qos == 2:
                raise ProtocolViolationError("a QoS 2 PUBLISH on a QoS 1 subscription")
            direct = direct_topics.get(topic)
            if direct is not None:
                try:
                    direct(payload)
                except Exception:
                    log.exception("message on %s not handled; dropped", topic)
            # Telemetry never starts with <root>/alarms/ or ends in /cmd: the split of
            # _is_hub_topic only for what looks like one of ours (str methods, no list).
            if direct is not None or (
                (topic.startswith(own_prefixes) or topic.endswith("/cmd"))
                and _is_hub_topic(topic, root)
            ):
                if qos:
                    conn.out += encode_pubacks((packet_id,))
                continue
            if room <= 0:
                conn.held_from = index
                return
            room -= 1
            # RawMessage(...) goes through a Python-level __new__; the tuple is built directly.
            handler(
                new_tuple(
                    RawMessage,
                    (topic, payload, received_at, generation | packet_id if qos else -1, retained),
                )
            )
        conn.held = []
        conn.held_from = 0

    def _handle_control(self, conn: _Connection, packet: Packet) -> None:
        if isinstance(packet, ConnAck):
            self._on_connack(conn, packet)
        elif isinstance(packet, SubAck):
            refused = [code for code in packet.reason_codes if code >= 0x80]
            if refused:
                log.error("broker refused subscriptions: reason codes %s", refused)
        elif isinstance(packet, Disconnect):
            reason = packet.properties.text(PropertyId.REASON_STRING) or ""
            raise ConnectionLostError(
                f"the broker disconnected, reason 0x{packet.reason_code:02x} {reason}".rstrip()
            )
        elif not isinstance(packet, PingResp | UnsubAck | PubAck):
            raise ProtocolViolationError(f"unexpected {type(packet).__name__} from the broker")

    def _on_connack(self, conn: _Connection, packet: ConnAck) -> None:
        if packet.reason_code >= 0x80:
            reason = packet.properties.text(PropertyId.REASON_STRING) or ""
            log.error("broker refused connection: reason 0x%02x %s", packet.reason_code, reason)
            raise ConnectionLostError(f"connection refused (0x{packet.reason_code:02x})")
        server_keepalive = packet.properties.integer(PropertyId.SERVER_KEEP_ALIVE)
        if server_keepalive is not None:
            conn.keepalive_s = server_keepalive  # the broker's word wins (3.2.2.3.14)
        self._generation = (self._generation + 1) & 0xFFFF_FFFF
        self._acks.clear()
        log.info(
            "connected to %s:%s (session present: %s); subscribing to %s",
            self._endpoint.host,
            self._endpoint.port,
            packet.session_present,
            ", ".join((self.subscription, *self._direct)),
        )
        # Retained messages only when the subscription is new: a resumed session has had
        # them already (MQTT 5.0, 3.8.3.1, Retain Handling 1).
        conn.queue(
            Subscribe(
                conn.next_packet_id(),
                tuple(
                    Subscription(topic, qos=1, no_local=True, retain_handling=1)
                    for topic in (self.subscription, *self._direct)
                ),
            )
        )
        conn.connected = True
        self._set_connected(True)

    # -- the loop -------------------------------------------------------------------------

    def _connect_packet(self) -> Connect:
        endpoint = self._endpoint
        return Connect(
            self._client_id,
            keepalive_s=self._keepalive_s,
            clean_start=False,
            properties=Properties(
                (
                    (PropertyId.SESSION_EXPIRY_INTERVAL, self._session_expiry_s),
                    (PropertyId.RECEIVE_MAXIMUM, self._receive_maximum),
                    (PropertyId.TOPIC_ALIAS_MAXIMUM, _TOPIC_ALIAS_MAXIMUM),
                )
            ),
            username=endpoint.username or None,
            password=None if endpoint.password is None else endpoint.password.encode(),
        )

    def _loop(self) -> None:
        """Connect, serve the connection until it ends, reconnect with backoff."""
        backoff_s = 0.2
        while not self._stop.is_set():
            self._turned_at = time.monotonic()
            try:
                sock = open_connection(self._endpoint, _CONNECT_TIMEOUT_S)
            except OSError as err:
                log.warning("cannot reach broker (%s); retrying in %.1f s", err, backoff_s)
                self._stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 10.0)
                continue
            conn = _Connection(sock, self._keepalive_s)
            try:
                self._serve(conn)
            except (OSError, ConnectionLostError, MalformedPacketError) as err:
                if isinstance(err, ConnectionStalledError):
                    self.stalls += 1
                    self._say_goodbye(conn, _KEEP_ALIVE_TIMEOUT)
                elif isinstance(err, ProtocolViolationError):
                    self._say_goodbye(conn, _PROTOCOL_ERROR)
                elif isinstance(err, MalformedPacketError):
                    self._say_goodbye(conn, _MALFORMED)
                log.warning("connection lost (%s); reconnecting in %.1f s", err, backoff_s)
            finally:
                sock.close()
                if conn.connected:
                    self._set_connected(False)
            if conn.connected:
                backoff_s = 0.2
            if self._stop.wait(backoff_s):
                return
            backoff_s = min(backoff_s * 2, 10.0)

    def _serve(self, conn: _Connection) -> None:
        """Run one connection: CONNECT, then read, hand over and acknowledge until stopped."""
        conn.queue(self._connect_packet())
        connack_deadline = time.monotonic() + _CONNACK_TIMEOUT_S
        stop = self._stop
        while not stop.is_set():
            self._turned_at = time.monotonic()
            # With the backlog full, stop reading and let TCP push back to the broker,
            # which keeps the messages queued in the session.
            if conn.held and not self._full():
                self._hand_over(conn, datetime.now(UTC))
            reading = not conn.held and not self._full()
            if conn.wait(_TURN_S, reading) and reading:
                for _ in range(_READS_PER_TURN):
                    data = conn.recv()
                    if data is None:
                        break
                    conn.held = conn.reader.feed(data)
                    if conn.held:
                        self._hand_over(conn, datetime.now(UTC))
                    if conn.held or (len(data) < _RECV_BYTES and not conn.tls):
                        break
            if conn.connected:
                if self._acks:
                    self._drain_acks(conn)
            elif time.monotonic() > connack_deadline:
                raise ConnectionLostError(f"no CONNACK within {_CONNACK_TIMEOUT_S:.0f} s")
            conn.check_keepalive(reading)
            if conn.out:
                conn.flush()
        if conn.connected:
            self._close_gracefully(conn)

    def _close_gracefully(self, conn: _Connection) -> None:
        """Send the last acknowledgements, wait until the broker has handled them, leave.

        With the DISCONNECT written right behind 1,000 PUBACKs, Mosquitto redelivered
        200-500 of those messages at the next connection (measured). The answer to an
        UNSUBSCRIBE comes after every packet sent before it was handled. Messages arriving
        meanwhile are not taken: unacknowledged, they come again next time.
        """
        deadline = time.monotonic() + 5.0
        self._drain_acks(conn)
        flush_id = conn.next_packet_id()
        conn.queue(Unsubscribe(flush_id, (f"{self._root}/hub-flush",)))  # never subscribed
        try:
            while time.monotonic() < deadline:
                conn.flush()
                if conn.wait(_TURN_S):
                    data = conn.recv()
                    packets = conn.reader.feed(data) if data else []
                    if any(isinstance(p, UnsubAck) and p.packet_id == flush_id for p in packets):
                        break
            self._say_goodbye(conn, 0)
        except (OSError, ConnectionLostError, MalformedPacketError) as err:
            log.warning("connection lost while stopping (%s)", err)

    @staticmethod
    def _say_goodbye(conn: _Connection, reason_code: int) -> None:
        """Send a DISCONNECT with a reason, as far as the socket takes it now."""
        try:
            conn.queue(Disconnect(reason_code))
            deadline = time.monotonic() + 1.0
            while conn.out and time.monotonic() < deadline:
                conn.flush()
                if conn.out:
                    conn.wait(_TURN_S, read=False)
        except OSError:
            pass  # the socket is closed next anyway

    def _full(self) -> bool:
        """Whether as many messages wait for a commit as the receive maximum allows."""
        return self._backlog is not None and self._backlog() >= self._receive_maximum

    @property
    def connected(self) -> bool:
        """Connected now, and the network thread that keeps the connection is running."""
        return self._connected and self.running()

    def running(self) -> bool:
        """Whether the network thread is alive and turning (it is restarted after a crash).

        A thread stuck for twice the keep-alive (a handler that never returns) reads as not
        running, so /health reports it.
        """
        thread = self._thread
        return (
            thread is not None
            and thread.is_alive()
            and time.monotonic() - self._turned_at < max(2 * self._keepalive_s, 20)
        )

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
                self._turned_at = time.monotonic()
                if self._stop.wait(backoff_s):
                    return
                backoff_s = min(backoff_s * 2, 10.0)
            else:
                return

    def start(self) -> None:
        """Start the network thread; it connects and reconnects with backoff."""
        self._turned_at = time.monotonic()
        self._thread = threading.Thread(target=self._supervise, name="mqtt-network", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Send pending acknowledgements, disconnect and join the network thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
