"""A load generator's MQTT publisher: pre-encoded MQTT 3.1.1 QoS 1 packets on a plain socket.

The benchmarks share two cores between the broker, PostgreSQL, the hub and this
publisher, so every microsecond the publisher spends per message is taken from what is
being measured. paho spent about 75 µs of CPU per QoS 1 publish here (its packet
object, its in-flight bookkeeping, one send per packet): at 9,000 msg/s that was
two thirds of a core. This client encodes a PUBLISH in one bytes join, writes packets
in 64 KiB blocks and counts PUBACKs by scanning the bytes the broker sends back, which
is what a load generator needs and nothing more: no retries (the broker is local and
the benchmarks check in SQL what arrived), no subscriptions, no TLS.
"""

import select
import socket
import struct
import time

from hub.settings import MqttEndpoint

_CONNACK = 0x20
_PUBACK = 0x40
_WRITE_BLOCK = 64 * 1024


def _remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def connect_packet(
    client_id: str, username: str | None = None, password: str | None = None
) -> bytes:
    """CONNECT, protocol level 4 (3.1.1), clean session, no keep-alive."""
    flags = 0x02
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 0) + payload
    return bytes([0x10]) + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH at QoS 1 with a packet id (1-65535)."""
    topic_bytes = topic.encode()
    length = 2 + len(topic_bytes) + 2 + len(payload)
    return b"".join(
        (
            b"\x32",
            _remaining_length(length),
            struct.pack("!H", len(topic_bytes)),
            topic_bytes,
            struct.pack("!H", packet_id),
            payload,
        )
    )


class PacketScanner:
    """Splits the broker's byte stream into packets and counts the PUBACKs among them."""

    def __init__(self) -> None:
        self._buffer = b""
        self.pubacks = 0
        self.connack: int | None = None  # its return code once it has arrived

    def feed(self, data: bytes) -> None:
        """Take more bytes; count every complete packet in them."""
        buffer = self._buffer + data
        pos = 0
        end = len(buffer)
        while pos + 2 <= end:
            kind = buffer[pos] & 0xF0
            length = 0
            shift = 0
            cursor = pos + 1
            while cursor < end:
                byte = buffer[cursor]
                length |= (byte & 0x7F) << shift
                shift += 7
                cursor += 1
                if not byte & 0x80:
                    break
            else:
                break  # the length is not complete yet
            if cursor + length > end:
                break
            if kind == _PUBACK:
                self.pubacks += 1
            elif kind == _CONNACK:
                self.connack = buffer[cursor + 1]
            pos = cursor + length
        self._buffer = buffer[pos:]


class LoadPublisher:
    """Publishes at QoS 1 with a bounded in-flight window; `pump` writes and reads acks.

    `publish` queues the encoded packet and writes once 64 KiB are queued; `pump` writes
    the rest at once, so a caller that times a publish calls `pump(0)` right after it.
    """

    def __init__(self, mqtt_url: str, client_id: str, inflight: int = 10_000) -> None:
        endpoint = MqttEndpoint(mqtt_url)
        if endpoint.tls:
            raise ValueError("the load publisher speaks plain MQTT only; use mqtt://")
        if not 0 < inflight < 65_535:
            raise ValueError("inflight must be between 1 and 65,534 (the packet id space)")
        self.sent = 0
        self._inflight = inflight
        self._next_id = 0
        self._queued: list[bytes] = []
        self._queued_bytes = 0
        self._scanner = PacketScanner()
        self._sock = socket.create_connection((endpoint.host, endpoint.port), timeout=10)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(connect_packet(client_id, endpoint.username, endpoint.password))
        deadline = time.monotonic() + 10
        while self._scanner.connack is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no CONNACK from {mqtt_url}")
            self._read(0.5)
        if self._scanner.connack != 0:
            raise ConnectionError(f"broker refused the connection: code {self._scanner.connack}")

    @property
    def acked(self) -> int:
        """Publishes the broker has acknowledged."""
        return self._scanner.pubacks

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue one QoS 1 publish; blocks while the in-flight window is full."""
        while self.sent - self._scanner.pubacks >= self._inflight:
            self.pump(0.05)
        self._next_id = self._next_id % 65_535 + 1
        packet = publish_packet(topic, payload, self._next_id)
        self._queued.append(packet)
        self._queued_bytes += len(packet)
        self.sent += 1
        if self._queued_bytes >= _WRITE_BLOCK:
            self._write()

    def _write(self) -> None:
        if self._queued:
            self._sock.sendall(b"".join(self._queued))
            self._queued.clear()
            self._queued_bytes = 0

    def _read(self, timeout_s: float) -> None:
        readable, _, _ = select.select([self._sock], [], [], timeout_s)
        if readable:
            data = self._sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the broker closed the connection")
            self._scanner.feed(data)

    def pump(self, timeout_s: float) -> None:
        """Write what is queued, then read acknowledgements for up to timeout_s."""
        self._write()
        self._read(timeout_s)

    def wait_acked(self, timeout_s: float = 60.0) -> bool:
        """Pump until every publish is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.acked < self.sent and time.monotonic() < deadline:
            self.pump(0.05)
        return self.acked >= self.sent

    def close(self) -> None:
        """Send what is queued, DISCONNECT and close the socket."""
        try:
            self._write()
            self._sock.sendall(b"\xe0\x00")
        finally:
            self._sock.close()
