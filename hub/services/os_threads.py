"""The operating system's name of each thread: its Python name, for top, ps and /proc.

Python 3.11 leaves every thread of the hub named after the process ("python") outside
Python, so `top -H`, `ps -L` and a benchmark reading /proc/<pid>/task/<tid>/stat cannot
tell the ingest writer from the rules. `name_os_threads` has every thread started from
the `threading` module afterwards (the hub's own, paho's and psycopg's pool workers)
take its Python name as its OS name, through `threading.setprofile`: the profile function
runs once in the new thread before its `run()`, names it and removes itself. Linux keeps
15 bytes of a name (`/proc/<pid>/task/<tid>/comm`).
"""

import sys
import threading
from types import FrameType

from setproctitle import setthreadtitle

OS_NAME_BYTES = 15  # Linux's TASK_COMM_LEN, less the terminating NUL


def os_thread_name(name: str) -> str:
    """A thread's name as the OS keeps it: its first 15 bytes, cut at a whole character."""
    return name.encode()[:OS_NAME_BYTES].decode(errors="ignore")


def _name_this_thread(_frame: FrameType, _event: str, _arg: object) -> None:
    sys.setprofile(None)  # once: the thread runs unprofiled from here on
    setthreadtitle(os_thread_name(threading.current_thread().name))


def name_os_threads() -> None:
    """Give every thread started from now on its Python name as its OS name."""
    threading.setprofile(_name_this_thread)
