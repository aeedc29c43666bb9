"""Instructions the hub executes per message, counted by valgrind's callgrind.

On a shared machine the ingest benchmark's msg/s and CPU figures move by a third from one
run to the next; the count of instructions executed does not (callgrind counts them, it
does not time them). This runs the hub (`python -m hub run`, every rule on) under
`valgrind --tool=callgrind` twice, on its own PostgreSQL and Mosquitto, publishes
bench_ingest's mix (lamps, parking spots, muck trucks) to it, waits until every reading is
stored and the hub's CPU use is back to its idle level (the rules have caught up), stops
it and reads the total. The per-message figure is the difference between a run of
`--messages` and one of half as many, over the difference in messages: start-up, registry
loading and shutdown cancel out. Clock-driven work (ticks, registry refreshes) is counted
for as long as each run lasts, a small remainder.

`--hub-root` runs the hub of another checkout (a worktree of an earlier commit), for a
side-by-side figure: the same script, publisher and data against other code.

    python bench/bench_instructions.py [--messages 8000] [--devices 3000] [--hub-root PATH]
"""

import argparse
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench_ingest import KINDS, build_messages, register_devices, stored
from figures import Figure, add_json_option, publish_figures
from stack import ROOT, cpu_seconds, hub_env, local_stack, publish_all

WINDOW_S = 3.0  # CPU use is compared over windows this long
_TOTAL = re.compile(r"Collected : (\d+)")


def cpu_rate(pid: int) -> float:
    """Share of one core a process used over the next WINDOW_S."""
    before = cpu_seconds(pid)
    time.sleep(WINDOW_S)
    return (cpu_seconds(pid) - before) / WINDOW_S


def wait_idle(pid: int, idle_rate: float, timeout_s: float) -> None:
    """Wait until the hub is back to its idle CPU use (its clock work, slow under valgrind):
    the rules have caught up with the readings."""
    deadline = time.monotonic() + timeout_s
    while cpu_rate(pid) > max(1.5 * idle_rate, idle_rate + 0.1):
        if time.monotonic() > deadline:
            raise TimeoutError(f"hub {pid} still busy after {timeout_s:.0f} s")


def count_run(hub_root: Path, messages: int, devices: int) -> int:
    """Total instructions of one hub process that stored `messages` readings."""
    tables = tuple(f"telemetry_{kind}" for kind in KINDS)
    with local_stack("instructions") as stack:
        register_devices(stack.database_url, devices)
        env = hub_env(stack, "ir", PYTHONPATH=str(hub_root))
        log_path = stack.work / "hub.log"
        args = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        args += [sys.executable, "-m", "hub", "run", "--no-api"]
        with log_path.open("ab") as log:
            hub = subprocess.Popen(args, env=env, cwd=hub_root, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 900
            while "subscribing to" not in log_path.read_text(errors="replace"):
                if hub.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"hub did not start:\n{log_path.read_text()[-2000:]}")
                time.sleep(1)
            time.sleep(10)  # start-up's last work
            idle_rate = min(cpu_rate(hub.pid) for _ in range(3))
            start_ms = int(time.time() * 1000) - (messages // devices + 60) * 1000
            publish_all(stack.mqtt_url, build_messages("ir", devices, messages, start_ms), "ir")
            deadline = time.monotonic() + 1800
            while stored(stack.database_url, tables) < messages:
                if time.monotonic() > deadline:
                    raise TimeoutError("readings not stored within 30 min")
                time.sleep(1)
            wait_idle(hub.pid, idle_rate, 1800)
            hub.send_signal(signal.SIGTERM)
            hub.wait(600)
        finally:
            if hub.poll() is None:
                hub.kill()
                hub.wait()
        match = _TOTAL.search(log_path.read_text(errors="replace"))
        if match is None:
            raise RuntimeError(f"no callgrind total:\n{log_path.read_text()[-2000:]}")
        return int(match[1])


def main() -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=8000)
    parser.add_argument("--devices", type=int, default=3000)
    parser.add_argument("--hub-root", type=Path, default=ROOT, help="checkout whose hub runs")
    add_json_option(parser)
    args = parser.parse_args()
    metric = "hub instructions per message, every rule on"
    if shutil.which("valgrind") is None:
        figures = [
            Figure("instructions", metric, None, "", None, "n/a (valgrind is not installed)")
        ]
    else:
        small = args.messages // 2
        low = count_run(args.hub_root, small, args.devices)
        high = count_run(args.hub_root, args.messages, args.devices)
        per_message = (high - low) / (args.messages - small)
        where = "" if args.hub_root.resolve() == ROOT else f" (hub of {args.hub_root})"
        figures = [
            Figure(
                "instructions",
                metric,
                per_message,
                "",
                None,
                f"callgrind: runs of {args.messages:,} and {small:,} messages of"
                f" {args.devices:,} devices (lamps, parking spots, trucks), difference per"
                f" message{where}",
            )
        ]
    publish_figures("hub instructions per message", figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
