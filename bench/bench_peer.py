"""The hub against a peer, side by side: Node-RED 4 batching MQTT readings into PostgreSQL.

One PostgreSQL and one Mosquitto (bench/stack.py), the hub's pre-encoded publisher and
bench_ingest's message set. Every side runs for the whole session on its own topic root:
the hub as one process, the hub as a cluster of members on this machine, and the Node-RED
flow of bench/node_red_peer.py (installed with npm into --node-red-dir; the benchmark is
skipped with a message when that cannot be done). Runs are interleaved, one side after
the other, first at full speed, then paced for --paced-seconds at rates found by bisection
between --low-fraction and --high-fraction of the side's full-speed rate.

A paced rate is kept up when every message is stored and the last row is stored at most
1 s after the schedule's last publish: a publisher held back (its own CPU, or the broker's
acknowledgements, taken by a saturated machine) did not send at that rate, and its lateness
counts against the side. publish→stored is read from the row count, polled every
--poll-ms: message i was published at i / rate after the first, and is counted stored at
the first poll that sees i + 1 rows. CPU is user + system time from /proc/<pid>/stat of
each side's processes, from the first publish until the side is quiet again after the last
row (a hub's rules trail its writer), divided by the messages.

After the search each side runs --steady-repeats times (interleaved) at --steady-fraction
(80 %) of the highest rate it kept up: issue 23's latency target (p99 publish→stored < 500
ms there, the highest p99 of those runs) and its CPU per message under a steady load against
full speed (the run of median CPU of each, so that one noisy run does not decide). Issue 23's
targets close the report, each with its verdict: each hub side's highest rate kept up as a
multiple of Node-RED's (2 members ≥ 1.25×, 1 process ≥ 1.0×) and its CPU per message at
the steady rate as a multiple of full speed's (≤ 1.0×).
"""

import argparse
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import numpy as np
import psycopg
from bench_ingest import (
    KEPT_UP_S,
    KINDS,
    RateSearch,
    behind_schedule_s,
    build_messages,
    hub_member_envs,
    payload,
    register_devices,
    wait_rows,
)
from figures import Figure, add_json_option, encode_figures, target_met
from node_red_peer import PEER_TABLE, PEER_TABLE_DDL, NodeRedProcess, install_node_red
from stack import (
    HubChild,
    Stack,
    api_headers,
    cpu_seconds,
    hub_env,
    local_stack,
    metric_by_label,
    thread_cpu_seconds,
)

from hub.cli.local_stack import free_port
from hub.ingest.metrics import STAGES

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NODE_RED_DIR = ROOT / "var" / "peer-node-red"
HUB_TABLES = tuple(f"telemetry_{kind}" for kind in KINDS)
# bench/publisher.py's publish_file, then when it returned on this machine's monotonic clock:
# with its elapsed time that dates the first publish without the process's start and exit.
_PUBLISH_AND_DATE = (
    "import sys, time; from pathlib import Path; from publisher import publish_file; "
    "e = publish_file(sys.argv[1], Path(sys.argv[2]), sys.argv[3], "
    "rate_per_s=float(sys.argv[4]) or None); print(f'{time.monotonic():.6f} {e:.6f}')"
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; short defaults (a few minutes), larger sizes for a report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000, help="per full-speed run")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="full-speed runs per side, interleaved (the median rate and the run of median CPU"
        " are shown)",
    )
    parser.add_argument(
        "--members",
        type=int,
        nargs="*",
        default=[1, 2],
        help="hub sides: processes of each (default: 1 2; 2 = a cluster on this machine)",
    )
    parser.add_argument("--no-peer", action="store_true", help="run the hub sides only")
    parser.add_argument(
        "--compare-root",
        type=Path,
        default=None,
        help="also run each hub side on the code of this checkout (e.g. an earlier commit),"
        " interleaved with the others: a before/after in one session",
    )
    parser.add_argument(
        "--compare-label", default="before", help="how the table names the --compare-root sides"
    )
    parser.add_argument(
        "--hub-setting",
        action="append",
        default=[],
        metavar="HUB_NAME=VALUE",
        help="a setting of the hub sides of this checkout, not of the --compare-root ones"
        " (e.g. HUB_BATCH_MAX_WAIT_MS=200): with --compare-root on the same commit, an A/B"
        " of a setting in one session; the table names it",
    )
    parser.add_argument(
        "--by-stage",
        action="store_true",
        help="hub sides serve their API (a read-only token) and each run reads their"
        " hub_stage_cpu_seconds_total from /metrics: CPU per message by stage, full speed"
        " against the steady rate",
    )
    parser.add_argument("--steps", type=int, default=5, help="paced runs per side (bisection)")
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="length of a paced run")
    parser.add_argument("--low-fraction", type=float, default=0.4)
    # Up to 1.5x: a hub's paced rate kept up is often above its one full-speed run (a flood
    # fills every queue), and a search that stops at 1.1x reports its own cap.
    parser.add_argument("--high-fraction", type=float, default=1.5)
    parser.add_argument(
        "--steady-fraction",
        type=float,
        default=0.8,
        help="then runs per side at this share of its highest rate kept up (0: none)",
    )
    parser.add_argument(
        "--steady-repeats",
        type=int,
        default=3,
        help="runs per side at the steady rate, interleaved: the run of median CPU is compared"
        " with full speed's, the highest p99 is the latency shown",
    )
    parser.add_argument("--poll-ms", type=float, default=50.0, help="row count polling interval")
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    parser.add_argument("--node-red-dir", type=Path, default=DEFAULT_NODE_RED_DIR)
    add_json_option(parser)
    args = parser.parse_args(argv)
    if min(args.messages, args.devices, args.repeats, args.steady_repeats) <= 0 or args.steps < 0:
        parser.error(
            "--messages, --devices, --repeats and --steady-repeats must be positive,"
            " --steps not negative"
        )
    if not 0 < args.low_fraction < args.high_fraction:
        parser.error("need 0 < --low-fraction < --high-fraction")
    if not 0 <= args.steady_fraction <= 1:
        parser.error("--steady-fraction is a share of the rate kept up, between 0 and 1")
    if args.no_peer and not args.members:
        parser.error("nothing to run")
    for item in args.hub_setting:
        name, sep, _ = item.partition("=")
        if not sep or not name.startswith("HUB_"):
            parser.error(f"--hub-setting {item!r}: give HUB_NAME=VALUE")
    return args


# --- pure -------------------------------------------------------------------------------------


def latency_percentiles_ms(
    progress: Sequence[tuple[float, int]], first_publish: float, rate: float, count: int
) -> tuple[float, float]:
    """p50 and p99 publish→stored in ms from a row count series (time, rows) of a paced run.

    Message i went out at first_publish + i / rate and counts as stored at the first
    sample with more than i rows; a message never seen stored counts at the last sample.
    """
    times = np.array([t for t, _ in progress], dtype=np.float64)
    rows = np.maximum.accumulate(np.array([n for _, n in progress], dtype=np.int64))
    index = np.arange(count, dtype=np.int64)
    seen = np.minimum(np.searchsorted(rows, index + 1, side="left"), len(times) - 1)
    latency_s = times[seen] - (first_publish + index / rate)
    p50, p99 = np.percentile(latency_s, [50, 99])
    return float(p50) * 1000, float(p99) * 1000


@dataclass(frozen=True, slots=True)
class Run:
    """One measured run of one side."""

    side: str
    paced: float | None  # the publisher's schedule in msg/s; None: full speed
    published: int
    stored: int
    rate: float  # messages / (last row stored - first publish)
    drain_s: float  # last row stored after the publisher finished
    cpu_s: tuple[float, ...]  # per process of the side, until it was quiet again
    p50_ms: float | None = None
    p99_ms: float | None = None
    quiet_s: float = 0.0  # after the last row, until the side's CPU use was back to idle
    late_s: float = 0.0  # a paced publisher's last acknowledgement after its schedule's end
    behind_s: float = 0.0  # the last row after the schedule's last publish (full speed: the last)
    # CPU seconds per thread name, the side's processes together (same span as cpu_s)
    threads: dict[str, float] = field(default_factory=dict)
    # CPU seconds per stage of the hot path from the hubs' /metrics (--by-stage; else empty)
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def kept_up(self) -> bool:
        """Every message stored, the last within KEPT_UP_S of the schedule's last publish.

        On a saturated machine the publisher falls behind its schedule (one run "kept up"
        31,800 msg/s by the last publish while sending 23,200): that rate was not sustained.
        """
        return self.stored >= self.published and self.behind_s <= KEPT_UP_S

    def cpu_us_per_message(self) -> tuple[float, ...]:
        """CPU per message of each process of the side."""
        return tuple(s / self.published * 1e6 for s in self.cpu_s)

    def thread_us_per_message(self) -> dict[str, float]:
        """CPU per message of each thread name, the side's processes together, most first."""
        return _per_message(self.threads, self.published)

    def stage_us_per_message(self) -> dict[str, float]:
        """CPU per message of each stage, the side's processes together, most first."""
        return _per_message(self.stages, self.published)


def _per_message(seconds: dict[str, float], published: int) -> dict[str, float]:
    ordered = sorted(seconds.items(), key=lambda item: -item[1])
    return {name: s / published * 1e6 for name, s in ordered}


def cpu_text(run: Run | None) -> str:
    """CPU µs per message, per process ("41 + 44 µs" for two)."""
    if run is None:
        return "—"
    return " + ".join(f"{us:.0f}" for us in run.cpu_us_per_message()) + " µs"


def latency_text(run: Run | None) -> str:
    """p50 / p99 of a paced run."""
    if run is None or run.p50_ms is None or run.p99_ms is None:
        return "—"
    return f"{run.p50_ms:,.0f} / {run.p99_ms:,.0f} ms at {run.paced:,.0f}"


# --- the sides --------------------------------------------------------------------------------


class Side(Protocol):
    """Something that stores the readings published under its root, running all session."""

    @property
    def name(self) -> str:
        """How the table names it."""
        ...

    @property
    def root(self) -> str:
        """Its topic root."""
        ...

    @property
    def tables(self) -> tuple[str, ...]:
        """Where its readings are stored."""
        ...

    def pids(self) -> list[int]:
        """Its processes, for CPU time."""
        ...

    def stage_seconds(self) -> dict[str, float]:
        """CPU seconds so far per stage of the hot path, its processes together (or none)."""
        ...

    def stop(self) -> None:
        """Stop its processes."""
        ...


@dataclass
class HubSide:
    """The hub as `members` processes (a cluster on this machine when more than one).

    With `code_root` the processes run the hub of that checkout instead of this one.
    """

    members: int
    children: list[HubChild] = field(default_factory=list)
    code_root: Path | None = None
    label: str = ""
    settings: dict[str, str] = field(default_factory=dict)  # extra HUB_* of its processes
    # With an API token: each member serves its API on a port of its own (--by-stage).
    api_headers: dict[str, str] | None = None
    api_ports: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        """How the table names it."""
        name = "hub, 1 process" if self.members == 1 else f"hub, {self.members} members"
        return f"{name} ({self.label})" if self.label else name

    @property
    def root(self) -> str:
        """Its topic root."""
        return f"peerhub{self.members}" + ("c" if self.code_root is not None else "")

    tables = HUB_TABLES

    def start(self, stack: Stack, work: Path) -> None:
        """Start every member and wait until each has subscribed."""
        base = hub_env(
            stack,
            self.root,
            HUB_LOG_LEVEL="INFO",  # "subscribing to" is how HubChild sees it ready
            HUB_MAX_AGE_S=str(30 * 86400),
            **self.settings,
        )
        if self.code_root is not None:
            # That checkout first; PYTHONSAFEPATH keeps `-m` from putting the working
            # directory (this checkout) before it.
            base.update(PYTHONPATH=str(self.code_root), PYTHONSAFEPATH="1")
        api = self.api_headers is not None
        for i, env in enumerate(hub_member_envs(base, self.members)):
            if api:
                self.api_ports.append(free_port())
            port = {"HUB_API_PORT": str(self.api_ports[-1])} if api else {}
            child = HubChild({**env, **port}, work / f"{self.root}-{i}.log", api=api)
            child.start(timeout_s=120)
            self.children.append(child)

    def pids(self) -> list[int]:
        """The members' processes."""
        return [child.pid for child in self.children]

    def stage_seconds(self) -> dict[str, float]:
        """The members' hub_stage_cpu_seconds_total, summed by stage (none without --by-stage,
        and none from a --compare-root checkout that does not count them)."""
        total: dict[str, float] = {}
        for port in self.api_ports:
            response = httpx.get(
                f"http://127.0.0.1:{port}/metrics", headers=self.api_headers, timeout=10
            )
            response.raise_for_status()
            for stage, seconds in stage_seconds_of(response.text).items():
                total[stage] = total.get(stage, 0.0) + seconds
        return total

    def stop(self) -> None:
        """SIGTERM each member."""
        for child in self.children:
            child.stop()


@dataclass
class PeerSide:
    """The Node-RED flow."""

    node_red: NodeRedProcess
    name: str = "Node-RED 4 batch flow"
    tables: tuple[str, ...] = (PEER_TABLE,)

    @property
    def root(self) -> str:
        """Its topic root."""
        return self.node_red.root

    def pids(self) -> list[int]:
        """The node process."""
        return [self.node_red.pid]

    def stage_seconds(self) -> dict[str, float]:
        """None: the flow has no stages of the hub's."""
        return {}

    def stop(self) -> None:
        """SIGTERM Node-RED."""
        self.node_red.stop()


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Windows:
    """Reading timestamps: each run's after the previous run's, never overlapping (the
    hub's rules would drop a reading older than its device's last).

    Each side has its own: with one clock for all, a side's devices jumped two minutes of
    event time between two of its runs (the other sides' runs), and every truck of the
    hub raised a track gap at the start of each run, an alarm storm a steady load does not
    have (issue 23)."""

    devices: int
    next_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 6 * 3600 * 1000)

    def take(self, count: int) -> int:
        """The first timestamp of a run of `count` messages."""
        return self.take_span(count // self.devices)

    def take_span(self, seconds: int) -> int:
        """The first timestamp of readings spanning `seconds` of event time."""
        start = self.next_ms
        self.next_ms += (seconds + 10) * 1000
        return start


# The warm-up, before any run is measured: every device reports every WARM_UP_STEP_S,
# starting at an offset of its own within WARM_UP_STAGGER_S, until WARM_UP_S of event time.
# The bench registers no truck permits, so every truck raises `no_permit` 2 min after its
# first reading (the permit rule's raise_after_s) and repeats it every 5 min (the default
# update_interval_s). Without a warm-up the 3,333 raises came together in whichever run
# crossed two minutes of event time (a paced run failed there and the search settled
# lower, or the steady run's p99 was the storm's: 1,538 ms); with every truck starting at
# once, their repeats came together 5 min later, in the steady run (p99 1,208-1,398 ms).
# Staggered over the repeat interval, raises and repeats are a steady trickle, as in a
# city. The steps stay under the track rule's min_gap_s (no track gap).
WARM_UP_STAGGER_S = 300
WARM_UP_S = WARM_UP_STAGGER_S + 130
WARM_UP_STEP_S = 30


def warm_up_messages(root: str, devices: int, start_ms: int) -> list[tuple[str, bytes]]:
    """Every device's readings every WARM_UP_STEP_S from its own offset to WARM_UP_S."""
    timed: list[tuple[int, int, str, bytes]] = []
    for d in range(devices):
        kind = KINDS[d % len(KINDS)]
        topic = f"{root}/{kind}/{kind}-{d}/telemetry"
        offset_s = d * 7919 % WARM_UP_STAGGER_S  # spread evenly, neighbours apart
        for at_s in sorted({*range(offset_s, WARM_UP_S, WARM_UP_STEP_S), WARM_UP_S}):
            ts_ms = start_ms + at_s * 1000
            timed.append((ts_ms, d, topic, payload(kind, ts_ms, d)))
    timed.sort()
    return [(topic, body) for _, _, topic, body in timed]


def warm_up(stack: Stack, side: Side, windows: Windows, work: Path) -> int:
    """Take a side through its start-up alarms; return the messages sent (rows stored)."""
    start_ms = windows.take_span(WARM_UP_S)
    messages = warm_up_messages(side.root, windows.devices, start_ms)
    publisher = start_publisher(stack.mqtt_url, messages, work, f"warm-{side.root}", None)
    publisher.communicate(timeout=600)
    wait_rows(stack.database_url, side.tables, len(messages), 300)
    cpu_when_quiet(side.pids())
    truncate(stack.database_url, side.tables)
    return len(messages)


def count_query(tables: Sequence[str]) -> bytes:
    """One statement counting the rows of all the tables."""
    return ("SELECT " + " + ".join(f"(SELECT count(*) FROM {t})" for t in tables)).encode()


def start_publisher(
    mqtt_url: str, messages: list[tuple[str, bytes]], work: Path, name: str, rate: float | None
) -> "subprocess.Popen[str]":
    """bench/publisher.py on a pickled message file; prints when it finished and its seconds."""
    path = work / f"{name}.pkl"
    path.write_bytes(pickle.dumps(messages))
    return subprocess.Popen(
        [sys.executable, "-c", _PUBLISH_AND_DATE, mqtt_url, str(path), name, str(rate or 0)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT / "bench",
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"},
    )


def truncate(database_url: str, tables: Sequence[str]) -> None:
    """Empty a side's tables so counting its next run stays cheap."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(tables)}".encode())


def wait_for_probe(stack: Stack, side: Side, windows: Windows, work: Path) -> None:
    """Publish one reading until the side stores it: subscribed and writing."""
    query = count_query(side.tables)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for attempt in range(30):
            topic = f"{side.root}/lighting/lighting-0/telemetry"
            publisher = start_publisher(
                stack.mqtt_url,
                [(topic, payload("lighting", windows.take(1), 0))],
                work,
                f"probe-{side.root}-{attempt}",
                None,
            )
            publisher.wait(60)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                row = conn.execute(query).fetchone()
                if row is not None and int(row[0]) > 0:
                    truncate(stack.database_url, side.tables)
                    return
                time.sleep(0.1)
    raise TimeoutError(f"{side.name} stored no probe reading in 60 s")


QUIET_WINDOW_S = 0.2
QUIET_CPU_S = 0.02  # per process in a window: 10 % of a core (an idle hub: ~2 %)


def side_threads(pids: Sequence[int]) -> dict[str, float]:
    """CPU seconds so far per thread name, over a side's processes."""
    total: dict[str, float] = {}
    for pid in pids:
        for name, seconds in thread_cpu_seconds(pid).items():
            total[name] = total.get(name, 0.0) + seconds
    return total


def grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What grew between two readings of named counters, by name."""
    return {
        name: seconds - before.get(name, 0.0)
        for name, seconds in after.items()
        if seconds > before.get(name, 0.0)
    }


def stage_seconds_of(text: str) -> dict[str, float]:
    """hub_stage_cpu_seconds_total by stage from a /metrics page (docs/scaling.md)."""
    return metric_by_label(text, "hub_stage_cpu_seconds_total", "stage")


def threads_text(run: Run, top: int = 4) -> str:
    """The threads that took most CPU per message, e.g. "ingest-writer 17, alarm-flow 15"."""
    busiest = list(run.thread_us_per_message().items())[:top]
    return ", ".join(f"{name} {us:.1f}" for name, us in busiest if us >= 0.05)


def cpu_when_quiet(pids: Sequence[int], timeout_s: float = 30.0) -> tuple[list[float], float]:
    """Each process's CPU seconds once the side is quiet again, and how long that took.

    A hub's rules trail its writer by up to their queue (40,000 readings): after a run at
    full speed they judge for up to a second more once the last row is stored. Counting
    the CPU until the side is back to idle, as bench_instructions does, puts all the work
    the run caused in its figure, at full speed and paced alike.
    """
    started = time.monotonic()
    last = [cpu_seconds(pid) for pid in pids]
    while time.monotonic() - started < timeout_s:
        time.sleep(QUIET_WINDOW_S)
        now = [cpu_seconds(pid) for pid in pids]
        if all(b - a <= QUIET_CPU_S for a, b in zip(last, now, strict=True)):
            return now, time.monotonic() - started
        last = now
    return last, time.monotonic() - started


def measure(
    stack: Stack,
    side: Side,
    work: Path,
    windows: Windows,
    count: int,
    devices: int,
    paced: float | None,
    poll_s: float,
    drain_timeout_s: float,
) -> Run:
    """Publish `count` messages to a side (full speed or paced) and time their storage."""
    truncate(stack.database_url, side.tables)
    messages = build_messages(side.root, devices, count, windows.take(count))
    query = count_query(side.tables)
    pids = side.pids()
    progress: list[tuple[float, int]] = []
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        cpu_before = [cpu_seconds(pid) for pid in pids]
        threads_before = side_threads(pids)
        stages_before = side.stage_seconds()
        publisher = start_publisher(stack.mqtt_url, messages, work, f"{side.root}-run", paced)
        published_at: float | None = None
        elapsed_s = 0.0
        deadline = float("inf")
        stored = 0
        while True:
            now = time.monotonic()
            if published_at is None and publisher.poll() is not None:
                out, _ = publisher.communicate()
                if publisher.returncode != 0:
                    raise RuntimeError(f"the publisher failed with status {publisher.returncode}")
                finished, elapsed = out.split()
                published_at, elapsed_s = float(finished), float(elapsed)
                deadline = now + drain_timeout_s
            row = conn.execute(query).fetchone()
            stored = int(row[0]) if row is not None else 0
            sampled = time.monotonic()
            if not progress or stored != progress[-1][1]:
                progress.append((sampled, stored))
            if (stored >= count and published_at is not None) or sampled > deadline:
                break
            time.sleep(poll_s)
        cpu_after, quiet_s = cpu_when_quiet(pids)
        cpu_s = tuple(after - before for after, before in zip(cpu_after, cpu_before, strict=True))
        threads = grown(threads_before, side_threads(pids))
        stages = grown(stages_before, side.stage_seconds())
    assert published_at is not None  # noqa: S101 - the loop leaves only after it is set
    first_publish = published_at - elapsed_s
    done = progress[-1][0]
    p50_ms, p99_ms = (
        latency_percentiles_ms(progress, first_publish, paced, count) if paced else (None, None)
    )
    drain_s = max(0.0, done - published_at)
    late_s = max(0.0, elapsed_s - count / paced) if paced else 0.0
    behind_s = behind_schedule_s(done, first_publish, count, paced) if paced else drain_s
    return Run(
        side.name,
        paced,
        count,
        stored,
        count / (done - first_publish),
        drain_s,
        cpu_s,
        p50_ms,
        p99_ms,
        quiet_s,
        late_s,
        behind_s,
        threads,
        stages,
    )


def describe_run(run: Run) -> str:
    """One line of progress per run."""
    how = "full speed" if run.paced is None else f"paced {run.paced:,.0f} msg/s"
    text = (
        f"{run.side:<24} {how:<22} {run.rate:>8,.0f} msg/s  stored {run.stored:,}/{run.published:,}"
        f"  last row +{run.drain_s:.2f} s  CPU {cpu_text(run)}/msg (quiet +{run.quiet_s:.1f} s)"
    )
    if run.paced is not None:
        text += f"  publisher +{run.late_s:.2f} s late"
    if run.p50_ms is not None:
        text += f"  p50/p99 {run.p50_ms:,.0f}/{run.p99_ms:,.0f} ms"
        text += "  kept up" if run.kept_up else "  NOT kept up"
    if run.threads:
        text += f"  [µs/msg by thread: {threads_text(run)}]"
    return text


# --- the report -------------------------------------------------------------------------------


@dataclass
class SideResult:
    """A side's runs and its rate search."""

    name: str
    full: list[Run] = field(default_factory=list)
    paced: list[Run] = field(default_factory=list)
    search: RateSearch | None = None
    steady: list[Run] = field(default_factory=list)  # at --steady-fraction of the best kept up
    members: int | None = None  # a hub side's processes; None for the peer

    def full_rate(self) -> float:
        """Median full-speed msg/s."""
        return statistics.median(run.rate for run in self.full)

    def full_run(self) -> Run:
        """The full-speed run of median CPU per message."""
        return median_cpu_run(self.full)

    def steady_run(self) -> Run | None:
        """The steady run of median CPU per message, or None when there was none."""
        return median_cpu_run(self.steady) if self.steady else None

    def steady_worst(self) -> Run | None:
        """The steady run of the highest p99 publish→stored (the latency target's reading)."""
        return max(self.steady, key=lambda run: run.p99_ms or 0.0) if self.steady else None

    def cpu_ratio(self) -> float | None:
        """CPU per message at the steady rate over full speed's, median runs of each."""
        steady = self.steady_run()
        if steady is None or not self.full:
            return None
        return total_cpu_us(steady) / total_cpu_us(self.full_run())

    def rate_target(self) -> str | None:
        """Issue 23's least multiple of the peer's highest rate kept up, for a hub side."""
        if self.members is None:
            return None
        return ">= 1.25" if self.members > 1 else ">= 1"

    def cpu_target(self) -> str | None:
        """Issue 23's most for the steady rate's CPU per message over full speed's (hubs)."""
        return None if self.members is None else "<= 1"

    def median_runs_text(self) -> str:
        """Which runs the CPU ratio compares."""
        return (
            f"the runs of median CPU of {len(self.steady)} steady and {len(self.full)}"
            " full-speed runs"
        )

    def best_paced(self) -> Run | None:
        """The run at the highest paced rate kept up."""
        kept = [run for run in self.paced if run.kept_up]
        return max(kept, key=lambda run: run.paced or 0.0) if kept else None


def total_cpu_us(run: Run) -> float:
    """CPU per message of a run, the side's processes together."""
    return sum(run.cpu_us_per_message())


def median_cpu_run(runs: Sequence[Run]) -> Run:
    """The run of median CPU per message (of an even number, the lower middle one)."""
    ordered = sorted(runs, key=total_cpu_us)
    return ordered[(len(ordered) - 1) // 2]


def table_lines(results: Sequence[SideResult]) -> list[str]:
    """The Markdown table of the comparison."""
    lines = [
        "| side | full speed, msg/s | paced: highest rate kept up, msg/s "
        "| p50 / p99 publish→stored there | p50 / p99 at the steady rate (highest p99) "
        "| CPU per message, full speed (median) | CPU per message, paced there "
        "| CPU per message, steady rate (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        best = result.best_paced()
        lines.append(
            f"| {result.name} | {result.full_rate():,.0f} "
            f"| {result.search.describe() if result.search else '—'} | {latency_text(best)} "
            f"| {latency_text(result.steady_worst())} "
            f"| {cpu_text(result.full_run())} | {cpu_text(best)}"
            f" | {cpu_text(result.steady_run())} |"
        )
    return lines


def thread_lines(results: Sequence[SideResult], top: int = 5) -> list[str]:
    """Where each side's CPU per message went, by thread, at full speed and at the steady rate
    (issue 23: which stage costs more under a steady load)."""
    return _split_lines(results, "thread", Run.thread_us_per_message, top)


def stage_lines(results: Sequence[SideResult]) -> list[str]:
    """The same by stage of the hot path, from the hubs' own counters (--by-stage)."""
    return _split_lines(results, "stage", Run.stage_us_per_message, len(STAGES))


def _split_lines(
    results: Sequence[SideResult],
    what: str,
    split: Callable[[Run], dict[str, float]],
    top: int,
) -> list[str]:
    lines = [
        f"| side | {what} | CPU per message, full speed | at the steady rate | change |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        steady = result.steady_run()
        if steady is None:
            continue
        at_full, at_steady = split(result.full_run()), split(steady)
        for name in list(at_full)[:top]:
            before, after = at_full[name], at_steady.get(name, 0.0)
            lines.append(
                f"| {result.name} | {name} | {before:.1f} µs | {after:.1f} µs"
                f" | {after - before:+.1f} µs |"
            )
    return lines if len(lines) > 2 else []


def verdict(value: float, target: str | None) -> str:
    """ "met" or "missed" against a target like ">= 1.25", or "" without one."""
    met = target_met(value, target)
    return "" if met is None else f"; issue 23: {target}×, {'met' if met else 'missed'}"


def peer_best(results: Sequence[SideResult], peer: str) -> Run | None:
    """The peer's run at its highest paced rate kept up, the reference of the rate ratios."""
    return next((r.best_paced() for r in results if r.name == peer), None)


def rate_ratio(result: SideResult, reference: Run | None) -> float | None:
    """A side's highest rate kept up as a multiple of the peer's best run."""
    best = result.best_paced()
    if reference is None or not reference.paced or best is None or not best.paced:
        return None
    return best.paced / reference.paced


def ratio_lines(results: Sequence[SideResult], peer: str) -> list[str]:
    """Issue 23's targets: each other side's highest rate kept up as a multiple of the peer's,
    and each side's CPU per message at the steady rate as a multiple of full speed's."""
    reference = peer_best(results, peer)
    lines = []
    for result in results:
        ratio, best = rate_ratio(result, reference), result.best_paced()
        if result.name == peer or ratio is None or reference is None or best is None:
            continue
        lines.append(
            f"{result.name}: {ratio:.2f}× {peer}'s highest rate kept up"
            f" ({best.paced or 0:,.0f} against {reference.paced or 0:,.0f} msg/s"
            f"{verdict(ratio, result.rate_target())})"
        )
    for result in results:
        cpu = result.cpu_ratio()
        steady = result.steady_run()
        if cpu is None or steady is None:
            continue
        lines.append(
            f"{result.name}: CPU per message at the steady rate {cpu:.3f}× full speed's"
            f" ({total_cpu_us(steady):.1f} against {total_cpu_us(result.full_run()):.1f} µs,"
            f" {result.median_runs_text()}{verdict(cpu, result.cpu_target())})"
        )
    return lines


def peer_figures(results: Sequence[SideResult], peer: str) -> list[Figure]:
    """The table as rows for bench/report.py, issue 23's targets with theirs."""
    figures: list[Figure] = []
    reference = peer_best(results, peer)
    for result in results:
        best = result.best_paced()
        figures.append(Figure("peer", f"{result.name}, full speed", result.full_rate(), "msg/s"))
        figures.append(
            Figure(
                "peer",
                f"{result.name}, highest paced rate kept up",
                best.paced if best else None,
                "msg/s",
                None,
                result.search.describe() if result.search else "not searched",
            )
        )
        if best is not None:
            figures += [
                Figure("peer", f"{result.name}, p99 publish→stored there", best.p99_ms, "ms"),
                Figure(
                    "peer",
                    f"{result.name}, CPU per message there",
                    sum(best.cpu_us_per_message()),
                    "µs",
                    None,
                    "all processes of the side together",
                ),
            ]
        worst, steady = result.steady_worst(), result.steady_run()
        if worst is not None and steady is not None:
            runs = len(result.steady)
            kept = sum(run.kept_up for run in result.steady)
            figures += [
                Figure(
                    "peer",
                    f"{result.name}, p99 publish→stored at {worst.paced:,.0f} msg/s (steady)",
                    worst.p99_ms,
                    "ms",
                    "< 500" if result.members is not None else None,
                    f"the highest of {runs} run(s); {kept} of {runs} kept up",
                ),
                Figure(
                    "peer",
                    f"{result.name}, CPU per message at the steady rate",
                    total_cpu_us(steady),
                    "µs",
                    None,
                    f"the run of median CPU of {runs}; all processes of the side together",
                ),
                Figure(
                    "peer",
                    f"{result.name}, CPU per message at the steady rate / at full speed",
                    result.cpu_ratio(),
                    "×",
                    result.cpu_target(),
                    result.median_runs_text(),
                ),
            ]
        ratio = rate_ratio(result, reference)
        if result.name != peer and ratio is not None:
            figures.append(
                Figure(
                    "peer",
                    f"{result.name} / {peer}, highest paced rate kept up",
                    ratio,
                    "×",
                    result.rate_target(),
                )
            )
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Install the peer, start every side, run them interleaved, print the table."""
    args = parse_args(argv)
    peer_problem = None if args.no_peer else install_node_red(args.node_red_dir)
    if peer_problem is not None:
        print(f"bench_peer: skipped, Node-RED could not be installed: {peer_problem}")
        if args.json is not None:
            skipped = f"skipped: Node-RED could not be installed ({peer_problem})"
            args.json.write_text(
                encode_figures([Figure("peer", "hub against Node-RED", None, "", None, skipped)]),
                encoding="utf-8",
            )
        return 0
    poll_s = args.poll_ms / 1000
    windows: dict[str, Windows] = {}
    with local_stack("peer") as stack:
        work = stack.work
        register_devices(stack.database_url, args.devices)
        with psycopg.connect(stack.database_url) as conn:
            conn.execute(PEER_TABLE_DDL.encode())
        sides: list[Side] = []
        headers = api_headers(stack.database_url, "read_only") if args.by_stage else None
        try:
            settings = dict(item.split("=", 1) for item in args.hub_setting)
            for members in args.members:
                hub = HubSide(
                    members,
                    settings=settings,
                    label=", ".join(args.hub_setting),
                    api_headers=headers,
                )
                sides.append(hub)
                hub.start(stack, work)
                if args.compare_root is not None:
                    other = HubSide(
                        members,
                        code_root=args.compare_root.resolve(),
                        label=args.compare_label,
                        api_headers=headers,
                    )
                    sides.append(other)
                    other.start(stack, work)
            if not args.no_peer:
                assert stack.broker is not None  # noqa: S101 - local_stack starts one
                node_red = NodeRedProcess(
                    args.node_red_dir,
                    work,
                    "peernr",
                    stack.broker.port,
                    stack.database_url,
                    free_port(),
                )
                sides.append(PeerSide(node_red))
                node_red.start()
            for side in sides:
                windows[side.name] = Windows(args.devices)
                wait_for_probe(stack, side, windows[side.name], work)
            warmed = [warm_up(stack, side, windows[side.name], work) for side in sides]
            results = [
                SideResult(side.name, members=side.members if isinstance(side, HubSide) else None)
                for side in sides
            ]
            print(f"bench_peer: {args.messages:,} messages from {args.devices:,} devices, QoS 1")
            print(
                f"warm-up per side, not measured: {warmed[0]:,} messages, every device every"
                f" {WARM_UP_STEP_S} s for {WARM_UP_S} s of event time (the start-up alarms)"
            )

            def run(side: Side, result: SideResult, count: int, paced: float | None) -> Run:
                measured = measure(
                    stack,
                    side,
                    work,
                    windows[side.name],
                    count,
                    args.devices,
                    paced,
                    poll_s,
                    args.drain_timeout,
                )
                print(describe_run(measured), flush=True)
                return measured

            for _ in range(args.repeats):
                for side, result in zip(sides, results, strict=True):
                    result.full.append(run(side, result, args.messages, None))
            for result in results:
                full = result.full_rate()
                result.search = RateSearch(full * args.low_fraction, full * args.high_fraction)
            for _ in range(args.steps):
                for side, result in zip(sides, results, strict=True):
                    assert result.search is not None  # noqa: S101 - set just above
                    rate = result.search.next_rate()
                    count = max(1, round(rate * args.paced_seconds))
                    measured = run(side, result, count, rate)
                    result.paced.append(measured)
                    result.search.record(rate, measured.kept_up)
            for _ in range(args.steady_repeats if args.steady_fraction > 0 else 0):
                for side, result in zip(sides, results, strict=True):
                    best = result.best_paced()
                    if best is None or not best.paced:
                        continue
                    rate = best.paced * args.steady_fraction
                    count = max(1, round(rate * args.paced_seconds))
                    result.steady.append(run(side, result, count, rate))
        finally:
            for side in reversed(sides):
                side.stop()
    print()
    print(
        f"Paced runs {args.paced_seconds:g} s each; kept up = every row stored, the last"
        f" ≤ {KEPT_UP_S:g} s after the schedule's last publish; publish→stored from the row count"
        f" every {args.poll_ms:g} ms; CPU per process of the side."
    )
    print(
        f"The steady rate: {args.steady_fraction:.0%} of each side's highest rate kept up,"
        f" {args.steady_repeats} run(s) per side; full speed {args.repeats} run(s) per side."
    )
    for line in table_lines(results):
        print(line)
    splits = (
        ("by thread (the OS's thread names; a side's processes together)", thread_lines),
        ("by stage (the hubs' hub_stage_cpu_seconds_total; members together)", stage_lines),
    )
    for title, split in splits:
        lines = split(results)
        if lines:
            print()
            print(f"CPU per message {title}:")
            for line in lines:
                print(line)
    print()
    for line in ratio_lines(results, PeerSide.name):
        print(line)
    if args.json is not None:
        args.json.write_text(encode_figures(peer_figures(results, PeerSide.name)), encoding="utf-8")
    lost = any(run.stored < run.published for r in results for run in r.full)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
