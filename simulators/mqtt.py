"""The real Publisher: paho-mqtt driven from the caller's thread, QoS 1, with bounded backlog.

Measured on a 2-core machine: paho without a network thread (publish writes straight to
the socket, acknowledgements are read every few hundred messages) publishes about four
times faster than with `loop_start()`, whose wake-up socket costs a syscall per message.
"""

import logging
import select
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

logger = logging.getLogger(__name__)

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Host, port and optional credentials parsed from an mqtt:// URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Parse `mqtt://[user:pass@]host[:port]`; raise ValueError on anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"expected mqtt://host[:port], got {url!r}")
    return BrokerAddress(parts.hostname, parts.port or 1883, parts.username, parts.password)


class PahoPublisher:
    """Publishes at QoS 1 through one paho connection; blocks when too many messages are unacked."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        will: tuple[str, bytes] | None = None,
        max_inflight: int = 0,
        max_backlog: int = 10_000,
        pump_every: int = 100,
        keepalive_s: int = 30,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._address = parse_mqtt_url(url)
        self._url = url
        self._max_backlog = max_backlog
        self._pump_every = pump_every
        self._since_pump = 0
        self.published = 0
        self.acknowledged = 0
        self._connected = False
        self._connect_rc: ReasonCode | None = None
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        # 0 lifts paho's inflight window entirely (its bookkeeping scans the window on every
        # ack); the overflow policy is ours instead: publish() blocks while more than
        # max_backlog messages are unacknowledged.
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(0)
        if self._address.username is not None:
            client.username_pw_set(self._address.username, self._address.password)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_publish = self._on_publish
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client
        try:
            client.connect(self._address.host, self._address.port, keepalive=keepalive_s)
        except OSError as err:
            raise ConnectionError(f"cannot reach MQTT broker at {url}: {err}") from err
        deadline = time.monotonic() + connect_timeout_s
        while not self._connected:
            if self._connect_rc is not None and self._connect_rc.is_failure:
                raise ConnectionError(f"MQTT broker at {url} refused: {self._connect_rc}")
            if time.monotonic() > deadline:
                raise ConnectionError(f"no CONNACK from MQTT broker at {url}")
            self._pump(0.05)

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        del client, userdata, flags, properties
        self._connect_rc = reason_code
        self._connected = not reason_code.is_failure
        if self._connected:
            logger.info("connected to MQTT broker at %s", self._url)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        del client, userdata, flags, properties
        self._connected = False
        level = logging.WARNING if reason_code.is_failure else logging.INFO
        logger.log(level, "disconnected from MQTT broker at %s: %s", self._url, reason_code)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        del client, userdata, mid, reason_code, properties
        self.acknowledged += 1

    def _pump(self, timeout_s: float) -> None:
        # Not client.loop(): it creates a wake-up socket pair, after which every publish
        # costs an extra send() syscall. We wait on the socket ourselves instead.
        client = self._client
        sock = client.socket()
        if sock is None:
            self._reconnect()
            return
        want_write = client.want_write()
        if timeout_s > 0:
            readable, writable, _ = select.select(
                [sock], [sock] if want_write else [], [], timeout_s
            )
        else:
            readable, writable = [sock], [sock] if want_write else []
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if readable:
            rc = client.loop_read()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and writable:
            rc = client.loop_write()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
            self._reconnect()

    def _reconnect(self) -> None:
        delay_s = 0.5
        while True:
            try:
                self._client.reconnect()
            except OSError as err:
                logger.warning(
                    "reconnect to %s failed (%s); retrying in %.1f s", self._url, err, delay_s
                )
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 10.0)
                continue
            return

    @property
    def backlog(self) -> int:
        """Messages published but not yet acknowledged."""
        return self.published - self.acknowledged

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1; read acknowledgements regularly and block while the backlog is full."""
        self._client.publish(topic, payload, qos=1, retain=retain)
        self.published += 1
        self._since_pump += 1
        if self._since_pump >= self._pump_every:
            self._since_pump = 0
            self._pump(0.0)
            while self.published - self.acknowledged > self._max_backlog:
                self._pump(0.01)

    def wait(self, timeout_s: float) -> None:
        """Service the connection (acks, keepalive) for timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._pump(min(remaining, 0.05))

    def flush(self, timeout_s: float) -> bool:
        """Wait until every message is acknowledged, or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        while self.acknowledged < self.published:
            if time.monotonic() > deadline:
                return False
            self._pump(0.01)
        return True

    def close(self) -> None:
        """Disconnect cleanly (the broker then does not send the will)."""
        self._client.disconnect()
        self._pump(0.1)
