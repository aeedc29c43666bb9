"""The repository's broker ACLs against a real Mosquitto: each device publishes only as itself."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.repository_broker import (
    HUB_USER,
    Accounts,
    RepositoryBroker,
    Session,
    repository_broker,
    session,
)

pytestmark = pytest.mark.integration
ACCOUNTS = Accounts(devices={"L-1": "lamp-one", "L-2": "lamp-two"})


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[RepositoryBroker]:
    """Mosquitto with the repository's config, ACLs and entrypoint (as docker-compose runs it)."""
    with repository_broker(tmp_path, ACCOUNTS) as broker:
        yield broker


def test_devices_publish_only_to_their_own_topics(secured_broker: RepositoryBroker) -> None:
    with (
        session(secured_broker.platform_port, HUB_USER, ACCOUNTS.hub_password, "c-hub") as hub,
        session(secured_broker.device_port, "L-1", "lamp-one", "L-1") as lamp,
    ):
        hub.subscribe("city/#")
        # The cluster's hand-off (a member rebuilds handed readings without validating them
        # again, docs/security.md): watched, so a lamp's write there would be seen.
        hub.subscribe("hub/#")
        lamp.publish("city/lighting/L-1/telemetry", b"{}")
        lamp.publish("city/lighting/L-2/telemetry", b"{}")
        lamp.publish("city/lighting/L-1/cmd", b"{}")
        lamp.publish("city/alarms/device/L-2/lamp_out", b"{}")
        lamp.publish("hub/handoff/L-2", b"{}")
        lamp.publish("hub/city/city-hubs/rules/0", b'{"v": 3}')
        # The hub's own publish is the fence: everything the lamp sent was routed before it.
        hub.publish("city/lighting/L-9/cmd", b"fence")
        topics = [topic for topic, _ in hub.received(2)]
    assert topics == ["city/lighting/L-1/telemetry", "city/lighting/L-9/cmd"]


def test_devices_read_only_their_own_commands(secured_broker: RepositoryBroker) -> None:
    with (
        session(secured_broker.platform_port, HUB_USER, ACCOUNTS.hub_password, "c-hub") as hub,
        session(secured_broker.device_port, "L-1", "lamp-one", "L-1") as lamp,
    ):
        lamp.subscribe("city/+/+/cmd")
        lamp.subscribe("city/lighting/L-2/#")
        hub.publish("city/lighting/L-2/cmd", b"not yours")
        hub.publish("city/lighting/L-1/cmd", b"yours")
        got = lamp.received(1)
        lamp.subscribe("city/lighting/L-1/telemetry")  # a fence for anything else in flight
        got += lamp.pending()
    assert got == [("city/lighting/L-1/cmd", b"yours")]


def test_anonymous_and_wrong_passwords_are_refused(secured_broker: RepositoryBroker) -> None:
    for port in (secured_broker.device_port, secured_broker.platform_port):
        for user, password in ((None, None), ("L-1", "lamp-two"), (HUB_USER, "lamp-one")):
            attempt = Session(port, user, password, f"c-{user}")
            code = attempt.open()
            attempt.close()
            assert code not in (0, -1), f"{user} on {port}: {code}"
