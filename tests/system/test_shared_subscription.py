"""Two hub processes sharing the stream through an MQTT v5 shared subscription on Mosquitto.

The broker deals each cover's readings out to both hubs in turn. Every reading must be
stored once, and each cover judged by one hub with all of its readings: a traffic spike
(one tilted reading, level again 5 s later) repeated every two minutes never raises, but
a hub seeing only every other reading would take two spikes for a lasting tilt. A cover
that really is displaced gives one tilt and one cover_open alarm and one case, cleared
when it is back in place.

The stream is published a two-minute step at a time, a fraction of a second apart: a
reading handed from one hub to the other arrives a few hundred milliseconds after the
hub's own, well inside the rules' reorder tolerance in real time, but not if 28 minutes of
readings arrive in one second (docs/scaling.md, "Order").
"""

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from hub.cli.local_stack import free_port
from hub.devices.partition import owner_of
from tests.hub_process import (
    EventStream,
    HubChild,
    api_headers,
    count,
    hub_env,
    publish_all,
    wait_for,
)

pytestmark = pytest.mark.integration

SPIKY = [f"MH-S{i:03d}" for i in range(16)]
# Two displaced covers judged by each member (ownership is crc32 of the id, mod 2).
DISPLACED = [
    d
    for member in (0, 1)
    for d in [c for c in (f"MH-D{i:03d}" for i in range(100)) if owner_of(c, 2) == member][:2]
]
STEPS = 14  # two-minute steps: 28 minutes of readings per cover


def _register(database_url: str) -> None:
    attributes = orjson.dumps(
        {"cover_type": "storm_water", "baseline_tilt_deg": 1.0, "road_class": "main"}
    ).decode()
    with psycopg.connect(database_url) as conn:
        for device_id in SPIKY + DISPLACED:
            conn.execute(
                "INSERT INTO devices (device_id, kind, lat, lon, grid_code, class_code,"
                " department, attributes) VALUES (%s, 'manhole', 31.3, 120.6,"
                " '320506001001001', '01003', '排水管理处', %s)",
                (device_id, attributes),
            )


def _reading(
    root: str, device_id: str, ts: datetime, tilt: float, open_: bool
) -> tuple[str, bytes]:
    body = {"ts": int(ts.timestamp() * 1000), "tilt_deg": tilt, "cover_open": open_}
    return f"{root}/manhole/{device_id}/telemetry", orjson.dumps({**body, "battery_pct": 80.0})


def _stream(root: str, start: datetime) -> list[list[tuple[str, bytes]]]:
    """Readings in time order across all covers, as a city's stream interleaves them, by step."""
    steps: list[list[tuple[str, bytes]]] = []
    for step in range(STEPS):
        messages: list[tuple[str, bytes]] = []
        steps.append(messages)
        at = start + timedelta(minutes=2 * step)
        for device_id in SPIKY:
            messages.append(_reading(root, device_id, at, 46.0, False))  # a lorry's wheel
            messages.append(_reading(root, device_id, at + timedelta(seconds=5), 1.2, False))
        for device_id in DISPLACED:
            displaced = 2 <= step < 8
            tilt = 46.0 if displaced else 1.1
            messages.append(_reading(root, device_id, at, tilt, displaced))
            messages.append(_reading(root, device_id, at + timedelta(seconds=30), tilt, displaced))
    return steps


def _handoffs(log_path: Path) -> tuple[int, int]:
    """(handed to others, handed to this hub) from a stopped hub's log."""
    found = re.findall(
        r"(\d+) reading\(s\) handed to other members, (\d+) handed to this one",
        log_path.read_text(errors="replace"),
    )
    assert found, f"no hand-off summary in {log_path.name}"
    return int(found[-1][0]), int(found[-1][1])


@contextmanager
def _cluster(
    env: dict[str, str], tmp_path: Path, members: int, api_port: int | None = None
) -> Iterator[list[HubChild]]:
    """Members 0 … members-1; member 0 also serves the API when given a port."""
    with ExitStack() as stack:
        hubs: list[HubChild] = []
        for member in range(members):
            api = member == 0 and api_port is not None
            child = HubChild(
                {
                    **env,
                    "HUB_CLUSTER_MEMBERS": str(members),
                    "HUB_CLUSTER_MEMBER": str(member),
                    "HUB_MQTT_SHARED_GROUP": "hubs",
                    **({"HUB_API_PORT": str(api_port)} if api else {}),
                },
                tmp_path / f"hub{member}.log",
                api=api,
            )
            child.mark()
            child.start()
            stack.callback(child.stop)
            hubs.append(child)
        yield hubs


def test_two_hubs_share_the_stream_with_one_judge_per_device(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    _register(database_url)
    owners = {owner_of(d, 2) for d in SPIKY + DISPLACED}
    assert owners == {0, 1}, "the covers must be spread over both hubs for the test to mean much"
    env = hub_env(database_url, mqtt_url, mqtt_root)
    steps = _stream(mqtt_root, datetime.now(UTC) - timedelta(minutes=40))
    messages = [m for step in steps for m in step]
    port = free_port()
    auth = api_headers(database_url)
    with _cluster(env, tmp_path, 2, api_port=port):
        # Member 0's live stream must carry every member's alarms, each change once.
        streams = {
            d: EventStream(f"http://127.0.0.1:{port}/alarms/stream?source_id={d}", "never", auth)
            for d in DISPLACED
        }
        assert all(stream.ready.wait(10) for stream in streams.values())
        for n, step in enumerate(steps):
            publish_all(mqtt_url, step, f"pub-{mqtt_root}-{n}")
            time.sleep(0.7)
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM telemetry_manhole") == len(messages),
            what="every reading stored",
        )
        wait_for(
            lambda: (
                count(
                    database_url,
                    "SELECT count(*) FROM alarms WHERE state = 'cleared' AND case_id IS NOT NULL",
                )
                == 2 * len(DISPLACED)
            ),
            what="the displaced covers' alarms filed and cleared",
        )
    with psycopg.connect(database_url) as conn:
        alarms = conn.execute(
            "SELECT source_id, alarm_type, count(*) FROM alarms GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        cases = conn.execute(
            "SELECT a.source_id, count(DISTINCT c.id) FROM cases c"
            " JOIN alarms a ON a.case_id = c.id GROUP BY 1 ORDER BY 1"
        ).fetchall()
        stored = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, ts)) FROM telemetry_manhole"
        ).fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    assert stored == (len(messages), len(messages))
    assert dead == (0,)
    expected = [(d, t, 1) for d in DISPLACED for t in ("cover_open", "tilt")]
    assert alarms == expected, "spikes split between hubs must not look like a lasting tilt"
    assert cases == [(d, 1) for d in DISPLACED]
    judges = {owner_of(d, 2) for d in DISPLACED}
    assert judges == {0, 1}, "the displaced covers must be judged by both hubs"
    for device_id, stream in streams.items():
        raised = sorted(
            str(body["alarm"]["alarm_type"])  # type: ignore[index]
            for event, body in stream.events
            if event == "raised"
        )
        assert raised == ["cover_open", "tilt"], (device_id, stream.events)
    out = [_handoffs(tmp_path / f"hub{m}.log") for m in range(2)]
    assert out[0][0] > 0
    assert out[1][0] > 0
    # What one hub handed on, the other received (the hand-off is at least once).
    assert out[0][0] <= out[1][1]
    assert out[1][0] <= out[0][1]
