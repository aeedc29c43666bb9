"""Mosquitto started the way docker-compose.yml starts it, for tests of the repository's config.

The files the compose file mounts into the mosquitto service are copied to the same paths
under a directory of the test (`/mosquitto/...` in them rewritten to point there), each
listener moves to a free port on 127.0.0.1, and the repository's entrypoint.sh writes the
password files from the environment and runs the broker. A config, ACL, mount or
entrypoint change is therefore tested as it ships; nothing here restates it.
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from queue import Empty, SimpleQueue

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub.cli.local_stack import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
# Listener ports as the repository's mosquitto.conf names them.
DEVICE_LISTENER = 1883
PLATFORM_LISTENER = 1884
HUB_USER = "hub"
SIMULATOR_USER = "simulator"
JT808_USER = "jt808"
_CONTAINER_PATH = re.compile(r"(?<![\w.-])/mosquitto/")
_LISTENER_LINE = re.compile(r"^listener (\d+)\b.*$", re.MULTILINE)


class BrokerDidNotStartError(RuntimeError):
    """The entrypoint or the broker exited before every listener accepted connections."""

    def __init__(self, returncode: int | None, log: str) -> None:
        super().__init__(f"broker did not start (exit {returncode}):\n{log[-3000:]}")
        self.returncode = returncode
        self.log = log


@dataclass(frozen=True, slots=True)
class Accounts:
    """Passwords the entrypoint reads from the environment, and device accounts an operator
    added to the persistent device password file before the broker started."""

    hub_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    simulator_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    jt808_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    devices: Mapping[str, str] = field(default_factory=dict)
    hub_client_id: str | None = None


@dataclass(frozen=True, slots=True)
class RepositoryBroker:
    """A running broker: where it lives and the free port of each configured listener."""

    root: Path
    ports: Mapping[int, int]
    log_path: Path

    @property
    def device_port(self) -> int:
        """The device listener (client id = user name)."""
        return self.ports[DEVICE_LISTENER]

    @property
    def platform_port(self) -> int:
        """The platform listener (the hub's accounts)."""
        return self.ports[PLATFORM_LISTENER]


def compose_mosquitto() -> dict[str, object]:
    """The mosquitto service of docker-compose.yml."""
    services: dict[str, dict[str, object]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services["mosquitto"]


def compose_bind_mounts() -> list[tuple[Path, PurePosixPath]]:
    """The mosquitto service's files from the repository: (source, path in the container)."""
    volumes = compose_mosquitto()["volumes"]
    assert isinstance(volumes, list)
    mounts = []
    for volume in volumes:
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            mounts.append((ROOT / source, PurePosixPath(target)))
    return mounts


def _in_root(root: Path, container_path: PurePosixPath) -> Path:
    return root / container_path.relative_to("/")


def _copy_relocated(source: Path, target: Path, root: Path, ports: dict[int, int]) -> None:
    """Copy a mounted file or directory; container paths and listener ports rewritten."""
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for child in sorted(source.iterdir()):
            _copy_relocated(child, target / child.name, root, ports)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    text = _CONTAINER_PATH.sub(f"{root}/mosquitto/", source.read_text())

    def local_listener(match: re.Match[str]) -> str:
        port = ports.setdefault(int(match.group(1)), free_port())
        return f"listener {port} 127.0.0.1"

    target.write_text(_LISTENER_LINE.sub(local_listener, text))


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def repository_broker(
    root: Path,
    accounts: Accounts,
    extra_mounts: Mapping[str, Path] | None = None,
    timeout_s: float = 20.0,
) -> Iterator[RepositoryBroker]:
    """Run the repository's broker under `root` for a block; raise if it does not start.

    extra_mounts adds files as an operator would (container path -> source), e.g. a TLS
    listener in /mosquitto/config/conf.d/tls.conf and the certificates in /mosquitto/certs.
    """
    ports: dict[int, int] = {}
    mounts = [(source, target) for source, target in compose_bind_mounts()]
    mounts += [(source, PurePosixPath(target)) for target, source in (extra_mounts or {}).items()]
    for source, target in mounts:
        _copy_relocated(source, _in_root(root, target), root, ports)
    config = _in_root(root, PurePosixPath("/mosquitto/config/mosquitto.conf"))
    if os.geteuid() == 0:
        # The image drops to its mosquitto user; here the files are the test's own.
        config.write_text(config.read_text() + "user root\n")
    data = _in_root(root, PurePosixPath("/mosquitto/data"))
    data.mkdir(parents=True, exist_ok=True)
    passwd_tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    for user, password in accounts.devices.items():
        # What an operator does to add a device: the file persists in the data volume.
        devices_file = data / "devices.passwd"
        devices_file.touch()
        subprocess.run(
            [passwd_tool, "-b", str(devices_file), user, password],
            check=True,
            capture_output=True,
        )
    env = {
        "PATH": f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}",
        "HUB_MQTT_PASSWORD": accounts.hub_password,
        "SIMULATOR_MQTT_PASSWORD": accounts.simulator_password,
        "JT808_MQTT_PASSWORD": accounts.jt808_password,
    }
    if accounts.hub_client_id is not None:
        env["HUB_MQTT_CLIENT_ID"] = accounts.hub_client_id
    entrypoint = _in_root(root, PurePosixPath("/mosquitto/config/entrypoint.sh"))
    log_path = root / "mosquitto.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["/bin/sh", str(entrypoint)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not all(_accepts(port) for port in ports.values()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BrokerDidNotStartError(process.poll(), log_path.read_text())
            time.sleep(0.05)
        yield RepositoryBroker(root, ports, log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Session:
    """One MQTT connection on its own network thread, recording what happens to it.

    persistent=True connects like the hub's ingest: MQTT v5, clean start off and a session
    that outlives the connection; otherwise MQTT 3.1.1 with a clean session.
    """

    def __init__(
        self,
        port: int,
        user: str | None,
        password: str | None,
        client_id: str,
        *,
        persistent: bool = False,
        tls_ca: Path | None = None,
    ) -> None:
        self.port = port
        self.persistent = persistent
        protocol = paho.MQTTv5 if persistent else paho.MQTTv311
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if persistent else True,
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        # A refused or dropped client stays down: the tests look at what the broker did.
        self.client.reconnect_delay_set(60, 60)
        self.connack: threading.Event = threading.Event()
        self.reason: int | None = None
        self.session_present = False
        self.disconnects: list[str] = []
        self.messages: SimpleQueue[tuple[str, bytes]] = SimpleQueue()
        self._subacks: dict[int, threading.Event] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        del client, userdata, properties
        self.reason = reason_code.value
        self.session_present = flags.session_present
        self.connack.set()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        del client, userdata, flags, properties
        self.disconnects.append(str(reason_code))
        self.connack.set()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        del client, userdata
        self.messages.put((message.topic, bytes(message.payload)))

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: object,
    ) -> None:
        del client, userdata, reason_codes, properties
        self._subacks.setdefault(mid, threading.Event()).set()

    def open(self, timeout_s: float = 5.0) -> int:
        """Connect and wait for the CONNACK: its reason code value (0 = accepted, -1 = none)."""
        properties = None
        if self.persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 3600
        self.client.connect(
            "127.0.0.1",
            self.port,
            clean_start=False if self.persistent else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        # The CONNACK is awaited on this thread: a refused client never starts a network
        # thread (which would sit in paho's reconnect wait when stopped).
        deadline = time.monotonic() + timeout_s
        while not self.connack.is_set() and time.monotonic() < deadline:
            self.client.loop(timeout=0.05)
        if self.reason == 0:
            self.client.loop_start()
        return -1 if self.reason is None else self.reason

    def subscribe(self, topic: str, timeout_s: float = 5.0) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK (messages sent before it have arrived)."""
        result, mid = self.client.subscribe(topic, qos=1)
        if mid is None:
            raise ConnectionError(f"cannot subscribe to {topic}: {result}")
        if not self._subacks.setdefault(mid, threading.Event()).wait(timeout_s):
            raise TimeoutError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def received(self, count: int, timeout_s: float = 5.0) -> list[tuple[str, bytes]]:
        """The next `count` messages, or fewer if they do not come within the timeout."""
        deadline = time.monotonic() + timeout_s
        got: list[tuple[str, bytes]] = []
        while len(got) < count:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except Empty:
                break
        return got

    def pending(self) -> list[tuple[str, bytes]]:
        """Messages received and not yet taken."""
        got: list[tuple[str, bytes]] = []
        while not self.messages.empty():
            got.append(self.messages.get_nowait())
        return got

    def close(self) -> None:
        """Disconnect cleanly (a persistent session stays on the broker) and stop the thread."""
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def session(
    port: int,
    user: str | None,
    password: str | None,
    client_id: str,
    *,
    persistent: bool = False,
) -> Iterator[Session]:
    """An open, accepted session for a block."""
    opened = Session(port, user, password, client_id, persistent=persistent)
    code = opened.open()
    try:
        assert code == 0, f"{user} as {client_id} on {port} refused: {code}"
        yield opened
    finally:
        opened.close()
