"""name_os_threads: threads started afterwards carry their Python name as their OS name."""

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.services.os_threads import name_os_threads, os_thread_name

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/<pid>/task/<tid>/comm"
)


def os_name_of(thread: threading.Thread) -> str:
    return Path(f"/proc/self/task/{thread.native_id}/comm").read_text().strip()


@pytest.fixture
def naming() -> Iterator[None]:
    name_os_threads()
    yield
    threading.setprofile(None)


def run_until_read(name: str) -> str:
    """Start a thread called `name`; its OS name, read while it runs."""
    started, release = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(10)

    thread = threading.Thread(target=work, name=name)
    thread.start()
    try:
        assert started.wait(10)
        return os_name_of(thread)
    finally:
        release.set()
        thread.join(10)


@pytest.mark.usefixtures("naming")
def test_a_thread_started_afterwards_carries_its_python_name() -> None:
    assert run_until_read("ingest-writer") == "ingest-writer"


@pytest.mark.usefixtures("naming")
def test_a_long_name_is_cut_to_what_linux_keeps() -> None:
    assert run_until_read("manhole-commands") == "manhole-command"
    # A multi-byte character is not cut in half.
    assert run_until_read("规则线程-alarm-flow") == os_thread_name("规则线程-alarm-flow")
    assert len(os_thread_name("规则线程-alarm-flow").encode()) <= 15


@pytest.mark.usefixtures("naming")
def test_the_thread_runs_unprofiled_after_naming() -> None:
    seen: list[object] = []

    def work() -> None:
        seen.append(sys.getprofile())

    thread = threading.Thread(target=work, name="probe")
    thread.start()
    thread.join(10)
    assert seen == [None]


def test_without_it_a_thread_keeps_the_process_name() -> None:
    hook = threading.getprofile()
    threading.setprofile(None)  # whatever ran before in this process
    try:
        assert run_until_read("not-named") != "not-named"
    finally:
        threading.setprofile(hook)


def test_the_os_name_keeps_whole_characters() -> None:
    assert os_thread_name("alarm-flow") == "alarm-flow"
    assert os_thread_name("a" * 20) == "a" * 15
    assert os_thread_name("规则" * 5) == "规则规则规"  # 15 bytes: five 3-byte characters
    assert os_thread_name("ab规则规则规则") == "ab规则规则"  # 14 bytes, not half a character
