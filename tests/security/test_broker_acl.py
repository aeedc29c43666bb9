"""The repository's broker ACL against a real Mosquitto: each device publishes only as itself."""

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.local_services import MOSQUITTO_TUNING, free_port, wait_for_port

pytestmark = pytest.mark.integration
ACL = MOSQUITTO_TUNING.parent.parent / "acl"
USERS = {"hub": "hub-secret", "L-1": "lamp-one", "L-2": "lamp-two"}


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[int]:
    """Mosquitto with password authentication and the repository's ACL file."""
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run(
            [
                shutil.which("mosquitto_passwd") or "mosquitto_passwd",
                "-b",
                str(passwd),
                user,
                password,
            ],
            check=True,
        )
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"per_listener_settings false\nlistener {port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {passwd}\nacl_file {ACL}\npersistence false\nuser root\n"
    )
    process = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def connect(port: int, user: str | None, password: str | None) -> tuple[paho.Client, int]:
    """A connected client and the CONNACK reason code value (0 = accepted)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"c-{user}-{time.monotonic_ns()}")
    if user is not None:
        client.username_pw_set(user, password)
    result: list[int] = []
    done = threading.Event()

    def on_connect(c: paho.Client, u: object, f: object, reason: object, p: object) -> None:
        result.append(int(getattr(reason, "value", 0)))
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(5)
    return client, result[0] if result else -1


def test_devices_publish_only_to_their_own_topics(secured_broker: int) -> None:
    received: list[str] = []
    hub, code = connect(secured_broker, "hub", USERS["hub"])
    assert code == 0
    hub.on_message = lambda c, u, m: received.append(m.topic)
    hub.subscribe("city/#", qos=1)
    time.sleep(0.3)
    lamp, code = connect(secured_broker, "L-1", USERS["L-1"])
    assert code == 0
    lamp.publish("city/lighting/L-1/telemetry", b"{}", qos=1).wait_for_publish(5)
    lamp.publish("city/lighting/L-2/telemetry", b"{}", qos=1).wait_for_publish(5)
    lamp.publish("city/lighting/L-1/cmd", b"{}", qos=1).wait_for_publish(5)
    lamp.publish("city/alarms/device/L-2/lamp_out", b"{}", qos=1).wait_for_publish(5)
    time.sleep(0.5)
    for client in (lamp, hub):
        client.loop_stop()
        client.disconnect()
    assert received == ["city/lighting/L-1/telemetry"]


def test_anonymous_and_wrong_passwords_are_refused(secured_broker: int) -> None:
    anonymous, code = connect(secured_broker, None, None)
    anonymous.loop_stop()
    assert code != 0
    wrong, code = connect(secured_broker, "L-1", "lamp-two")
    wrong.loop_stop()
    assert code != 0
