"""stack.thread_cpu_seconds: CPU per thread name of a running process, read from /proc."""

import subprocess
import sys

import pytest
from stack import ROOT, thread_cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A process whose threads carry their names (as the hub's do) and one of them spins.
_CHILD = """
import threading, time
from hub.services.os_threads import name_os_threads
name_os_threads()
def spin():
    end = time.thread_time() + 0.3
    while time.thread_time() < end:
        pass
    print("spun", flush=True)
    time.sleep(60)
threading.Thread(target=time.sleep, args=(60,), name="alarm-flow", daemon=True).start()
threading.Thread(target=spin, name="ingest-writer", daemon=True).start()
time.sleep(60)
"""


def test_a_named_thread_has_its_own_cpu_time() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "spun\n"
        seconds = thread_cpu_seconds(child.pid)
    finally:
        child.kill()
        child.wait()
    assert seconds["ingest-writer"] >= 0.25  # /proc counts in 10 ms ticks
    assert seconds["alarm-flow"] < 0.1  # it slept
