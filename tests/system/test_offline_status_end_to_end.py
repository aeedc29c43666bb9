"""A device's own `offline` status through a real broker and hub: the offline alarm is raised
at the status's ts and cleared by the next reading's, however fast the past is replayed."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.hub_process import count, hub_env, publish_all, running_hub, wait_for
from tests.store.cases.case_fixtures import register_device

pytestmark = pytest.mark.integration

COVER = "mh-status-1"
QUIET = "mh-status-2"


def _ms(ts: datetime) -> int:
    return round(ts.timestamp() * 1000)


def _reading(root: str, device_id: str, ts: datetime) -> tuple[str, bytes]:
    body = {"ts": _ms(ts), "tilt_deg": 0.5, "cover_open": False, "battery_pct": 90}
    return f"{root}/manhole/{device_id}/telemetry", json.dumps(body).encode()


def _status(root: str, device_id: str, state: str, ts: datetime | None) -> tuple[str, bytes]:
    body = state.encode() if ts is None else json.dumps({"state": state, "ts": _ms(ts)}).encode()
    return f"{root}/manhole/{device_id}/status", body


def test_an_offline_status_raises_at_its_ts_in_a_fast_replay(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    register_device(database_url, COVER)
    register_device(database_url, QUIET)
    # Three hours of the recent past, every 5 minutes, replayed in a second or two.
    start = (datetime.now(UTC) - timedelta(hours=4)).replace(microsecond=0)
    down, up = start + timedelta(minutes=60), start + timedelta(minutes=150)
    messages: list[tuple[str, bytes]] = []
    for step in range(36):
        ts = start + timedelta(minutes=5 * step)
        if ts == down:
            messages.append(_status(mqtt_root, COVER, "offline", ts + timedelta(seconds=1)))
        if ts == up:
            messages.append(_status(mqtt_root, COVER, "online", ts))
        if not down <= ts < up:
            messages.append(_reading(mqtt_root, COVER, ts + timedelta(seconds=2)))
        messages.append(_reading(mqtt_root, QUIET, ts + timedelta(seconds=3)))
    # A bare `offline` (as a will) has no event time: the rules leave it to the silence check.
    messages.append(_status(mqtt_root, QUIET, "offline", None))
    env = hub_env(database_url, mqtt_url, mqtt_root, HUB_ALARM_TICK_S="0.2")
    with running_hub(env, tmp_path / "hub.log"):
        publish_all(mqtt_url, messages, f"pub-{mqtt_root}")
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM telemetry_manhole") == 36 + 18,
            60,
            "the replay stored",
        )
        wait_for(
            lambda: (
                count(database_url, "SELECT count(*) FROM alarms WHERE cleared_at IS NOT NULL") == 1
            ),
            60,
            "the offline alarm cleared",
        )
    with psycopg.connect(database_url) as conn:
        alarms = conn.execute(
            "SELECT source_id, alarm_type, raised_at, cleared_at FROM alarms"
        ).fetchall()
    assert alarms == [
        (COVER, "offline", down + timedelta(seconds=1), up),
    ]
