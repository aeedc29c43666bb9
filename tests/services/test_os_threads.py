"""Threads outside Python: named after their Python names, and their CPU time by name."""

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hub.services.os_threads import ThreadCpuCollector, name_os_threads, os_thread_name

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


def test_each_live_thread_has_its_cpu_time_for_prometheus() -> None:
    registry = CollectorRegistry()
    registry.register(ThreadCpuCollector())
    spun, release = threading.Event(), threading.Event()

    def spin() -> None:
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        spun.set()
        release.wait(10)

    spinner = threading.Thread(target=spin, name="ingest-writer")
    sleeper = threading.Thread(target=release.wait, args=(10,), name="alarm-flow")
    spinner.start()
    sleeper.start()
    try:
        assert spun.wait(10)
        text = generate_latest(registry).decode()
        writer = registry.get_sample_value(
            "hub_thread_cpu_seconds_total", {"thread": "ingest-writer"}
        )
        rules = registry.get_sample_value("hub_thread_cpu_seconds_total", {"thread": "alarm-flow"})
    finally:
        release.set()
        spinner.join(10)
        sleeper.join(10)
    assert writer is not None
    assert writer >= 0.25  # /proc counts in 10 ms ticks
    assert rules is not None
    assert rules < 0.1  # it waited
    assert 'hub_thread_cpu_seconds_total{thread="MainThread"}' in text
    assert [m.type for m in registry.collect()] == ["counter"]


def test_without_proc_the_family_is_empty(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(ThreadCpuCollector(tmp_path / "no-such-dir"))
    assert (
        registry.get_sample_value("hub_thread_cpu_seconds_total", {"thread": "MainThread"}) is None
    )
    assert [(m.type, m.samples) for m in registry.collect()] == [("counter", [])]
