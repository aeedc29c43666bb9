"""The JT/T 808 gateway's broker account in the repository's config, against a real Mosquitto.

The account `jt808` lives on the platform listener only. It may publish what truck
terminals send (telemetry, event, status, cmd/ack of trucks) and read truck commands,
nothing of other kinds, no commands and no alarms; a device account named like the
gateway's client id stops the broker; the real gateway works under the account.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from hub.ingest.jt808 import frame as fr
from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.gateway import Gateway, Terminal
from hub.services.jt808 import gateway_config
from hub.settings import Settings
from tests.deploy.repository_broker import (
    HUB_USER,
    JT808_USER,
    Accounts,
    BrokerDidNotStartError,
    RepositoryBroker,
    Session,
    repository_broker,
    session,
)
from tests.ingest.jt808.terminal import TerminalClient, gateway_thread

pytestmark = pytest.mark.integration
ACCOUNTS = Accounts(devices={"L-1": "lamp-one"})
PHONE = "13912344323"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RepositoryBroker]:
    """Mosquitto with the repository's config, ACLs and entrypoint (as docker-compose runs it)."""
    with repository_broker(tmp_path, ACCOUNTS) as running:
        yield running


def test_the_gateway_publishes_only_what_truck_terminals_send(broker: RepositoryBroker) -> None:
    allowed = [f"city/truck/T-1/{channel}" for channel in ("telemetry", "event", "status")]
    allowed.append("city/truck/T-2/cmd/ack")
    refused = [
        "city/lighting/L-1/telemetry",
        "city/truck/T-1/cmd",
        "city/alarms/device/T-1/overspeed",
        "hub/handoff/T-1",
        "city/truck/T-1/telemetry/extra",
    ]
    with (
        session(broker.platform_port, HUB_USER, ACCOUNTS.hub_password, "c-hub") as hub,
        session(broker.platform_port, JT808_USER, ACCOUNTS.jt808_password, "gw") as gateway,
    ):
        hub.subscribe("city/#")
        hub.subscribe("hub/#")
        for topic in refused + allowed:
            gateway.publish(topic, b"{}")
        # The hub's own publish is the fence: everything the gateway sent was routed before it.
        hub.publish("city/lighting/L-9/cmd", b"fence")
        topics = [topic for topic, _ in hub.received(len(allowed) + 1)]
        topics += [topic for topic, _ in hub.pending()]
    assert topics == [*allowed, "city/lighting/L-9/cmd"]


def test_the_gateway_reads_only_truck_commands(broker: RepositoryBroker) -> None:
    with (
        session(broker.platform_port, HUB_USER, ACCOUNTS.hub_password, "c-hub") as hub,
        session(broker.platform_port, JT808_USER, ACCOUNTS.jt808_password, "gw") as gateway,
    ):
        gateway.subscribe("city/truck/+/cmd")
        gateway.subscribe("city/+/+/cmd")
        gateway.subscribe("city/lighting/#")
        hub.publish("city/lighting/L-1/cmd", b"not yours")
        hub.publish("city/lighting/L-1/telemetry", b"not yours either")
        hub.publish("city/truck/T-1/cmd", b"yours")
        got = gateway.received(1)
        gateway.subscribe("city/truck/T-1/status")  # a fence for anything else in flight
        got += gateway.pending()
    assert got == [("city/truck/T-1/cmd", b"yours")]


def test_the_gateway_account_is_refused_on_the_device_listener(broker: RepositoryBroker) -> None:
    for port, password in (
        (broker.device_port, ACCOUNTS.jt808_password),
        (broker.platform_port, "wrong"),
    ):
        attempt = Session(port, JT808_USER, password, "gw-try")
        code = attempt.open()
        attempt.close()
        assert code not in (0, -1), f"{JT808_USER} on {port}: {code}"


def test_the_broker_refuses_a_device_account_named_like_the_gateway(tmp_path: Path) -> None:
    accounts = Accounts(devices={"L-1": "lamp-one", "jt808-gateway": "pretender"})
    with (
        pytest.raises(BrokerDidNotStartError) as refused,
        repository_broker(tmp_path / "clash", accounts),
    ):
        pass
    assert refused.value.returncode == 1
    assert "jt808-gateway" in refused.value.log


class OneTruck:
    """A directory holding one terminal."""

    async def find(self, phone: str) -> Terminal | None:
        """The truck T-1 for PHONE."""
        return Terminal("T-1", PHONE, "沪A12345", 2) if phone == PHONE else None


def test_the_gateway_works_under_its_account(broker: RepositoryBroker) -> None:
    settings = Settings(
        jt808_mqtt_url=f"mqtt://{JT808_USER}:{ACCOUNTS.jt808_password}@127.0.0.1:{broker.platform_port}",
        jt808_auth_secret=SecretStr("key"),
        jt808_metrics_port=0,  # no metrics server: a fixed port may be taken
    )
    with (
        session(broker.platform_port, HUB_USER, ACCOUNTS.hub_password, "c-hub") as hub,
        gateway_thread(Gateway(gateway_config(settings), OneTruck())) as running,
    ):
        hub.subscribe("city/truck/#")
        terminal = TerminalClient(running.port, PHONE, fr.Version.V2019)
        assert terminal.authenticate(terminal.register("沪A12345").auth_code).result == 0
        at = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
        location = m.Location(0, 0b11, 31_230_000, 121_470_000, 5, 300, 45, at, {})
        serial = terminal.send(m.MsgId.LOCATION, m.encode_location(location))
        # Acknowledged only after the broker's PUBACK: the publish was allowed.
        assert terminal.answer(serial).result == m.Result.OK
        got = hub.received(2)
        assert [topic for topic, _ in got] == ["city/truck/T-1/status", "city/truck/T-1/telemetry"]
        assert orjson.loads(got[1][1])["lat"] == pytest.approx(31.23)
        hub.publish("city/truck/T-1/cmd", orjson.dumps({"command_id": "c-1", "text": "慢行"}))
        hub.publish(
            "city/truck/T-1/cmd",
            orjson.dumps({"command_id": "c-2", "action": "text", "text": "慢行"}),
        )
        # The first has no action: rejected at once as cmd/ack (written under the account).
        acks = [orjson.loads(p) for t, p in hub.received(3) if t == "city/truck/T-1/cmd/ack"]
        assert [(a["command_id"], a["result"]) for a in acks] == [("c-1", "rejected")]
        message = terminal.receive()
        assert message.header.msg_id == m.MsgId.TEXT
        terminal.close()
