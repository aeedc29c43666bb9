"""The gateway's counters over HTTP: GET /metrics on the gateway's loop, Prometheus text."""

import dataclasses
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from hub.ingest.jt808 import frame as fr
from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.gateway import Gateway, GatewayConfig, Terminal
from hub.services.jt808 import gateway_config
from hub.settings import Settings
from tests.hub_process import wait_for
from tests.ingest.jt808.terminal import TerminalClient, gateway_thread

pytestmark = pytest.mark.integration
PHONE = "13912344323"


class OneTruck:
    """A directory holding one terminal."""

    async def find(self, phone: str) -> Terminal | None:
        """The truck T-1 for PHONE."""
        return Terminal("T-1", PHONE) if phone == PHONE else None


def scrape(port: int, path: str = "/metrics") -> dict[tuple[str, tuple[str, ...]], float]:
    """Samples of one scrape by (name, label values)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = response.read().decode()
    return {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def config(mqtt_url: str, mqtt_root: str) -> GatewayConfig:
    """A gateway's config whose /metrics listens on a free port."""
    settings = Settings(
        mqtt_url=mqtt_url,
        mqtt_root=mqtt_root,
        jt808_client_id=f"jt808-{mqtt_root}",
        jt808_auth_secret=SecretStr("key"),
    )
    assert gateway_config(settings).metrics_port == 9808  # on by default
    off = settings.model_copy(update={"jt808_metrics_port": 0})
    assert gateway_config(off).metrics_port is None
    return dataclasses.replace(gateway_config(settings), metrics_port=0)


def test_counters_are_served_as_prometheus_text(mqtt_url: str, mqtt_root: str) -> None:
    with gateway_thread(Gateway(config(mqtt_url, mqtt_root), OneTruck())) as running:
        port = running.gateway.metrics_port
        assert port is not None
        before = scrape(port)
        assert before[("jt808_connections_open", ())] == 0
        assert before[("jt808_positions_published_total", ())] == 0
        assert before[("process_resident_memory_bytes", ())] > 0

        terminal = TerminalClient(running.port, PHONE, fr.Version.V2019)
        assert terminal.authenticate(terminal.register("").auth_code).result == 0
        at = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
        location = m.Location(0, 0b11, 31_230_000, 121_470_000, 5, 300, 45, at, {})
        for _ in range(2):
            assert terminal.answer(terminal.send(m.MsgId.LOCATION, m.encode_location(location)))
        terminal.sock.sendall(b"\x7e\x00\x02\x7e")  # too short to be a frame
        assert terminal.answer(terminal.send(m.MsgId.HEARTBEAT)).result == 0
        during = scrape(port)
        terminal.close()

        assert during[("jt808_connections_open", ())] == 1
        assert during[("jt808_terminals_online", ())] == 1
        assert during[("jt808_connections_total", ())] == 1
        assert during[("jt808_positions_published_total", ())] == 2
        assert during[("jt808_frames_total", ("0x0200",))] == 2
        assert during[("jt808_frames_total", ("0x0100",))] == 1
        assert sum(v for (name, _), v in during.items() if name == "jt808_bad_frames_total") == 1
        assert during[("process_cpu_seconds_total", ())] > 0

        with pytest.raises(urllib.error.HTTPError) as missing:
            scrape(port, "/other")
        assert missing.value.code == 404


def test_a_silent_connection_is_closed_and_counted(mqtt_url: str, mqtt_root: str) -> None:
    """Idle and half-open connections time out; one sweep closes them, the server lives on."""
    quick = dataclasses.replace(config(mqtt_url, mqtt_root), idle_timeout_s=0.4)
    with gateway_thread(Gateway(quick, OneTruck())) as running:
        port = running.gateway.metrics_port
        assert port is not None
        silent = TerminalClient(running.port, PHONE)
        silent.sock.settimeout(30)
        assert silent.sock.recv(1) == b""  # the gateway hung up on the silent terminal
        silent.close()
        wait_for(lambda: scrape(port)[("jt808_connections_open", ())] == 0, what="closed")
        after = scrape(port)
        assert after[("jt808_bad_frames_total", ("idle_timeout",))] == 1
        talking = TerminalClient(running.port, PHONE)
        assert talking.answer(talking.send(m.MsgId.HEARTBEAT)).result == 0
        talking.close()
