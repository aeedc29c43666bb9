"""The documented TLS listeners (deploy/mosquitto/tls.conf.example) against a real Mosquitto
running the repository's config: the hub connects over mqtts:// with a private CA to the
platform TLS listener and stores what a device sends over the device TLS listener; a client
that does not trust the CA is refused."""

import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.cli.local_stack import MOSQUITTO_TUNING
from hub.devices.kinds import Kind
from tests.deploy.repository_broker import HUB_USER, Accounts, repository_broker
from tests.hub_process import count, hub_env, running_hub, wait_for
from tests.payload_examples import GOOD

pytestmark = pytest.mark.integration
EXAMPLE = MOSQUITTO_TUNING.parent.parent / "tls.conf.example"
# The example's listeners: devices (client id = user name) and the platform (the hub).
DEVICE_TLS, PLATFORM_TLS = 8883, 8884
ACCOUNTS = Accounts(devices={"L-TLS-1": "lamp-over-tls"})


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(directory: Path) -> None:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=hub test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=directory,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=directory,
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
        cwd=directory,
    )


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[dict[int, int], Path]]:
    """The repository's broker with the example copied to conf.d/tls.conf and certificates
    mounted, as docs/security.md says; (listener port -> free port, CA file)."""
    certs = tmp_path / "certs"
    certs.mkdir()
    _certificates(certs)
    mounts = {"/mosquitto/config/conf.d/tls.conf": EXAMPLE, "/mosquitto/certs": certs}
    with repository_broker(tmp_path / "broker", ACCOUNTS, mounts) as broker:
        yield dict(broker.ports), certs / "ca.crt"


def _device_client(ca_file: Path | None, client_id: str = "L-TLS-1") -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set("L-TLS-1", ACCOUNTS.devices["L-TLS-1"])
    client.tls_set(ca_certs=str(ca_file) if ca_file else None)
    return client


def test_hub_and_device_over_tls_with_a_private_ca(
    tls_broker: tuple[dict[int, int], Path], database_url: str, tmp_path: Path
) -> None:
    ports, ca_file = tls_broker
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon)"
            " VALUES ('L-TLS-1', 'lighting', 31.3, 120.6)"
        )
    credentials = f"{HUB_USER}:{ACCOUNTS.hub_password}"
    url = f"mqtts://{credentials}@127.0.0.1:{ports[PLATFORM_TLS]}?cafile={ca_file}"
    # The repository's ACLs are written for the `city` root.
    env = hub_env(database_url, url, "city", HUB_MQTT_CLIENT_ID="city-hub")
    log = tmp_path / "hub.log"
    with running_hub(env, log):
        # Asking for the hub's client id gets the device its own session (its user name).
        device = _device_client(ca_file, client_id="city-hub")
        device.connect("127.0.0.1", ports[DEVICE_TLS])
        device.loop_start()
        body = {**GOOD[Kind.LIGHTING], "ts": datetime.now(UTC).isoformat()}
        info = device.publish("city/lighting/L-TLS-1/telemetry", orjson.dumps(body), qos=1)
        info.wait_for_publish(timeout=10)
        device.loop_stop()
        device.disconnect()
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM telemetry_lighting") == 1,
            what="the reading sent over TLS stored",
        )
        text = log.read_text()
    assert "disconnected" not in text, text[-3000:]


def test_a_client_that_does_not_trust_the_ca_is_refused(
    tls_broker: tuple[dict[int, int], Path],
) -> None:
    ports, _ = tls_broker
    for listener in (DEVICE_TLS, PLATFORM_TLS):
        with pytest.raises(ssl.SSLCertVerificationError):
            _device_client(None).connect("127.0.0.1", ports[listener])
