"""A subpackaged batch with a package missing: the gateway asks for it (0x8003), then
publishes the whole batch once the terminal sent it again."""

import dataclasses
from datetime import UTC, datetime

import pytest

from hub.ingest.jt808 import frame as fr
from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.gateway import Gateway, Terminal
from tests.ingest.jt808.terminal import TerminalClient, gateway_thread
from tests.ingest.jt808.test_metrics import config

pytestmark = pytest.mark.integration
PHONE = "13912347777"


class OneTruck:
    """A directory holding one terminal."""

    async def find(self, phone: str) -> Terminal | None:
        """The truck T-7 for PHONE."""
        return Terminal("T-7", PHONE) if phone == PHONE else None


@pytest.mark.parametrize("version", [fr.Version.V2013, fr.Version.V2019])
def test_a_missing_package_is_asked_for_and_the_batch_completes(
    mqtt_url: str, mqtt_root: str, version: fr.Version
) -> None:
    gateway_config = dataclasses.replace(config(mqtt_url, mqtt_root), metrics_port=None)
    with gateway_thread(Gateway(gateway_config, OneTruck())) as running:
        terminal = TerminalClient(running.port, PHONE, version)
        assert terminal.authenticate(terminal.register("").auth_code).result == 0
        at = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
        locations = tuple(
            m.Location(0, 0b11, 31_230_000 + i, 121_470_000, 5, 300, 45, at, {}) for i in range(60)
        )
        body = m.encode_location_batch(m.LocationBatch(True, locations))
        first = terminal.serial + 1
        header = fr.Header(
            msg_id=m.MsgId.LOCATION_BATCH,
            phone=PHONE,
            serial=first,
            version=version,
            protocol_version=1 if version == fr.Version.V2019 else 0,
        )
        parts = fr.split_into_packages(header, body, 800)
        assert len(parts) == 3
        terminal.serial += 3
        terminal.sock.sendall(parts[0] + parts[2])  # package 2 lost on the way

        request = None
        answered = set()
        while request is None:
            reply = terminal.receive()
            if reply.header.msg_id == m.MsgId.RESEND_REQUEST:
                request = m.decode_resend_request(reply.body, version)
            elif reply.header.msg_id == m.MsgId.PLATFORM_RESPONSE:
                answered.add(m.decode_general_response(reply.body).reply_serial)
        assert request == m.ResendRequest(first, (2,))

        terminal.sock.sendall(parts[1])
        # The whole message is answered under its first package's serial once published.
        assert terminal.answer(first).result == m.Result.OK
        terminal.close()
        assert running.gateway.counters.resend_requests == 1
        assert running.gateway.counters.positions_published == 60
