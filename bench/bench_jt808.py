"""JT/T 808 gateway: terminal connections held, positions per second end to end, CPU and memory.

Starts its own PostgreSQL and Mosquitto, registers N trucks with terminal numbers, runs a
hub child (`python -m hub run`) and the gateway child (`python -m hub jt808 serve`), then
from this process (asyncio protocols, one loop):

1. connects N terminals, each registering (0x0100) and authenticating (0x0102), and holds
   them: the gateway's /metrics must show N open and online; the gateway's resident memory
   before and after gives the memory per connection;
2. sends M positions (0x0200) spread over the terminals, one in flight per terminal as a
   terminal does, each answered 0x8001 only after the broker's PUBACK: acknowledged
   positions per second; then waits until the hub has stored all M in telemetry_truck:
   positions per second gateway → broker → hub → PostgreSQL; the gateway's CPU per position
   is its CPU time over the phase divided by M.

The load generator runs on the same two cores as the gateway, the broker, the hub and
PostgreSQL, so the figures are a floor for the gateway. The process's RLIMIT_NOFILE is
raised to its hard limit (the children inherit it).

    python bench/bench_jt808.py [--terminals 10000] [--positions 100000] [--json PATH]
"""

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from figures import Figure, add_json_option, publish_figures
from stack import (
    copy_devices,
    cpu_seconds,
    hub_env,
    local_stack,
    memory_kib,
    query_int,
    running_hub,
)

from hub.cli.local_stack import free_port
from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.ingest.jt808 import frame as fr
from hub.ingest.jt808 import messages as m

ROOT = Path(__file__).resolve().parent.parent
BENCH = "jt808"
ROOT_TOPIC = "bench808"
AUTH_KEY = secrets.token_hex(8)
CONNECT_CONCURRENCY = 100


def raise_open_files() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def phone_of(index: int) -> str:
    """The terminal number of truck `index`."""
    return f"15{index:09d}"


def trucks(count: int) -> list[DeviceRecord]:
    """Registry rows of the bench's trucks, each with its terminal number."""
    return [
        DeviceRecord(
            device_id=f"T808-{i:05d}",
            kind=Kind.TRUCK,
            lat=31.3,
            lon=120.6,
            attributes={"jt808_phone": phone_of(i)},
        )
        for i in range(count)
    ]


class Terminal(asyncio.Protocol):
    """One terminal's connection: the handshake, then positions sent one at a time."""

    def __init__(self, bench: "Load", index: int) -> None:
        self.bench = bench
        self.phone = phone_of(index)
        self.serial = 0
        self.splitter = fr.FrameSplitter()
        self.transport: asyncio.Transport | None = None
        self.reply: asyncio.Future[fr.Frame] | None = None
        self.outbox: list[tuple[int, bytes]] = []
        self.in_flight: tuple[int, bytes] | None = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        if isinstance(transport, asyncio.Transport):
            self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Count it; fail a handshake waiting on it."""
        self.bench.lost += 1
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ConnectionError(str(exc)))

    def frame(self, msg_id: int, body: bytes) -> bytes:
        """An encoded message of this terminal with its next serial."""
        self.serial = (self.serial + 1) & 0xFFFF
        return fr.encode_frame(fr.Header(msg_id=msg_id, phone=self.phone, serial=self.serial), body)

    def resend_if_silent(self, now: float, after_s: float) -> bool:
        """Send the position in flight again when it had no answer for after_s (a terminal's
        retransmission: the gateway withholds 0x8001 while the broker does not acknowledge)."""
        if self.in_flight is None or now - self.sent_at < after_s or self.transport is None:
            return False
        self.transport.write(self.in_flight[1])
        self.sent_at = now
        return True

    async def ask(self, msg_id: int, body: bytes) -> fr.Frame:
        """Send one message and await the platform's next message."""
        if self.transport is None:
            raise ConnectionError("not connected")
        self.reply = asyncio.get_running_loop().create_future()
        self.transport.write(self.frame(msg_id, body))
        return await asyncio.wait_for(self.reply, 60)

    def data_received(self, data: bytes) -> None:
        """Frames from the gateway: a handshake answer, or a position's 0x8001."""
        for chunk in self.splitter.feed(data):
            if not isinstance(chunk, bytes):
                continue
            message = fr.decode_content(fr.unescape(chunk))
            if self.reply is not None and not self.reply.done():
                self.reply.set_result(message)
            elif message.header.msg_id == m.MsgId.PLATFORM_RESPONSE:
                answer = m.decode_general_response(message.body)
                if self.in_flight is not None and answer.reply_serial == self.in_flight[0]:
                    self.in_flight = None
                    self.bench.acked(self, answer.result)

    def send_next(self) -> None:
        """Send the next position, if any."""
        if self.outbox and self.transport is not None:
            self.in_flight = self.outbox.pop()
            self.sent_at = time.perf_counter()
            self.transport.write(self.in_flight[1])


@dataclass(slots=True)
class Load:
    """The terminals and the counts of the position phase."""

    terminals: list[Terminal] = field(default_factory=list)
    lost: int = 0
    resends: int = 0
    acks: int = 0
    refused: int = 0
    expected: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    last_ack_at: float = 0.0

    def acked(self, terminal: Terminal, result: int) -> None:
        """One position answered; the terminal sends its next."""
        self.acks += 1
        if result != m.Result.OK:
            self.refused += 1
        terminal.send_next()
        if self.acks >= self.expected:
            self.last_ack_at = time.perf_counter()
            self.done.set()


async def connect_all(load: Load, port: int, count: int) -> float:
    """Connect, register and authenticate `count` terminals; seconds it took."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    registration = m.Registration(32, 500, "BENCH", "B-808", "T000001", 0, "")

    async def one(index: int) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    _, terminal = await loop.create_connection(
                        lambda: Terminal(load, index), "127.0.0.1", port
                    )
                    break
                except OSError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5)
            reply = await terminal.ask(
                m.MsgId.REGISTER, m.encode_registration(registration, "2013")
            )
            code = m.decode_register_response(reply.body)
            if code.result != m.RegisterResult.OK:
                raise RuntimeError(f"terminal {terminal.phone} refused: {code.result}")
            auth = m.Authentication(code.auth_code)
            reply = await terminal.ask(
                m.MsgId.AUTHENTICATE, m.encode_authentication(auth, fr.Version.V2013)
            )
            if m.decode_general_response(reply.body).result != m.Result.OK:
                raise RuntimeError(f"terminal {terminal.phone} not authenticated")
            terminal.reply = None
            load.terminals.append(terminal)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


def prepare_positions(load: Load, total: int) -> None:
    """Each terminal's positions, encoded ahead (times a second apart, in the recent past)."""
    per_terminal = -(-total // len(load.terminals))
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=per_terminal + 120)
    made = 0
    for t_index, terminal in enumerate(load.terminals):
        lat_e6 = 31_200_000 + t_index
        for k in range(per_terminal):
            if made == total:
                break
            loc = m.Location(
                0,
                0b11 | 0b11 << 8,
                lat_e6,
                120_600_000,
                5,
                320,
                90,
                base + timedelta(seconds=k),
                {0xEB: b"\x02"},
            )
            encoded = terminal.frame(m.MsgId.LOCATION, m.encode_location(loc))
            terminal.outbox.append((terminal.serial, encoded))
            made += 1
        terminal.outbox.reverse()  # popped from the end: oldest first
    load.expected = made


def scrape(port: int) -> dict[str, float]:
    """The gateway's unlabelled metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            values[name] = float(value)
    return values


@contextmanager
def gateway_child(env: dict[str, str], port: int, log_path: Path) -> Iterator[int]:
    """`python -m hub jt808 serve` for a block; yields its pid once it listens."""
    import subprocess  # noqa: PLC0415

    args = [
        sys.executable,
        "-m",
        "hub",
        "jt808",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while "connected to the broker" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def run_load(
    port: int,
    metrics_port: int,
    gateway_pid: int,
    terminals: int,
    positions: int,
    database_url: str,
    others: dict[str, int],
) -> list[Figure]:
    """The two phases against a running gateway; the figures."""
    load = Load()
    rss_before_kib = memory_kib(gateway_pid)["VmRSS"]
    connect_s = await connect_all(load, port, terminals)
    await asyncio.sleep(1.0)
    held = scrape(metrics_port)
    rss_held_kib = memory_kib(gateway_pid)["VmRSS"]
    per_connection_kib = (rss_held_kib - rss_before_kib) / terminals

    prepare_positions(load, positions)
    cpu_before = cpu_seconds(gateway_pid)
    others_before = {name: cpu_seconds(pid) for name, pid in others.items()}
    load_cpu_before = time.process_time()
    started = time.perf_counter()
    for terminal in load.terminals:
        terminal.send_next()
    while not load.done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.done.wait(), 5.0)
        now = time.perf_counter()
        load.resends += sum(t.resend_if_silent(now, 30.0) for t in load.terminals)
        if now - started > 1800:
            raise TimeoutError(f"{load.expected - load.acks} positions never acknowledged")
    ack_s = load.last_ack_at - started
    cpu_s = cpu_seconds(gateway_pid) - cpu_before
    stored = 0
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        stored = await asyncio.to_thread(
            query_int, database_url, "SELECT count(*) FROM telemetry_truck"
        )
        if stored >= load.expected:
            break
        await asyncio.sleep(0.25)
    stored_s = time.perf_counter() - started
    # Everyone's CPU over the same span: on two shared cores the sum is what limits the rate.
    spent = {name: cpu_seconds(pid) - others_before[name] for name, pid in others.items()}
    spent["load generator"] = time.process_time() - load_cpu_before
    breakdown = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in spent.items())
    # What else the two cores were doing: other people's work shows here, not in the above.
    breakdown += f"; load average {os.getloadavg()[0]:.1f}"
    after = scrape(metrics_port)
    for terminal in load.terminals:
        if terminal.transport is not None:
            terminal.transport.close()

    note_held = (
        f"{held.get('jt808_connections_open', 0):.0f} open, "
        f"{held.get('jt808_terminals_online', 0):.0f} online in /metrics; "
        f"all {terminals} registered and authenticated in {connect_s:.1f} s"
    )
    return [
        Figure(
            BENCH,
            "terminal connections held",
            held.get("jt808_terminals_online", 0),
            "connections",
            ">= 10,000",
            note_held,
        ),
        Figure(
            BENCH,
            "gateway memory per connection",
            per_connection_kib,
            "KiB",
            None,
            f"gateway RSS {rss_before_kib / 1024:.0f} MiB idle, "
            f"{rss_held_kib / 1024:.0f} MiB holding {terminals}",
        ),
        Figure(
            BENCH,
            "positions acknowledged (after PUBACK)",
            load.expected / ack_s,
            "positions/s",
            ">= 5,000",
            f"{load.expected} positions, one in flight per terminal over "
            f"{terminals} terminals; {load.refused} refused, {load.resends} resent, "
            f"{after.get('jt808_acks_withheld_total', 0):.0f} withheld",
        ),
        Figure(
            BENCH,
            "positions stored (gateway → broker → hub → PostgreSQL)",
            stored / stored_s,
            "positions/s",
            ">= 5,000",
            f"{stored} of {load.expected} rows in telemetry_truck after {stored_s:.1f} s",
        ),
        Figure(
            BENCH,
            "gateway CPU per position",
            cpu_s / load.expected * 1e6,
            "µs",
            None,
            f"{cpu_s:.1f} s CPU of the gateway process over the position phase; "
            f"until all were stored: {breakdown}",
        ),
    ]


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--positions", type=int, default=100_000)
    add_json_option(parser)
    args = parser.parse_args()
    limit = raise_open_files()
    if limit < args.terminals + 200:
        print(
            f"RLIMIT_NOFILE hard limit {limit} is below {args.terminals} terminals", file=sys.stderr
        )
        return 1
    with local_stack("jt808") as stack:
        copy_devices(stack.database_url, trucks(args.terminals))
        env = hub_env(stack, ROOT_TOPIC)
        broker_process = stack.broker.process if stack.broker is not None else None
        broker_pid = broker_process.pid if broker_process is not None else 0
        port, metrics_port = free_port(), free_port()
        gateway_env = {
            **env,
            "HUB_JT808_CLIENT_ID": f"bench-{ROOT_TOPIC}-jt808",
            "HUB_JT808_AUTH_SECRET": AUTH_KEY,
            "HUB_JT808_METRICS_PORT": str(metrics_port),
        }
        with (
            running_hub(env, stack.work / "hub.log") as hub,
            gateway_child(gateway_env, port, stack.work / "gateway.log") as gateway_pid,
        ):
            figures = asyncio.run(
                run_load(
                    port,
                    metrics_port,
                    gateway_pid,
                    args.terminals,
                    args.positions,
                    stack.database_url,
                    {"hub": hub.pid, **({"broker": broker_pid} if broker_pid else {})},
                )
            )
    publish_figures(
        f"JT/T 808 gateway ({args.terminals} terminals, {args.positions} positions; "
        "2 shared cores, the load generator included)",
        figures,
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
