"""MQTT → hub → PostgreSQL with a real Mosquitto, a real PostgreSQL and a real hub process."""

import hashlib
import time
from pathlib import Path

import orjson
import psycopg
import pytest

from hub.devices.batch import OVERSIZE_SAMPLE_BYTES
from hub.devices.kinds import Kind
from tests.hub_process import HubChild, count, hub_env, publish_all, running_hub, wait_for
from tests.payload_examples import example

pytestmark = pytest.mark.integration

DEVICES_PER_KIND = 5


def register_devices(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        for kind in Kind:
            for i in range(DEVICES_PER_KIND):
                conn.execute(
                    "INSERT INTO devices (device_id, kind, lat, lon) VALUES (%s, %s, 31.3, 120.6)",
                    (f"{kind.value}-{i}", kind.value),
                )


def telemetry(root: str, per_device: int, start_ms: int) -> list[tuple[str, bytes]]:
    messages = []
    for n in range(per_device):
        for kind in Kind:
            for i in range(DEVICES_PER_KIND):
                payload = example(kind, start_ms + n * 1000)
                messages.append(
                    (f"{root}/{kind.value}/{kind.value}-{i}/telemetry", orjson.dumps(payload))
                )
    return messages


def stored_total(database_url: str) -> int:
    return sum(count(database_url, f"SELECT count(*) FROM telemetry_{k.value}") for k in Kind)


def test_every_kind_is_stored_once(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    register_devices(database_url)
    now_ms = int(time.time() * 1000)
    messages = telemetry(mqtt_root, 4, now_ms - 60_000)
    batch = [example(Kind.TRUCK, now_ms - 30_000 + i) for i in range(10)]
    messages.append((f"{mqtt_root}/truck/truck-0/telemetry", orjson.dumps(batch)))
    with running_hub(hub_env(database_url, mqtt_url, mqtt_root), tmp_path / "hub.log"):
        publish_all(mqtt_url, messages, f"pub-{mqtt_root}")
        # Redelivery of the same readings is stored once.
        publish_all(mqtt_url, messages[:20], f"pub2-{mqtt_root}")
        expected = 4 * DEVICES_PER_KIND * len(Kind) + 10
        wait_for(lambda: stored_total(database_url) >= expected, what=f"{expected} readings")
        time.sleep(0.3)
    assert stored_total(database_url) == expected
    for kind in Kind:
        assert count(database_url, f"SELECT count(*) FROM telemetry_{kind.value}") == (
            4 * DEVICES_PER_KIND + (10 if kind is Kind.TRUCK else 0)
        )
    assert count(database_url, "SELECT count(*) FROM dead_letters") == 0


def test_every_class_of_bad_input_becomes_a_dead_letter(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    register_devices(database_url)
    now_ms = int(time.time() * 1000)
    r = mqtt_root
    bad: dict[str, tuple[str, bytes]] = {
        "invalid_json": (f"{r}/lighting/lighting-0/telemetry", b"{not json"),
        "schema": (f"{r}/lighting/lighting-0/telemetry", b'{"ts": 1, "on": "yes"}'),
        "unknown_kind": (f"{r}/bench/bench-1/telemetry", orjson.dumps({"ts": now_ms})),
        "unregistered": (
            f"{r}/parking/parking-99/telemetry",
            orjson.dumps(example(Kind.PARKING, now_ms)),
        ),
        "id_mismatch": (
            f"{r}/parking/parking-0/telemetry",
            orjson.dumps(example(Kind.PARKING, now_ms, device_id="parking-1")),
        ),
        "ts_too_old": (
            f"{r}/parking/parking-0/telemetry",
            orjson.dumps(example(Kind.PARKING, now_ms - 30 * 86_400_000)),
        ),
        "ts_in_future": (
            f"{r}/parking/parking-0/telemetry",
            orjson.dumps(example(Kind.PARKING, now_ms + 86_400_000)),
        ),
        "oversize": (f"{r}/parking/parking-0/telemetry", b"[" + b" " * 300_000 + b"]"),
        "bad_topic": (f"{r}/parking/parking-0", b"{}"),
        "kind_mismatch": (
            f"{r}/truck/parking-0/telemetry",
            orjson.dumps(example(Kind.TRUCK, now_ms)),
        ),
    }
    with running_hub(hub_env(database_url, mqtt_url, mqtt_root), tmp_path / "hub.log"):
        publish_all(mqtt_url, list(bad.values()), f"pub-{mqtt_root}")
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM dead_letters") >= len(bad),
            what="dead letters",
        )
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT reason, topic, payload, detail, payload_bytes, payload_sha256 FROM dead_letters"
        ).fetchall()
    by_reason = {row[0]: row for row in rows}
    assert set(by_reason) == set(bad)
    for reason, (topic, payload) in bad.items():
        assert by_reason[reason][1] == topic
        # An oversize payload is kept as a sample of its start, its size and its hash.
        kept = payload[:OVERSIZE_SAMPLE_BYTES] if reason == "oversize" else payload
        assert bytes(by_reason[reason][2]) == kept
        assert by_reason[reason][3]
        assert by_reason[reason][4] == len(payload)
        assert bytes(by_reason[reason][5]) == hashlib.sha256(payload).digest()
    assert stored_total(database_url) == 0


def test_unregistered_device_replayed_after_registration(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    now_ms = int(time.time() * 1000)
    message = (f"{mqtt_root}/parking/P-late/telemetry", orjson.dumps(example(Kind.PARKING, now_ms)))
    env = hub_env(database_url, mqtt_url, mqtt_root)
    with running_hub(env, tmp_path / "hub.log"):
        publish_all(mqtt_url, [message], f"pub-{mqtt_root}")
        wait_for(lambda: count(database_url, "SELECT count(*) FROM dead_letters") == 1)
    csv = tmp_path / "late.csv"
    csv.write_text("device_id,kind,lat,lon\nP-late,parking,31.3,120.6\n")
    run = [sys.executable, "-m", "hub"]
    subprocess.run([*run, "devices", "import", str(csv)], env=env, check=True)
    out = subprocess.run(
        [*run, "deadletters", "replay"], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert "1 stored, 0 still rejected" in out
    assert count(database_url, "SELECT count(*) FROM telemetry_parking") == 1
    assert count(database_url, "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL") == 0
    # A second replay finds nothing left to do.
    out = subprocess.run(
        [*run, "deadletters", "replay"], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert "0 stored" in out


def test_kill_mid_stream_loses_and_duplicates_nothing(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    register_devices(database_url)
    now_ms = int(time.time() * 1000)
    messages = telemetry(mqtt_root, 160, now_ms - 600_000)  # 4,000 messages
    env = hub_env(database_url, mqtt_url, mqtt_root)
    log = tmp_path / "hub.log"
    child = HubChild(env, log)
    child.mark()
    child.start()
    import threading

    publisher = threading.Thread(target=publish_all, args=(mqtt_url, messages, f"pub-{mqtt_root}"))
    publisher.start()
    wait_for(lambda: stored_total(database_url) > 200, what="some readings stored")
    child.kill()
    killed_at = stored_total(database_url)
    publisher.join()
    child.mark()
    child.start()
    try:
        wait_for(lambda: stored_total(database_url) >= len(messages), what="all readings")
        time.sleep(0.5)
    finally:
        child.stop()
    assert killed_at < len(messages), "the kill came too late to prove anything"
    assert stored_total(database_url) == len(messages)
    assert count(database_url, "SELECT count(*) FROM dead_letters") == 0
