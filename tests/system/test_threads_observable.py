"""A running hub shows which of its threads does the work: OS thread names and /metrics."""

import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.cli.local_stack import free_port
from tests.hub_process import (
    HubChild,
    api_headers,
    hub_env,
    metric_by_label,
    publish_all,
    wait_for,
)
from tests.ingest.test_ingest_end_to_end import register_devices, stored_total, telemetry

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def scrape(api_port: int, headers: dict[str, str]) -> str:
    response = httpx.get(f"http://127.0.0.1:{api_port}/metrics", headers=headers, timeout=5)
    response.raise_for_status()
    return response.text


def thread_cpu(text: str) -> dict[str, float]:
    return metric_by_label(text, "hub_thread_cpu_seconds_total", "thread")


def ingest_cpu(threads: dict[str, float]) -> float:
    return threads.get("ingest-decoder", 0.0) + threads.get("ingest-writer", 0.0)


def stage_items(text: str) -> dict[str, float]:
    return metric_by_label(text, "hub_stage_items_total", "stage")


def test_the_stages_are_named_threads_with_their_cpu_time(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    register_devices(database_url)
    api_port = free_port()
    env = hub_env(database_url, mqtt_url, mqtt_root, HUB_API_PORT=str(api_port))
    child = HubChild(env, tmp_path / "hub.log", api=True)
    child.start()
    headers = api_headers(database_url, "read_only")
    try:
        before = thread_cpu(scrape(api_port, headers))
        good = telemetry(mqtt_root, 40, int(time.time() * 1000) - 600_000)
        publish_all(mqtt_url, good, f"pub-{mqtt_root}")
        wait_for(lambda: stored_total(database_url) >= len(good), 30, "the readings")
        # A hub alone decodes on `ingest-decoder` and commits on `ingest-writer`
        # (HUB_DECODE_AHEAD): the two together do what the writer did alone.
        wait_for(
            lambda: ingest_cpu(thread_cpu(scrape(api_port, headers))) > ingest_cpu(before),
            10,
            "the writer's CPU time to grow",
        )
        # Each stage's CPU time and what it handled: every message decoded and stored,
        # every reading judged (the rules trail the writer).
        wait_for(
            lambda: stage_items(scrape(api_port, headers)).get("rules", 0) >= len(good),
            10,
            "the rules to count the readings",
        )
        names = {
            (task / "comm").read_text().strip()
            for task in Path(f"/proc/{child.pid}/task").iterdir()
        }
        metrics = scrape(api_port, headers)
    finally:
        child.stop()
    # The stages, as top -H and ps -L show them (Linux keeps 15 bytes of a name).
    assert {"ingest-decoder", "ingest-writer", "alarm-flow", "mqtt-network"} <= names
    assert {"ingest-decoder", "ingest-writer", "alarm-flow", "MainThread"} <= set(before)
    items = stage_items(metrics)
    assert items["decode"] == items["store"] >= len(good)  # each message once in each
    assert {"decode", "store", "rules", "alarms", "clock"} <= set(items)
    stage_cpu = metric_by_label(metrics, "hub_stage_cpu_seconds_total", "stage")
    assert stage_cpu["decode"] > 0
    assert stage_cpu["rules"] > 0
    assert "process_cpu_seconds_total" in metrics  # and the process's own
    assert "process_resident_memory_bytes" in metrics
