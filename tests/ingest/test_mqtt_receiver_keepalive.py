"""Keep-alive of the receiver's socket loop: pings when quiet, a silent broker is left.

Mosquitto cannot be made to fall silent on one connection, so the broker here is a socket
answered with the packet codec: CONNACK and SUBACK, then PINGRESP or nothing.
"""

import socket
import threading
from collections.abc import Iterator

import pytest

from hub.ingest.mqtt import MqttReceiver
from hub.ingest.mqtt_packets import (
    ConnAck,
    Connect,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    SubAck,
    Subscribe,
    encode_packet,
)
from tests.hub_process import wait_for


class SilentBroker:
    """Accepts connections, completes CONNECT and SUBSCRIBE, then answers pings or not."""

    def __init__(self, answer_pings: bool) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.answer_pings = answer_pings
        self.connections = 0
        self.pings = 0
        self.received: list[Packet] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        reader = PacketReader()
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                for packet in reader.feed(data):
                    self.received.append(packet)
                    if isinstance(packet, Connect):
                        conn.sendall(encode_packet(ConnAck()))
                    elif isinstance(packet, Subscribe):
                        codes = (1,) * len(packet.subscriptions)
                        conn.sendall(encode_packet(SubAck(packet.packet_id, codes)))
                    elif isinstance(packet, PingReq):
                        self.pings += 1
                        if self.answer_pings:
                            conn.sendall(encode_packet(PingResp()))

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def silent_broker() -> Iterator[SilentBroker]:
    broker = SilentBroker(answer_pings=False)
    yield broker
    broker.close()


@pytest.fixture
def answering_broker() -> Iterator[SilentBroker]:
    broker = SilentBroker(answer_pings=True)
    yield broker
    broker.close()


def receiver_of(url: str) -> MqttReceiver:
    return MqttReceiver(
        url=url, client_id="keepalive", root="city", on_message=lambda m: None, keepalive_s=1
    )


def test_a_broker_that_falls_silent_is_left_and_connected_again(
    silent_broker: SilentBroker,
) -> None:
    receiver = receiver_of(silent_broker.url)
    receiver.start()
    try:
        wait_for(lambda: receiver.connected, 10, "connected")
        wait_for(lambda: receiver.stalls >= 1, 10, "the stall noticed")
        assert silent_broker.pings >= 1  # it asked before giving up
        wait_for(lambda: silent_broker.connections >= 2, 10, "a new connection")
        assert receiver.running()
        assert receiver.restarts == 0  # a stall is a reconnect, not a crash
    finally:
        receiver.stop()
    connect = next(p for p in silent_broker.received if isinstance(p, Connect))
    assert (connect.client_id, connect.keepalive_s, connect.clean_start) == ("keepalive", 1, False)


def test_a_broker_that_answers_pings_keeps_the_connection(
    answering_broker: SilentBroker,
) -> None:
    receiver = receiver_of(answering_broker.url)
    receiver.start()
    try:
        wait_for(lambda: receiver.connected, 10, "connected")
        wait_for(lambda: answering_broker.pings >= 4, 10, "pings over four keep-alives")
        assert receiver.connected
        assert (receiver.stalls, answering_broker.connections) == (0, 1)
    finally:
        receiver.stop()
