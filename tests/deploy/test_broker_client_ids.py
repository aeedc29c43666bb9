"""Client ids are tied to accounts in the repository's broker config (against a real Mosquitto).

A device account cannot take the hub's sessions (`city-hub` and each connection's suffix) or
another device's: neither disconnect them nor resume them and take what is queued. A device
still works under the client id the broker gives it (its user name). Device credentials
are refused on the platform listener, and the hub's connections all run at once.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
import pytest

from hub.devices.kinds import Kind
from hub.settings import Settings
from tests.deploy.repository_broker import (
    HUB_USER,
    SIMULATOR_USER,
    Accounts,
    BrokerDidNotStartError,
    RepositoryBroker,
    Session,
    repository_broker,
    session,
)
from tests.hub_process import count, hub_env, running_hub, wait_for
from tests.payload_examples import GOOD

pytestmark = pytest.mark.integration
HUB_DIR = Path(__file__).resolve().parents[2] / "hub"
ACCOUNTS = Accounts(devices={"L-1": "lamp-one", "L-2": "lamp-two", "L-3": "lamp-three"})
LAMP_PASSWORD = ACCOUNTS.devices["L-1"]
# The device that tries other accounts' client ids.
ATTACKER, ATTACKER_PASSWORD = "L-3", ACCOUNTS.devices["L-3"]


def hub_client_ids(settings: Settings) -> list[str]:
    """Every client id a hub process with these settings opens.

    The suffixes are read from the hub's source (`f"{settings.client_id}-cmd"`, ...), so a
    connection added there is covered here without anyone remembering to list it.
    """
    suffixes = {""}
    pattern = re.compile(r'\{settings\.client_id\}(-[A-Za-z0-9_.-]+)"')
    for source in HUB_DIR.rglob("*.py"):
        suffixes.update(pattern.findall(source.read_text()))
    assert {"-cmd", "-streams", "-lighting", "-alarms", "-handoff"} <= suffixes
    return [settings.client_id + suffix for suffix in sorted(suffixes)]


SINGLE_HUB_IDS = hub_client_ids(Settings(mqtt_client_id="city-hub", cluster_members=1))
# A single hub and both members of a two-hub cluster (docs/scaling.md).
HUB_CLIENT_IDS = SINGLE_HUB_IDS + [
    client_id
    for member in (0, 1)
    for client_id in hub_client_ids(
        Settings(
            mqtt_client_id="city-hub",
            cluster_members=2,
            cluster_member=member,
            mqtt_shared_group="hubs",
        )
    )
]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RepositoryBroker]:
    """Mosquitto with the repository's config, ACLs and entrypoint; lamps L-1 and L-2."""
    with repository_broker(tmp_path, ACCOUNTS) as running:
        yield running


@dataclass(frozen=True, slots=True)
class Victim:
    """A persistent session someone wants, the topic it reads and who feeds that topic."""

    client_id: str
    user: str
    password: str
    listener: str
    topic: str
    feeder: str
    feeder_password: str
    feeder_listener: str

    def port(self, broker: RepositoryBroker, listener: str) -> int:
        return broker.device_port if listener == "device" else broker.platform_port


def hub_victim(client_id: str) -> Victim:
    return Victim(
        client_id,
        HUB_USER,
        ACCOUNTS.hub_password,
        "platform",
        "city/lighting/L-1/telemetry",
        "L-1",
        LAMP_PASSWORD,
        "device",
    )


VICTIMS = [hub_victim(client_id) for client_id in SINGLE_HUB_IDS] + [
    # Another device: lamp L-2, fed its commands by the hub.
    Victim(
        "L-2",
        "L-2",
        ACCOUNTS.devices["L-2"],
        "device",
        "city/lighting/L-2/cmd",
        HUB_USER,
        ACCOUNTS.hub_password,
        "platform",
    )
]


@pytest.mark.parametrize("persistent_attacker", [True, False], ids=["resume", "clean"])
@pytest.mark.parametrize("victim", VICTIMS, ids=[v.client_id for v in VICTIMS])
def test_a_device_cannot_take_a_persistent_session_or_its_queue(
    broker: RepositoryBroker, victim: Victim, persistent_attacker: bool
) -> None:
    port = victim.port(broker, victim.listener)
    with session(port, victim.user, victim.password, victim.client_id, persistent=True) as owner:
        owner.subscribe(victim.topic)
    # The owner is away; what arrives now is queued in its session.
    feeder_port = victim.port(broker, victim.feeder_listener)
    with session(feeder_port, victim.feeder, victim.feeder_password, "feeder") as feeder:
        for n in range(3):
            feeder.publish(victim.topic, f"queued-{n}".encode())

    # Lamp L-3 asks for the owner's client id: on the device listener it gets its own session
    # (resuming the owner's would deliver the queue before the SUBACK below; clean would wipe it).
    attacker = Session(
        broker.device_port,
        ATTACKER,
        ATTACKER_PASSWORD,
        victim.client_id,
        persistent=persistent_attacker,
    )
    assert attacker.open() == 0
    assert not attacker.session_present
    attacker.subscribe(f"city/lighting/{ATTACKER}/cmd")
    stolen = attacker.pending()
    attacker.close()
    assert stolen == []
    # On the platform listener its credentials are refused outright.
    refused = Session(
        broker.platform_port, ATTACKER, ATTACKER_PASSWORD, victim.client_id, persistent=True
    )
    assert refused.open() not in (0, -1)
    refused.close()

    with session(port, victim.user, victim.password, victim.client_id, persistent=True) as owner:
        assert owner.session_present
        payloads = sorted(payload for _, payload in owner.received(3))
    assert payloads == [b"queued-0", b"queued-1", b"queued-2"]


@pytest.mark.parametrize("victim", VICTIMS, ids=[v.client_id for v in VICTIMS])
def test_a_device_using_a_connected_clients_id_does_not_disconnect_it(
    broker: RepositoryBroker, victim: Victim
) -> None:
    port = victim.port(broker, victim.listener)
    with session(port, victim.user, victim.password, victim.client_id, persistent=True) as owner:
        owner.subscribe(victim.topic)
        with session(broker.device_port, ATTACKER, ATTACKER_PASSWORD, victim.client_id) as attacker:
            feeder_port = victim.port(broker, victim.feeder_listener)
            with session(feeder_port, victim.feeder, victim.feeder_password, "feeder") as feeder:
                feeder.publish(victim.topic, b"after the attempt")
            assert owner.received(1) == [(victim.topic, b"after the attempt")]
            assert attacker.disconnects == []
        assert owner.disconnects == []


def test_a_device_works_under_the_client_id_the_broker_gives_it(broker: RepositoryBroker) -> None:
    with session(broker.platform_port, HUB_USER, ACCOUNTS.hub_password, "city-hub") as hub:
        hub.subscribe("city/lighting/+/telemetry")
        # Whatever id it asks for, the lamp's session is "L-1": its own, kept between visits.
        with session(broker.device_port, "L-1", LAMP_PASSWORD, "city-hub", persistent=True) as lamp:
            lamp.publish("city/lighting/L-1/telemetry", b"reading")
            lamp.subscribe("city/lighting/L-1/cmd")
        assert hub.received(1) == [("city/lighting/L-1/telemetry", b"reading")]
        hub.publish("city/lighting/L-1/cmd", b"while away")
        with session(broker.device_port, "L-1", LAMP_PASSWORD, "other-id", persistent=True) as lamp:
            assert lamp.session_present
            assert lamp.received(1) == [("city/lighting/L-1/cmd", b"while away")]
        assert hub.disconnects == []


def test_each_listener_admits_only_its_own_accounts(
    broker: RepositoryBroker,
) -> None:
    attempts = [
        (broker.platform_port, "L-1", LAMP_PASSWORD),
        (broker.platform_port, SIMULATOR_USER, ACCOUNTS.simulator_password),
        (broker.platform_port, None, None),
        (broker.device_port, HUB_USER, ACCOUNTS.hub_password),
        (broker.device_port, None, None),
    ]
    for port, user, password in attempts:
        attempt = Session(port, user, password, "city-hub")
        code = attempt.open()
        attempt.close()
        assert code not in (0, -1), f"{user} accepted on {port}"
    with session(broker.device_port, SIMULATOR_USER, ACCOUNTS.simulator_password, "x") as sim:
        sim.publish("city/lighting/L-2/telemetry", b"as a gateway")


def test_the_hub_opens_all_its_client_ids_at_once(broker: RepositoryBroker) -> None:
    port, password = broker.platform_port, ACCOUNTS.hub_password
    sessions = [Session(port, HUB_USER, password, cid, persistent=True) for cid in HUB_CLIENT_IDS]
    try:
        for hub in sessions:
            assert hub.open() == 0
            hub.subscribe("city/lighting/L-1/telemetry")
        with session(broker.device_port, "L-1", LAMP_PASSWORD, "L-1") as lamp:
            lamp.publish("city/lighting/L-1/telemetry", b"to every connection")
        for hub in sessions:
            assert hub.received(1) == [("city/lighting/L-1/telemetry", b"to every connection")]
            assert hub.disconnects == []
    finally:
        for hub in sessions:
            hub.close()


def test_the_broker_refuses_to_start_with_a_device_account_named_like_the_hub(
    tmp_path: Path,
) -> None:
    for name in ("city-hub", "city-hub-cmd"):
        accounts = Accounts(devices={"L-1": LAMP_PASSWORD, name: "pretender"})
        with (
            pytest.raises(BrokerDidNotStartError) as refused,
            repository_broker(tmp_path / name, accounts),
        ):
            pass
        assert refused.value.returncode == 1
        assert name in refused.value.log
    # The check follows the hub's configured client id.
    accounts = Accounts(devices={"plant-7": "x"}, hub_client_id="plant")
    with pytest.raises(BrokerDidNotStartError), repository_broker(tmp_path / "plant", accounts):
        pass
    with repository_broker(tmp_path / "ok", Accounts(devices={"city-hubcap": "x"})):
        pass


def test_the_real_hub_keeps_its_connections_while_a_device_tries_its_ids(
    broker: RepositoryBroker, database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon)"
            " VALUES ('L-1', 'lighting', 31.3, 120.6)"
        )
    url = f"mqtt://{HUB_USER}:{ACCOUNTS.hub_password}@127.0.0.1:{broker.platform_port}"
    env = hub_env(database_url, url, "city", HUB_MQTT_CLIENT_ID="city-hub")
    log = tmp_path / "hub.log"
    with running_hub(env, log):
        for client_id in SINGLE_HUB_IDS:
            for persistent in (True, False):
                attempt = Session(
                    broker.device_port, "L-1", LAMP_PASSWORD, client_id, persistent=persistent
                )
                assert attempt.open() == 0
                attempt.close()
        body = {**GOOD[Kind.LIGHTING], "ts": datetime.now(UTC).isoformat()}
        with session(broker.device_port, "L-1", LAMP_PASSWORD, "city-hub") as lamp:
            lamp.publish("city/lighting/L-1/telemetry", orjson.dumps(body))
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM telemetry_lighting") == 1,
            what="the lamp's reading stored",
        )
        text = log.read_text()
    # One connection each, never dropped: no reconnect, no "disconnected", no refusal.
    assert text.count("subscribing to") == 1, text[-3000:]
    assert "disconnected" not in text, text[-3000:]
    assert "refused" not in text, text[-3000:]
