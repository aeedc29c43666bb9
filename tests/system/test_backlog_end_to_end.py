"""A backlog through a real broker and hub: a night's cabinet trip published all at once (as
after an outage) gives the trip at its event time and one 01060 case, as it would live."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from hub.devices.decode import Reading
from tests.hub_process import count, hub_env, publish_all, running_hub, wait_for
from tests.rules.test_arrival_speed_property import (
    CABINET,
    COVERS,
    LAMPS,
    Scenario,
    _ts,
    readings_of,
)
from tests.store.cases.case_fixtures import register_device

pytestmark = pytest.mark.integration

NANJING = ZoneInfo("Asia/Shanghai")


def last_night_at_22(now: datetime) -> datetime:
    """22:00 local on the latest evening at least three hours before `now`."""
    local = (now - timedelta(hours=3)).astimezone(NANJING)
    at = local.replace(hour=22, minute=0, second=0, microsecond=0)
    if at > local:
        at -= timedelta(days=1)
    return at.astimezone(UTC)


def _message(root: str, reading: Reading) -> tuple[str, bytes]:
    topic = f"{root}/{reading.kind.value}/{reading.device_id}/telemetry"
    return topic, reading.payload.model_dump_json(exclude_none=True).encode()


def test_a_backlog_trip_is_one_case_at_its_event_time(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    register_device(database_url, CABINET, kind="cabinet", class_code="01060")
    for lamp in LAMPS:
        register_device(
            database_url,
            lamp,
            kind="lighting",
            class_code="01037",
            attributes='{"rated_power_w": 100}',
            parent_id=CABINET,
        )
    for cover in COVERS:
        register_device(database_url, cover)
    start = last_night_at_22(datetime.now(UTC))
    # The contactor opens at minute 5 and closes at 45; one lamp is briefly out before.
    readings = readings_of(Scenario(60, (5, 45), (2, 1, 3), None), start)
    env = hub_env(database_url, mqtt_url, mqtt_root, HUB_ALARM_TICK_S="0.2")
    with running_hub(env, tmp_path / "hub.log"):
        publish_all(mqtt_url, [_message(mqtt_root, r) for r in readings], f"pub-{mqtt_root}")
        wait_for(
            lambda: (
                count(database_url, "SELECT count(*) FROM telemetry_lighting") == 60 * len(LAMPS)
            ),
            60,
            "the backlog stored",
        )
        wait_for(
            lambda: (
                count(
                    database_url,
                    "SELECT count(*) FROM alarms WHERE alarm_type = 'contactor_anomaly'"
                    " AND case_id IS NOT NULL",
                )
                == 1
            ),
            60,
            "the contactor anomaly joined to the case",
        )
    with psycopg.connect(database_url) as conn:
        alarms = conn.execute(
            "SELECT alarm_type, source_id, raised_at, case_id FROM alarms ORDER BY alarm_type"
        ).fetchall()
        cases = conn.execute("SELECT id, class_code, department FROM cases").fetchall()
    (case,) = cases
    assert case[1:] == ("01060", "street_lighting")
    types = {a[0] for a in alarms}
    assert "lamp_out" not in types  # covered by the trip, or too short on its own
    (trip,) = [a for a in alarms if a[0] == "cabinet_trip"]
    # 60 s of event time after the fifth of six lamps went dark, as when played live.
    assert trip[2] == _ts(LAMPS[4], 6, start)
    assert {a[0] for a in alarms if a[3] == case[0]} >= {"cabinet_trip", "contactor_anomaly"}
