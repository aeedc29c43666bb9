"""Simulated trucks as JT/T 808 terminals: their positions go over TCP to the gateway, not MQTT.

`python -m simulators run --trucks-via-jt808 HOST:PORT` wraps the MQTT publisher in a
Jt808Fleet: a truck's telemetry becomes 0x0200 (a buffered outage batch 0x0704 with the
blind-area flag) on that truck's own connection, after registration (0x0100) and
authentication (0x0102), and everything else still goes to MQTT. Like a real terminal it
keeps a position until the platform's 0x8001, sends it again after a silence or a new
connection, answers platform commands with 0x0001 and sends heartbeats when parked.

The gateway finds a terminal by the registry attribute `jt808_phone`: the city's
devices.csv plus that column (`write_terminal_devices`, or `python -m
simulators.jt808_terminal CITY_DIR`) is what `python -m hub devices import` needs first.

All I/O runs on the simulation's thread with non-blocking sockets and one selector, driven
by the publisher calls the simulation makes anyway (publish, wait, flush).
"""

import csv
import enum
import errno
import logging
import selectors
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from hub.ingest.jt808 import frame as fr
from hub.ingest.jt808 import messages as m
from simulators.publisher import Publisher

logger = logging.getLogger(__name__)

TERMINAL_DEVICES_FILE = "devices-jt808.csv"
# The gateway's default body mapping (HUB_JT808_LIFT_SOURCE / _COVER_SOURCE): item 0xEB,
# bit 0 body lifted, bit 1 cover closed.
BODY_ITEM = 0xEB
_LOAD_BITS = {"empty": 0b00, "half": 0b01, "full": 0b11}
# A 0x0704 body is at most 1,023 bytes: 3 + 25 × (2 + 31) fits.
_BATCH_MAX = 25
_READ_BYTES = 65536


def terminal_phones(truck_ids: Iterable[str]) -> dict[str, str]:
    """Each truck's terminal number (11 digits), by its place among the sorted truck ids."""
    return {device_id: f"14{n:09d}" for n, device_id in enumerate(sorted(truck_ids), start=1)}


def write_terminal_devices(city_dir: Path) -> Path:
    """The city's devices.csv with a `jt808_phone` column for the trucks; returns its path."""
    source = city_dir / "devices.csv"
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    phones = terminal_phones(r["device_id"] for r in rows if r.get("kind") == "truck")
    target = city_dir / TERMINAL_DEVICES_FILE
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, [*header, "jt808_phone"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "jt808_phone": phones.get(row["device_id"], "")})
    return target


def location_of(reading: Mapping[str, Any]) -> m.Location:
    """A wire-contract truck reading as the position report a terminal would send."""
    lat = float(reading["lat"])
    lon = float(reading["lon"])
    status = 1 << m.Status.FIXED
    status |= (1 << m.Status.ACC) if reading.get("acc_on") else 0
    status |= (1 << m.Status.SOUTH) if lat < 0 else 0
    status |= (1 << m.Status.WEST) if lon < 0 else 0
    status |= _LOAD_BITS.get(str(reading.get("load", "empty")), 0) << 8
    body = (1 if reading.get("body_lifted") else 0) | (
        2 if reading.get("cover_closed", True) else 0
    )
    ts = reading["ts"]
    observed_at = (
        datetime.fromtimestamp(ts / 1000, UTC)
        if isinstance(ts, int | float)
        else datetime.fromisoformat(str(ts)).astimezone(UTC)
    )
    return m.Location(
        alarm_flags=int(reading.get("alarm_flags", 0)),
        status=status,
        lat_e6=round(abs(lat) * 1e6),
        lon_e6=round(abs(lon) * 1e6),
        altitude_m=0,
        speed_dkmh=round(float(reading.get("speed_kmh", 0.0)) * 10),
        direction_deg=round(float(reading.get("heading_deg", 0.0))) % 360,
        observed_at=observed_at,
        items={BODY_ITEM: bytes((body,))},
    )


def position_messages(payload: bytes) -> list[tuple[int, bytes]]:
    """A telemetry payload as terminal messages: one 0x0200, or blind-area 0x0704 batches."""
    document = orjson.loads(payload)
    if isinstance(document, dict):
        return [(m.MsgId.LOCATION, m.encode_location(location_of(document)))]
    locations = [location_of(reading) for reading in document]
    return [
        (
            m.MsgId.LOCATION_BATCH,
            m.encode_location_batch(m.LocationBatch(True, tuple(locations[i : i + _BATCH_MAX]))),
        )
        for i in range(0, len(locations), _BATCH_MAX)
    ]


class LinkState(enum.Enum):
    """Where a terminal connection is in its life."""

    DOWN = "down"
    CONNECTING = "connecting"
    REGISTERING = "registering"
    AUTHENTICATING = "authenticating"
    READY = "ready"


@dataclass(slots=True)
class TerminalLink:
    """One truck's terminal: its connection, handshake state and positions not yet answered."""

    device_id: str
    phone: str
    plate: str
    state: LinkState = LinkState.DOWN
    sock: socket.socket | None = None
    out: bytearray = field(default_factory=bytearray)
    splitter: fr.FrameSplitter = field(default_factory=fr.FrameSplitter)
    serial: int = 0
    auth_code: str | None = None
    auth_serial: int = -1
    want_online: bool = False  # set by its status online or its first telemetry
    queue: deque[tuple[int, bytes]] = field(default_factory=deque)
    unacked: dict[int, tuple[int, bytes, float]] = field(default_factory=dict)
    retry_at: float = 0.0
    backoff_s: float = 1.0
    last_sent: float = 0.0
    texts: list[str] = field(default_factory=list)
    refused_logged: bool = False

    @property
    def backlog(self) -> int:
        """Positions queued or sent and not yet acknowledged."""
        return len(self.queue) + len(self.unacked)


@dataclass(slots=True)
class FleetStats:
    """What the fleet did, for the run's summary and tests."""

    connects: int = 0
    positions_sent: int = 0
    positions_acked: int = 0
    positions_refused: int = 0
    resends: int = 0
    commands_answered: int = 0


class Jt808Fleet:
    """A Publisher that sends the trucks' telemetry as JT/T 808 terminals, the rest to `inner`."""

    def __init__(
        self,
        inner: Publisher,
        address: tuple[str, int],
        root: str,
        trucks: Mapping[str, str],
        *,
        version: fr.Version = fr.Version.V2013,
        max_backlog: int = 20_000,
        window: int = 32,
        ack_timeout_s: float = 30.0,
        heartbeat_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`trucks` maps each truck's device id to its plate."""
        self.inner = inner
        self.address = address
        self.root = root
        self.version = version
        self.max_backlog = max_backlog
        self.window = window
        self.ack_timeout_s = ack_timeout_s
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.stats = FleetStats()
        phones = terminal_phones(trucks)
        self.links = {
            device_id: TerminalLink(device_id, phones[device_id], plate)
            for device_id, plate in trucks.items()
        }
        self._by_fd: dict[int, TerminalLink] = {}
        self._since_pump = 0
        self._selector = selectors.DefaultSelector()

    # -- the Publisher protocol --
    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Truck telemetry and status to the terminals; anything else to MQTT."""
        parts = topic.split("/")
        link = self.links.get(parts[2]) if len(parts) >= 4 and parts[1] == "truck" else None
        if link is None or parts[0] != self.root:
            self.inner.publish(topic, payload, retain=retain)
            return
        channel = "/".join(parts[3:])
        if channel == "telemetry":
            link.want_online = True
            link.queue.extend(position_messages(payload))
            # A replay publishes without waiting between readings: keep the terminals
            # sending as it goes (every so many positions, so the cost per one stays flat)
            # rather than only once the backlog is full, minutes behind the other kinds.
            self._since_pump += 1
            if self._since_pump >= max(self.window, len(self.links)):
                self._since_pump = 0
                self._pump(0)
            while self.backlog() > self.max_backlog:
                self._pump(0.05)
        elif channel == "status":
            # The gateway publishes online/offline itself; a terminal going offline hangs up.
            link.want_online = b"offline" not in payload  # bare or {"state": "offline"}
        # Truck events and command answers have no terminal message here: not sent.

    def wait(self, timeout_s: float) -> None:
        """Service the terminals and the MQTT connection for timeout_s."""
        deadline = self.clock() + timeout_s
        while (remaining := deadline - self.clock()) > 0:
            self._pump(min(remaining, 0.025))
            self.inner.wait(min(max(deadline - self.clock(), 0.0), 0.025))

    def flush(self, timeout_s: float) -> bool:
        """Wait until every position is acknowledged by the gateway and MQTT is flushed."""
        deadline = self.clock() + timeout_s
        while self.backlog() > 0 and self.clock() < deadline:
            self._pump(0.02)
        done = self.backlog() == 0
        return self.inner.flush(max(deadline - self.clock(), 0.0)) and done

    def close(self) -> None:
        """Hang up every terminal and close MQTT."""
        for link in self.links.values():
            self._drop(link, retry=False)
        self._selector.close()
        self.inner.close()

    def backlog(self) -> int:
        """Positions of all trucks not yet acknowledged."""
        return sum(link.backlog for link in self.links.values())

    # -- I/O --
    def _pump(self, timeout_s: float) -> None:
        now = self.clock()
        for link in self.links.values():
            self._tick(link, now)
        if not self._by_fd:
            time.sleep(timeout_s)
            return
        for key, events in self._selector.select(timeout_s):
            ready = self._by_fd.get(key.fd)
            if ready is None:
                continue
            if events & selectors.EVENT_WRITE:
                self._writable(ready)
            if events & selectors.EVENT_READ and ready.sock is not None:
                self._readable(ready)

    def _tick(self, link: TerminalLink, now: float) -> None:
        if link.state == LinkState.DOWN:
            if link.want_online and now >= link.retry_at:
                self._connect(link)
            return
        if not link.want_online and link.backlog == 0:
            self._drop(link, retry=False)
            return
        if link.state != LinkState.READY:
            return
        for serial, (msg_id, body, sent_at) in list(link.unacked.items()):
            if now - sent_at > self.ack_timeout_s:
                # No 0x8001 (the broker was away): send it again, as the standard says.
                del link.unacked[serial]
                link.queue.appendleft((msg_id, body))
                self.stats.resends += 1
        while link.queue and len(link.unacked) < self.window:
            msg_id, body = link.queue.popleft()
            serial = self._send(link, msg_id, body)
            link.unacked[serial] = (msg_id, body, now)
            self.stats.positions_sent += 1
        if now - link.last_sent > self.heartbeat_s:
            self._send(link, m.MsgId.HEARTBEAT, b"")

    def _connect(self, link: TerminalLink) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(self.address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self._retry_later(link)
            return
        link.sock = sock
        link.state = LinkState.CONNECTING
        link.splitter = fr.FrameSplitter()
        self._by_fd[sock.fileno()] = link
        self._selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        self.stats.connects += 1

    def _retry_later(self, link: TerminalLink) -> None:
        link.retry_at = self.clock() + link.backoff_s
        link.backoff_s = min(link.backoff_s * 2, 30.0)

    def _drop(self, link: TerminalLink, *, retry: bool) -> None:
        if link.sock is not None:
            self._by_fd.pop(link.sock.fileno(), None)
            self._selector.unregister(link.sock)
            link.sock.close()
            link.sock = None
        link.state = LinkState.DOWN
        link.out.clear()
        # Unanswered positions go first on the next connection.
        link.queue.extendleft(reversed([(i, b) for i, b, _ in link.unacked.values()]))
        link.unacked.clear()
        if retry:
            self._retry_later(link)

    def _send(self, link: TerminalLink, msg_id: int, body: bytes) -> int:
        link.serial = (link.serial + 1) & 0xFFFF
        header = fr.Header(
            msg_id=msg_id,
            phone=link.phone,
            serial=link.serial,
            version=self.version,
            protocol_version=1 if self.version == fr.Version.V2019 else 0,
        )
        link.out += fr.encode_frame(header, body)
        link.last_sent = self.clock()
        self._writable(link)
        return link.serial

    def _writable(self, link: TerminalLink) -> None:
        sock = link.sock
        if sock is None:
            return
        if link.state == LinkState.CONNECTING:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self._drop(link, retry=True)
                return
            self._handshake(link)
        try:
            while link.out:
                sent = sock.send(link.out)
                del link.out[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(link, retry=True)
            return
        if link.sock is not None:
            wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.out else 0)
            self._selector.modify(link.sock, wanted)

    def _handshake(self, link: TerminalLink) -> None:
        if link.auth_code is None:
            link.state = LinkState.REGISTERING
            edition = "2019" if self.version == fr.Version.V2019 else "2013"
            registration = m.Registration(
                32, 500, "SIMUL", "SIM-808", link.device_id[-7:], 2, link.plate
            )
            self._send(link, m.MsgId.REGISTER, m.encode_registration(registration, edition))
        else:
            self._authenticate(link)

    def _authenticate(self, link: TerminalLink) -> None:
        link.state = LinkState.AUTHENTICATING
        auth = m.Authentication(link.auth_code or "", "860000000000000", "sim-1.0")
        link.auth_serial = self._send(
            link, m.MsgId.AUTHENTICATE, m.encode_authentication(auth, self.version)
        )

    def _readable(self, link: TerminalLink) -> None:
        sock = link.sock
        if sock is None:
            return
        try:
            data = sock.recv(_READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(link, retry=True)
            return
        for chunk in link.splitter.feed(data):
            if isinstance(chunk, fr.FrameError):
                continue
            try:
                message = fr.decode_content(fr.unescape(chunk))
            except fr.FrameError:
                continue
            self._message(link, message)
            if link.sock is None:
                return

    def _message(self, link: TerminalLink, message: fr.Frame) -> None:
        msg_id = message.header.msg_id
        if msg_id == m.MsgId.REGISTER_RESPONSE:
            response = m.decode_register_response(message.body)
            if response.result == m.RegisterResult.OK:
                link.auth_code = response.auth_code
                self._authenticate(link)
                return
            if not link.refused_logged:
                logger.warning(
                    "terminal %s of %s refused (%s): import %s so the gateway knows it",
                    link.phone,
                    link.device_id,
                    m.RegisterResult(response.result).name,
                    TERMINAL_DEVICES_FILE,
                )
                link.refused_logged = True
            link.backoff_s = max(link.backoff_s, 5.0)
            self._drop(link, retry=True)
        elif msg_id == m.MsgId.PLATFORM_RESPONSE:
            self._answered(link, m.decode_general_response(message.body))
        elif msg_id in (m.MsgId.TEXT, m.MsgId.SET_ROUTE, m.MsgId.DELETE_ROUTE):
            if msg_id == m.MsgId.TEXT:
                link.texts.append(m.decode_text(message.body, message.header.version).text)
            answer = m.GeneralResponse(message.header.serial, msg_id, m.Result.OK)
            self._send(link, m.MsgId.TERMINAL_RESPONSE, m.encode_general_response(answer))
            self.stats.commands_answered += 1
        else:
            answer = m.GeneralResponse(message.header.serial, msg_id, m.Result.UNSUPPORTED)
            self._send(link, m.MsgId.TERMINAL_RESPONSE, m.encode_general_response(answer))

    def _answered(self, link: TerminalLink, response: m.GeneralResponse) -> None:
        if response.reply_id == m.MsgId.AUTHENTICATE and response.reply_serial == link.auth_serial:
            if response.result == m.Result.OK:
                link.state = LinkState.READY
                link.backoff_s = 1.0
            else:
                link.auth_code = None  # register again on the next connection
                self._drop(link, retry=True)
            return
        if link.unacked.pop(response.reply_serial, None) is None:
            return
        if response.result == m.Result.OK:
            self.stats.positions_acked += 1
        else:
            self.stats.positions_refused += 1


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (the gateway's address) as a tuple; raise ValueError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: Sequence[str] | None = None) -> int:
    """Write CITY_DIR/devices-jt808.csv (the registry import with terminal numbers)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m simulators.jt808_terminal CITY_DIR", file=sys.stderr)
        return 2
    print(write_terminal_devices(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
