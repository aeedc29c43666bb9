"""The JT/T 808 gateway: an asyncio TCP server for truck terminals, MQTT 5 to the broker.

Each connection reads frames, answers as the standard says and publishes what terminals
send on the wire contract (`<root>/truck/<id>/telemetry|status|cmd/ack`). A position is
acknowledged to the terminal (0x8001) only after the broker's PUBACK; while the broker is
away nothing is acknowledged and the terminal keeps its data and sends it again. Hub
commands on `<root>/truck/+/cmd` go to the connected terminal as 0x8300/0x8606/0x8607.
"""

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from hub.devices.decode import device_topic
from hub.devices.kinds import Channel, Kind
from hub.ingest.jt808.broker import BrokerLink, BrokerUnavailableError, LinkConfig
from hub.ingest.jt808.frame import (
    Frame,
    FrameError,
    FrameSplitter,
    Header,
    Reassembler,
    decode_content,
    encode_platform_frame,
    header_middle,
    unescape,
)
from hub.ingest.jt808.mapping import (
    BodyMapping,
    BodyState,
    CommandError,
    command_ack,
    normalize_phone,
    parse_command,
    truck_reading,
)
from hub.ingest.jt808.messages import (
    MsgId,
    RegisterResponse,
    RegisterResult,
    ResendRequest,
    Result,
    decode_authentication,
    decode_general_response,
    decode_location,
    decode_location_batch,
    decode_registration,
    encode_register_response,
    encode_resend_request,
)
from hub.ingest.jt808.metrics import GatewayCounters, gateway_registry, start_metrics_server

log = logging.getLogger(__name__)


_PENDING_COMMANDS_PER_TERMINAL = 64
_IN_FLIGHT_PER_TERMINAL = 16
# The 0x8001 body: the terminal's serial, its message id, the result (encode_general_response).
_GENERAL_RESPONSE = struct.Struct(">HHB")
_AFTER_AUTHENTICATION = frozenset(
    {MsgId.LOCATION, MsgId.LOCATION_BATCH, MsgId.TERMINAL_RESPONSE, MsgId.DEREGISTER}
)


@dataclass(frozen=True, slots=True)
class Terminal:
    """A registered truck's terminal: the registry attributes `jt808_phone`, `plate`…"""

    device_id: str
    phone: str
    plate: str | None = None
    plate_colour: int | None = None


class TerminalDirectory(Protocol):
    """Finds the truck a terminal number belongs to (the registry, behind the edge)."""

    async def find(self, phone: str) -> Terminal | None:
        """The terminal with this number (digits without leading zeros), or None."""
        ...


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """What the gateway needs besides its directory: addresses, limits, mapping."""

    mqtt_url: str
    mqtt_root: str
    client_id: str
    auth_secret: bytes
    body_mapping: BodyMapping
    idle_timeout_s: float = 180.0
    max_frame_bytes: int = 4096
    publish_timeout_s: float = 10.0
    reconnect_max_s: float = 30.0
    # Missing packages of a subpackaged message are asked for again (0x8003) this long after
    # its first package, or at once when its last package came before them.
    resend_after_s: float = 10.0
    # HTTP port of /metrics on the gateway's address: None off, 0 any free port.
    metrics_port: int | None = None


def auth_code_for(secret: bytes, terminal: Terminal) -> str:
    """The auth code a terminal gets at registration: stateless, so restarts keep it valid."""
    mac = hmac.new(secret, f"{terminal.device_id}:{terminal.phone}".encode(), hashlib.sha256)
    return mac.hexdigest()[:16]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Session:
    """One terminal connection: its framing state, identity and commands awaiting answers."""

    def __init__(self, gateway: "Gateway", writer: asyncio.StreamWriter) -> None:
        self.gateway = gateway
        self.writer = writer
        self.splitter = FrameSplitter(max_frame_bytes=gateway.config.max_frame_bytes)
        self.reassembler = Reassembler()
        self.terminal: Terminal | None = None
        self.header: Header | None = None  # the terminal's last header: edition, phone
        self.serial = 0
        self.body_state = BodyState()
        self.pending: dict[int, str] = {}
        self.last_read_s = time.monotonic()
        self.in_flight = 0  # position messages published, their PUBACK not yet in
        self.online_at_ms: int | None = None  # ts of the `online` status, once published
        self.last_fix_ms: int | None = None  # the newest position's ts on this connection

    def next_serial(self) -> int:
        """The platform's next message serial on this connection."""
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial

    def send(self, msg_id: int, body: bytes) -> int:
        """Write one platform message in the terminal's own edition; return its serial."""
        header = self.header
        if header is None:
            raise RuntimeError("no frame received yet")
        serial = self.next_serial()
        middle = header_middle(header.phone, header.version, header.protocol_version)
        self.writer.write(encode_platform_frame(msg_id, middle, header.version, serial, body))
        return serial

    def reply(self, frame: Frame, result: int) -> None:
        """0x8001 to a terminal message."""
        h = frame.header
        self.send(MsgId.PLATFORM_RESPONSE, _GENERAL_RESPONSE.pack(h.serial, h.msg_id, result))


class Gateway:
    """The TCP server and the sessions it holds."""

    def __init__(
        self,
        config: GatewayConfig,
        directory: TerminalDirectory,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.config = config
        self.directory = directory
        self.clock = clock
        self.counters = GatewayCounters()
        self.sessions: dict[str, Session] = {}
        self.broker = BrokerLink(
            LinkConfig(
                url=config.mqtt_url,
                client_id=config.client_id,
                subscription=f"{config.mqtt_root}/truck/+/cmd",
                publish_timeout_s=config.publish_timeout_s,
                reconnect_max_s=config.reconnect_max_s,
            ),
            self._on_command,
        )
        self._server: asyncio.Server | None = None
        self.metrics_port: int | None = None  # bound, once serving
        self._handlers: set[asyncio.Task[None]] = set()
        self._open: set[Session] = set()

    def _topic(self, device_id: str, channel: Channel) -> str:
        return device_topic(self.config.mqtt_root, Kind.TRUCK, device_id, channel)

    async def serve(self, host: str, port: int, ready: Callable[[int], None] | None = None) -> None:
        """Serve until cancelled; `ready` gets the bound port (useful with port 0)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.broker.run(), name="jt808-broker")
            if self.config.metrics_port is not None:
                metrics = await start_metrics_server(
                    gateway_registry(self.counters), host, self.config.metrics_port
                )
                self.metrics_port = metrics.sockets[0].getsockname()[1]
                tasks.create_task(metrics.serve_forever(), name="jt808-metrics")
            self._server = await asyncio.start_server(self._handle, host, port, limit=65536)
            bound = self._server.sockets[0].getsockname()[1]
            log.info("jt808 gateway listening on %s:%d", host, bound)
            if ready is not None:
                ready(bound)
            tasks.create_task(self._report(), name="jt808-report")
            tasks.create_task(self._close_idle(), name="jt808-idle")
            try:
                async with self._server:
                    await self._server.serve_forever()
            finally:
                # Connection handlers are not the server's children before Python 3.12.
                # Hang up on the terminals first, so each handler ends as for a hang-up;
                # Python 3.11's stream callback logs a traceback for a cancelled handler.
                for session in list(self._open):
                    session.writer.close()
                if self._handlers:
                    _, stuck = await asyncio.wait(set(self._handlers), timeout=5.0)
                    for handler in stuck:
                        handler.cancel()
                    await asyncio.gather(*stuck, return_exceptions=True)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(60)
            log.info(
                "jt808: %d connections open, %d positions published, bad frames %s",
                self.counters.connections_open,
                self.counters.positions_published,
                dict(self.counters.bad_frames),
            )

    async def _close_idle(self) -> None:
        """Close connections silent for the idle timeout (half-open ones never read again).

        One sweep for all connections: a timeout around every read cost a task and a timer
        per frame.
        """
        timeout_s = self.config.idle_timeout_s
        while True:
            await asyncio.sleep(min(timeout_s / 4, 5.0))
            now = time.monotonic()
            for session in self._open:
                for header, missing in session.reassembler.overdue(now, self.config.resend_after_s):
                    self._request_resend(session, header.serial, missing)
            for session in [s for s in self._open if now - s.last_read_s > timeout_s]:
                self.counters.bad_frames["idle_timeout"] += 1
                self._open.discard(session)
                session.writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, writer)
        current = asyncio.current_task()
        if current is not None:
            self._handlers.add(current)
        self._open.add(session)
        self.counters.connections_open += 1
        self.counters.connections_total += 1
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                session.last_read_s = time.monotonic()
                for chunk in session.splitter.feed(data):
                    if isinstance(chunk, FrameError):
                        self.counters.bad_frames[chunk.reason] += 1
                        continue
                    await self._frame(session, chunk)
                await writer.drain()
        except (ConnectionError, OSError) as err:
            log.debug("terminal connection ended: %s", err)
        except Exception:
            # A bug of ours must not take the server down: log it and drop this connection.
            log.exception("jt808 connection handler failed")
        finally:
            self._open.discard(session)
            self.counters.connections_open -= 1
            try:
                await self._closed(session)
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()
            finally:
                # Only now: a server stopping meanwhile must still cancel and await this cleanup.
                if current is not None:
                    self._handlers.discard(current)

    async def _closed(self, session: Session) -> None:
        terminal = session.terminal
        if terminal is None or self.sessions.get(terminal.device_id) is not session:
            return
        del self.sessions[terminal.device_id]
        self.counters.terminals_online = len(self.sessions)
        if session.online_at_ms is None:
            return  # never announced online (no position on this connection)
        # Just after the terminal's last fix, in its own time: the hub judges a device's
        # status in the order of its readings, and a gateway clock ahead of a blind-area
        # batch or a replay would make every later reading of the truck look late.
        last_ms = session.last_fix_ms if session.last_fix_ms is not None else session.online_at_ms
        await self._publish_status(terminal.device_id, "offline", last_ms + 1)

    async def _publish_status(self, device_id: str, state: str, ts_ms: int) -> None:
        document = {"state": state, "ts": ts_ms}
        try:
            await self.broker.publish(
                self._topic(device_id, Channel.STATUS), orjson.dumps(document), retain=True
            )
        except BrokerUnavailableError:
            log.warning("status %s of %s not published: broker away", state, device_id)

    async def _frame(self, session: Session, escaped: bytes) -> None:
        try:
            frame = decode_content(unescape(escaped))
        except FrameError as err:
            # The standard has no answer to a frame whose check code fails: drop it.
            self.counters.bad_frames[err.reason] += 1
            return
        session.header = frame.header
        self.counters.frames[f"{frame.header.msg_id:#06x}"] += 1
        if frame.header.encryption:
            self.counters.bad_frames["encrypted"] += 1
            session.reply(frame, Result.UNSUPPORTED)
            return
        if frame.header.is_subpackage:
            try:
                whole = session.reassembler.add(frame, time.monotonic())
            except FrameError as err:
                self.counters.bad_frames[err.reason] += 1
                session.reply(frame, Result.BAD_MESSAGE)
                return
            if whole is None:
                session.reply(frame, Result.OK)
                if frame.header.package_index == frame.header.package_total:
                    # The last package came and some before it did not: ask for them (0x8003).
                    first, missing = session.reassembler.request_missing(frame)
                    if missing:
                        self._request_resend(session, first, missing)
                return
            frame = whole
        try:
            await self._message(session, frame)
        except FrameError as err:
            self.counters.bad_frames[err.reason] += 1
            session.reply(frame, Result.BAD_MESSAGE)

    def _request_resend(self, session: Session, first_serial: int, missing: list[int]) -> None:
        if session.header is None:
            return
        request = ResendRequest(first_serial, tuple(missing))
        session.send(MsgId.RESEND_REQUEST, encode_resend_request(request, session.header.version))
        self.counters.resend_requests += 1

    async def _message(self, session: Session, frame: Frame) -> None:
        msg_id = frame.header.msg_id
        if msg_id == MsgId.REGISTER:
            await self._register(session, frame)
        elif msg_id == MsgId.AUTHENTICATE:
            await self._authenticate(session, frame)
        elif msg_id == MsgId.HEARTBEAT:
            session.reply(frame, Result.OK)
        elif msg_id not in _AFTER_AUTHENTICATION:
            self.counters.bad_frames["unsupported"] += 1
            session.reply(frame, Result.UNSUPPORTED)
        elif session.terminal is None:
            # Nothing but registration, authentication and heartbeats before authentication.
            self.counters.bad_frames["unauthenticated"] += 1
            session.reply(frame, Result.FAILURE)
        elif msg_id == MsgId.LOCATION:
            loc = decode_location(frame.body)
            reading = truck_reading(loc, self.config.body_mapping, session.body_state)
            await self._publish_readings(session, frame, [reading])
        elif msg_id == MsgId.LOCATION_BATCH:
            batch = decode_location_batch(frame.body)
            readings = [
                truck_reading(
                    loc, self.config.body_mapping, session.body_state, blind_area=batch.blind_area
                )
                for loc in batch.locations
            ]
            await self._publish_readings(session, frame, readings)
        elif msg_id == MsgId.TERMINAL_RESPONSE:
            await self._command_answer(session, frame)
        else:  # deregistration
            session.reply(frame, Result.OK)
            await self._closed(session)
            session.terminal = None

    async def _register(self, session: Session, frame: Frame) -> None:
        registration = decode_registration(frame.body, frame.header.version)
        phone = normalize_phone(frame.header.phone) or ""
        terminal = await self.directory.find(phone)
        result = RegisterResult.OK
        code = ""
        if terminal is None:
            result = RegisterResult.NO_SUCH_TERMINAL
        elif terminal.plate and registration.plate and terminal.plate != registration.plate:
            result = RegisterResult.NO_SUCH_VEHICLE
        else:
            code = auth_code_for(self.config.auth_secret, terminal)
        if result != RegisterResult.OK:
            self.counters.bad_frames["register_refused"] += 1
            log.info(
                "registration of %s (plate %s) refused: %s", phone, registration.plate, result.name
            )
        body = encode_register_response(RegisterResponse(frame.header.serial, result, code))
        session.send(MsgId.REGISTER_RESPONSE, body)

    async def _authenticate(self, session: Session, frame: Frame) -> None:
        auth = decode_authentication(frame.body, frame.header.version)
        terminal = await self.directory.find(normalize_phone(frame.header.phone) or "")
        expected = auth_code_for(self.config.auth_secret, terminal) if terminal else None
        if (
            terminal is None
            or expected is None
            or not hmac.compare_digest(expected, auth.auth_code)
        ):
            self.counters.bad_frames["auth_refused"] += 1
            session.reply(frame, Result.FAILURE)
            return
        previous = self.sessions.get(terminal.device_id)
        if previous is not None and previous is not session:
            # The terminal reconnected; the old connection is half-open. Close it.
            previous.terminal = None
            previous.writer.close()
        session.terminal = terminal
        self.sessions[terminal.device_id] = session
        self.counters.terminals_online = len(self.sessions)
        session.reply(frame, Result.OK)

    async def _publish_readings(
        self, session: Session, frame: Frame, readings: list[dict[str, Any]]
    ) -> None:
        if session.terminal is None:
            return
        payload = orjson.dumps(readings[0] if len(readings) == 1 else readings)
        device_id = session.terminal.device_id
        if session.online_at_ms is None:
            # Online at the connection's first fix, in the terminal's time (see _closed),
            # published before it on the same connection, so it reaches the hub first.
            first_ms = min(int(r["ts"]) for r in readings)
            session.online_at_ms = first_ms
            status = orjson.dumps({"state": "online", "ts": first_ms})
            announced = self.broker.start_publish(
                self._topic(device_id, Channel.STATUS), status, retain=True
            )
            announced.add_done_callback(functools.partial(self._announced, session))
        last_ms = max(int(r["ts"]) for r in readings)
        if session.last_fix_ms is None or last_ms > session.last_fix_ms:
            session.last_fix_ms = last_ms
        published = self.broker.start_publish(self._topic(device_id, Channel.TELEMETRY), payload)
        session.in_flight += 1
        published.add_done_callback(
            functools.partial(self._published, session, frame, len(readings))
        )
        if session.in_flight >= _IN_FLIGHT_PER_TERMINAL:
            # A terminal that does not wait for its answers is not read until the broker
            # caught up with it: its publishes, and so the gateway's memory, stay bounded.
            await asyncio.wait((published,))

    @staticmethod
    def _announced(session: Session, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is not None:
            session.online_at_ms = None  # announce again with the next position

    def _published(
        self, session: Session, frame: Frame, count: int, done: asyncio.Future[None]
    ) -> None:
        """The broker's PUBACK (or its failure) for a position message: 0x8001 or nothing."""
        session.in_flight -= 1
        if done.cancelled() or done.exception() is not None:
            # No 0x8001: the terminal keeps the position and sends it again.
            self.counters.acks_withheld += 1
            return
        self.counters.positions_published += count
        if not session.writer.is_closing():
            session.reply(frame, Result.OK)

    async def _command_answer(self, session: Session, frame: Frame) -> None:
        answer = decode_general_response(frame.body)
        command_id = session.pending.pop(answer.reply_serial, None)
        if command_id is None or session.terminal is None:
            return
        ack = command_ack(command_id, answer.result, self.clock())
        try:
            await self.broker.publish(
                self._topic(session.terminal.device_id, Channel.CMD_ACK), orjson.dumps(ack)
            )
        except BrokerUnavailableError:
            log.warning("ack of command %s not published: broker away", command_id)

    async def _on_command(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 4:
            return
        device_id = parts[2]
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        command_id = document.get("command_id") if isinstance(document, dict) else None
        session = self.sessions.get(device_id)
        if session is None or session.header is None:
            if isinstance(command_id, str):
                await self._ack(
                    device_id, command_ack(command_id, 1, self.clock(), "terminal not connected")
                )
            return
        try:
            out = parse_command(document, session.header.version)
        except CommandError as err:
            if isinstance(command_id, str):
                await self._ack(device_id, command_ack(command_id, 2, self.clock(), str(err)))
            return
        serial = session.send(out.msg_id, out.body)
        if len(session.pending) >= _PENDING_COMMANDS_PER_TERMINAL:
            session.pending.pop(next(iter(session.pending)))
        session.pending[serial] = out.command_id
        self.counters.commands_sent += 1

    async def _ack(self, device_id: str, ack: dict[str, Any]) -> None:
        try:
            await self.broker.publish(self._topic(device_id, Channel.CMD_ACK), orjson.dumps(ack))
        except BrokerUnavailableError:
            log.warning("command ack for %s not published: broker away", device_id)
