"""A blocking JT/T 808 terminal over real TCP, and the gateway run on a thread of its own."""

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hub.ingest.jt808 import frame as fr
from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.gateway import Gateway


class TerminalClient:
    """Speaks JT/T 808 to a gateway the way a truck terminal does."""

    def __init__(self, port: int, phone: str, version: fr.Version = fr.Version.V2013) -> None:
        self.phone = phone
        self.version = version
        self.serial = 0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.splitter = fr.FrameSplitter()
        self.inbox: list[fr.Frame] = []

    def close(self) -> None:
        """Hang up."""
        self.sock.close()

    def send(self, msg_id: int, body: bytes = b"") -> int:
        """Send one message; return its serial."""
        self.serial += 1
        header = fr.Header(
            msg_id=msg_id,
            phone=self.phone,
            serial=self.serial,
            version=self.version,
            protocol_version=1 if self.version == fr.Version.V2019 else 0,
        )
        self.sock.sendall(fr.encode_frame(header, body))
        return self.serial

    def receive(self) -> fr.Frame:
        """The next message from the platform (waits up to the socket timeout)."""
        while not self.inbox:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("gateway closed the connection")
            for chunk in self.splitter.feed(data):
                if isinstance(chunk, bytes):
                    self.inbox.append(fr.decode_content(fr.unescape(chunk)))
        return self.inbox.pop(0)

    def answer(self, serial: int) -> m.GeneralResponse:
        """Wait for the 0x8001 answering our message `serial`."""
        while True:
            reply = self.receive()
            if reply.header.msg_id == m.MsgId.PLATFORM_RESPONSE:
                response = m.decode_general_response(reply.body)
                if response.reply_serial == serial:
                    return response

    def register(self, plate: str) -> m.RegisterResponse:
        """0x0100 → 0x8100."""
        reg = m.Registration(31, 115, "ACME", "MT-1", "T000001", 2, plate)
        edition = "2019" if self.version == fr.Version.V2019 else "2013"
        self.send(m.MsgId.REGISTER, m.encode_registration(reg, edition))
        reply = self.receive()
        assert reply.header.msg_id == m.MsgId.REGISTER_RESPONSE
        return m.decode_register_response(reply.body)

    def authenticate(self, code: str) -> m.GeneralResponse:
        """0x0102 → 0x8001."""
        auth = m.Authentication(code, "860000000000001", "1.0.0")
        return self.answer(
            self.send(m.MsgId.AUTHENTICATE, m.encode_authentication(auth, self.version))
        )


@dataclass(slots=True)
class RunningGateway:
    """A gateway serving on a background thread."""

    gateway: Gateway
    port: int


@contextmanager
def gateway_thread(gateway: Gateway) -> Iterator[RunningGateway]:
    """Serve on 127.0.0.1 and a free port until the block ends; wait for the broker first."""
    loop = asyncio.new_event_loop()
    bound: list[int] = []
    ready = threading.Event()
    task: list[asyncio.Task[None]] = []

    async def main() -> None:
        task.append(asyncio.current_task())  # type: ignore[arg-type]
        serving = asyncio.create_task(gateway.serve("127.0.0.1", 0, bound.append))
        await gateway.broker.connected.wait()
        ready.set()
        await serving

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except (asyncio.CancelledError, BaseExceptionGroup):
            pass
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="jt808-gateway", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise TimeoutError("gateway did not connect to the broker")
    try:
        yield RunningGateway(gateway, bound[0])
    finally:
        loop.call_soon_threadsafe(task[0].cancel)
        thread.join(30)
