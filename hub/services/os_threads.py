"""Threads as the operating system sees them: their names, for top, ps and /proc, and
their CPU time, for Prometheus.

Python 3.11 leaves every thread of the hub named after the process ("python") outside
Python, so `top -H`, `ps -L` and a benchmark reading /proc/<pid>/task/<tid>/stat cannot
tell the ingest writer from the rules. `name_os_threads` has every thread started from
the `threading` module afterwards (the hub's own, paho's and psycopg's pool workers)
take its Python name as its OS name, through `threading.setprofile`: the profile function
runs once in the new thread before its `run()`, names it and removes itself. Linux keeps
15 bytes of a name (`/proc/<pid>/task/<tid>/comm`).
"""

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from setproctitle import setthreadtitle

OS_NAME_BYTES = 15  # Linux's TASK_COMM_LEN, less the terminating NUL
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def stat_cpu_seconds(stat: Path) -> float:
    """User plus system CPU time from a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat
    file; OSError when it is not there (the process or thread ended, or no /proc)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()  # after the name, which may hold ")"
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime


def os_thread_name(name: str) -> str:
    """A thread's name as the OS keeps it: its first 15 bytes, cut at a whole character."""
    return name.encode()[:OS_NAME_BYTES].decode(errors="ignore")


def _name_this_thread(_frame: FrameType, _event: str, _arg: object) -> None:
    sys.setprofile(None)  # once: the thread runs unprofiled from here on
    setthreadtitle(os_thread_name(threading.current_thread().name))


def name_os_threads() -> None:
    """Give every thread started from now on its Python name as its OS name."""
    threading.setprofile(_name_this_thread)


class ThreadCpuCollector(Collector):
    """`hub_thread_cpu_seconds_total{thread}`: the CPU time of each live thread, by name.

    Which stage of a hub is at its core (the writer, the rules, the receiver), for
    Prometheus as `top -H` shows it. Read from /proc/self/task/<tid>/stat at each scrape for
    the threads `threading` knows (their Python names; threads of one name summed). A
    thread that ends takes its time with it, which Prometheus's `rate()` reads as a counter
    reset. Outside Linux there is no /proc and the family is empty.
    """

    def __init__(self, tasks: Path = Path("/proc/self/task")) -> None:
        self._tasks = tasks

    def collect(self) -> Iterator[Metric]:
        """One sample per thread name."""
        family = CounterMetricFamily(
            "hub_thread_cpu_seconds",
            "CPU time (user + system) of the hub's threads",
            labels=["thread"],
        )
        seconds: dict[str, float] = {}
        for thread in threading.enumerate():
            if thread.native_id is None:
                continue
            try:
                used = stat_cpu_seconds(self._tasks / str(thread.native_id) / "stat")
            except OSError:  # ended meanwhile, or no /proc here
                continue
            seconds[thread.name] = seconds.get(thread.name, 0.0) + used
        for name, used in sorted(seconds.items()):
            family.add_metric([name], used)
        yield family
