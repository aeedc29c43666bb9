"""With the broker away the gateway acknowledges nothing; once it is back the resent position is.

A broker of this test's own (it is stopped and started again); the registry is a
directory fake, the broker and TCP are real.
"""

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.cli.local_stack import LocalMosquitto, free_port
from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.gateway import Gateway, GatewayConfig, Terminal, auth_code_for
from hub.ingest.jt808.mapping import BodyMapping, parse_bit_source
from tests.hub_process import wait_for
from tests.ingest.jt808.terminal import RunningGateway, TerminalClient, gateway_thread

pytestmark = pytest.mark.integration
TRUCK = Terminal("truck-outage", "13912340000")
SECRET = b"outage-key"


class OneTruckDirectory:
    """A registry of one truck."""

    async def find(self, phone: str) -> Terminal | None:
        """The truck when the number is its terminal's."""
        return TRUCK if phone == TRUCK.phone else None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalMosquitto]:
    """A Mosquitto of this test's own."""
    server = LocalMosquitto(tmp_path / "mosquitto", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gateway(broker: LocalMosquitto) -> Iterator[RunningGateway]:
    """A gateway on that broker, retrying its connection quickly."""
    config = GatewayConfig(
        mqtt_url=broker.url,
        mqtt_root="outage",
        client_id="jt808-outage",
        auth_secret=SECRET,
        body_mapping=BodyMapping(parse_bit_source("status:22"), parse_bit_source("status:23")),
        publish_timeout_s=2.0,
        reconnect_max_s=0.5,
    )
    with gateway_thread(Gateway(config, OneTruckDirectory())) as running:
        yield running


def test_no_ack_while_the_broker_is_away_and_the_resend_is_acked(
    gateway: RunningGateway, broker: LocalMosquitto
) -> None:
    terminal = TerminalClient(gateway.port, "0" + TRUCK.phone)
    assert terminal.authenticate(auth_code_for(SECRET, TRUCK)).result == m.Result.OK
    body = m.encode_location(
        m.Location(0, 0b11, 31_230_000, 121_470_000, 0, 0, 0, datetime.now(UTC), {})
    )
    broker.stop()
    wait_for(lambda: not gateway.gateway.broker.connected.is_set(), what="the gateway to notice")
    serial = terminal.send(m.MsgId.LOCATION, body)
    terminal.sock.settimeout(3)
    with pytest.raises(socket.timeout):
        terminal.answer(serial)
    assert gateway.gateway.counters.acks_withheld == 1
    broker.start()
    wait_for(gateway.gateway.broker.connected.is_set, what="the gateway to reconnect")
    terminal.sock.settimeout(10)
    resent = terminal.send(m.MsgId.LOCATION, body)  # the terminal sends it again
    assert terminal.answer(resent).result == m.Result.OK
    assert gateway.gateway.counters.positions_published == 1
    terminal.close()
