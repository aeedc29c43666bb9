"""Broker and database restarts under load: the hub reconnects and nothing is lost."""

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from hub.cli.local_stack import LocalMosquitto, LocalPostgres, free_port
from hub.devices.kinds import Kind
from hub.store.migrations import apply_migrations
from tests.hub_process import HubChild, count, hub_env, publish_all, running_hub, wait_for
from tests.payload_examples import example

pytestmark = pytest.mark.integration

DEVICES = 20


def register(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        for i in range(DEVICES):
            conn.execute(
                "INSERT INTO devices (device_id, kind, lat, lon)"
                " VALUES (%s, 'parking', 31.3, 120.6)",
                (f"P-{i}",),
            )


def messages(root: str, first: int, n: int) -> list[tuple[str, bytes]]:
    """n parking readings with distinct (device, ts), starting at sequence number `first`."""
    base_ms = int(time.time() * 1000) - 3_600_000
    out = []
    for seq in range(first, first + n):
        payload = example(Kind.PARKING, base_ms + seq * 100, occupied=seq % 2 == 0)
        out.append((f"{root}/parking/P-{seq % DEVICES}/telemetry", orjson.dumps(payload)))
    return out


def health_of(api_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=5) as r:
        health: dict[str, Any] = orjson.loads(r.read())
    return health


def stored(database_url: str) -> int:
    return count(database_url, "SELECT count(*) FROM telemetry_parking")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalMosquitto]:
    """A broker of this test's own, so it can be restarted without disturbing others."""
    broker = LocalMosquitto(tmp_path / "mqtt", free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_database(service_dir: Path) -> Iterator[LocalPostgres]:
    """A PostgreSQL of this test's own, so it can be restarted."""
    server = LocalPostgres(service_dir / f"pg-{free_port()}", free_port())
    server.start()
    apply_migrations(server.url, "plain")
    yield server
    server.stop("immediate")


def test_broker_restart_reconnects_and_loses_nothing(
    database_url: str, own_broker: LocalMosquitto, mqtt_root: str, tmp_path: Path
) -> None:
    register(database_url)
    log = tmp_path / "hub.log"
    with running_hub(hub_env(database_url, own_broker.url, mqtt_root), log):
        publish_all(own_broker.url, messages(mqtt_root, 0, 1000), "pub-a")
        wait_for(lambda: stored(database_url) == 1000, what="first 1000")
        own_broker.stop()  # a clean stop saves the persistent sessions
        time.sleep(1.0)
        own_broker.start()
        # Published while the hub may still be reconnecting: the session queues them.
        publish_all(own_broker.url, messages(mqtt_root, 1000, 1000), "pub-b")
        wait_for(lambda: stored(database_url) == 2000, timeout_s=60, what="all 2000")
    text = log.read_text()
    assert text.count("subscribing to") >= 2, "the hub should have reconnected"
    assert "session present: True" in text
    assert count(database_url, "SELECT count(*) FROM dead_letters") == 0


def test_database_restart_under_load_loses_nothing_and_stays_bounded(
    own_database: LocalPostgres, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    url = own_database.url
    register(url)
    api_port = free_port()
    env = hub_env(
        url,
        mqtt_url,
        mqtt_root,
        HUB_MQTT_RECEIVE_MAXIMUM="500",
        HUB_API_PORT=str(api_port),
    )
    total = 6000
    pending_seen: list[int] = []
    problems_seen: set[str] = set()
    with running_hub(env, tmp_path / "hub.log", api=True):
        publisher = threading.Thread(
            target=publish_all, args=(mqtt_url, messages(mqtt_root, 0, total), "pub-load")
        )
        publisher.start()
        wait_for(lambda: stored(url) > 500, what="some readings stored")
        own_database.stop("fast")
        outage_end = time.monotonic() + 3.0
        while time.monotonic() < outage_end:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=5) as r:
                health = orjson.loads(r.read())
            pending_seen.append(int(health["ingest_pending"]))
            assert health["database"] is False
            assert health["status"] == "degraded"
            problems_seen.update(health["problems"])
            time.sleep(0.2)
        own_database.start()
        publisher.join()
        wait_for(lambda: stored(url) == total, timeout_s=90, what=f"all {total} readings")
        # Health tells the truth again once the writer has caught up.
        wait_for(lambda: health_of(api_port)["status"] == "ok", 30, "health ok again")
    # While the database was down the hub stopped acknowledging instead of buffering:
    # never more in memory than the receive maximum the broker honours.
    assert max(pending_seen) <= 500
    assert max(pending_seen) > 0
    # Health said why: the database, and the writer retrying its batch.
    assert "the database does not answer" in problems_seen
    assert any(p.startswith("the writer is retrying a batch: ") for p in problems_seen)
    assert count(url, "SELECT count(*) FROM dead_letters") == 0


def test_a_hub_stopped_while_the_database_is_down_exits_and_loses_nothing(
    own_database: LocalPostgres, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    url = own_database.url
    register(url)
    env = hub_env(url, mqtt_url, mqtt_root)
    log = tmp_path / "hub.log"
    with running_hub(env, log):
        publish_all(mqtt_url, messages(mqtt_root, 0, 500), "pub-before")
        wait_for(lambda: stored(url) == 500, what="first 500")
    hub = HubChild(env, log)
    hub.mark()
    hub.start()
    own_database.stop("fast")
    publish_all(mqtt_url, messages(mqtt_root, 500, 300), "pub-outage")
    wait_for(lambda: "batch write failed" in log.read_text(), what="the writer retrying")
    # It used to retry for ever after SIGTERM and had to be killed.
    assert hub.stop() == 0
    assert "not acknowledged" in log.read_text()
    own_database.start()
    with running_hub(env, log):
        wait_for(lambda: stored(url) == 800, timeout_s=60, what="all 800 after the restart")
    assert count(url, "SELECT count(*) FROM dead_letters") == 0
