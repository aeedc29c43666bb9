"""The documented TLS listener (deploy/mosquitto/tls.conf.example) against a real Mosquitto:
the hub connects over mqtts:// with a private CA and stores what a device sends over TLS;
a client that does not trust the CA is refused."""

import shutil
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

from hub.devices.kinds import Kind
from hub.local_services import MOSQUITTO_TUNING, free_port, wait_for_port
from tests.hub_process import count, hub_env, running_hub, wait_for
from tests.payload_examples import GOOD

pytestmark = pytest.mark.integration
EXAMPLE = MOSQUITTO_TUNING.parent.parent / "tls.conf.example"


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
def tls_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Mosquitto with the documented TLS listener on a free port; (port, CA file)."""
    certs = tmp_path / "certs"
    certs.mkdir()
    _certificates(certs)
    port = free_port()
    listener = EXAMPLE.read_text().replace("/mosquitto/certs/", f"{certs}/")
    listener = listener.replace("listener 8883", f"listener {port} 127.0.0.1")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"allow_anonymous true\npersistence false\nuser root\n{listener}")
    process = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port, certs / "ca.crt"
    finally:
        process.terminate()
        process.wait(10)


def _device_client(ca_file: Path | None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="L-TLS-1")
    client.tls_set(ca_certs=str(ca_file) if ca_file else None)
    return client


def test_hub_and_device_over_tls_with_a_private_ca(
    tls_broker: tuple[int, Path], database_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    port, ca_file = tls_broker
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon)"
            " VALUES ('L-TLS-1', 'lighting', 31.3, 120.6)"
        )
    env = hub_env(database_url, f"mqtts://127.0.0.1:{port}?cafile={ca_file}", mqtt_root)
    with running_hub(env, tmp_path / "hub.log"):
        device = _device_client(ca_file)
        device.connect("127.0.0.1", port)
        device.loop_start()
        body = {**GOOD[Kind.LIGHTING], "ts": datetime.now(UTC).isoformat()}
        info = device.publish(f"{mqtt_root}/lighting/L-TLS-1/telemetry", orjson.dumps(body), qos=1)
        info.wait_for_publish(timeout=10)
        device.loop_stop()
        device.disconnect()
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM telemetry_lighting") == 1,
            what="the reading sent over TLS stored",
        )


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_broker: tuple[int, Path]) -> None:
    port, _ = tls_broker
    with pytest.raises(ssl.SSLCertVerificationError):
        _device_client(None).connect("127.0.0.1", port)
