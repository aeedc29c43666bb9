"""Commands per target are ordered: supersede, and online state from the newest evidence."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.devices.lighting import CommandAction, CommandState
from hub.store import lighting_commands as command_store
from hub.store.database import Database
from tests.services.test_lighting_command_effect import OBEYS, register

pytestmark = pytest.mark.integration


def test_a_newer_command_supersedes_and_telemetry_beats_a_stale_offline(database_url: str) -> None:
    register(database_url)
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO device_status (device_id, online, changed_at, received_at)"
            " VALUES (%s, false, %s, %s)",
            (OBEYS, now - timedelta(hours=1), now - timedelta(hours=1)),
        )
        ttl = timedelta(hours=1)
        first = command_store.create_command_request(
            conn, target=OBEYS, action=CommandAction.ON, params={}, now=now, ttl=ttl, max_attempts=3
        )
        (due,) = command_store.fetch_due_commands(conn, now)
        assert due.device_online is False  # the retained offline is all we know
        conn.execute(
            'INSERT INTO telemetry_lighting (device_id, ts, received_at, "on", dim_pct,'
            " voltage_v, current_a, power_w, power_factor, energy_kwh)"
            " VALUES (%s, %s, %s, true, 100, 220, 0.4, 90, 0.95, 1)",
            (OBEYS, now - timedelta(minutes=1), now),
        )
        second = command_store.create_command_request(
            conn,
            target=OBEYS,
            action=CommandAction.DIM,
            params={"dim_pct": 30},
            now=now + timedelta(seconds=1),
            ttl=ttl,
            max_attempts=3,
        )
        (due,) = command_store.fetch_due_commands(conn, now + timedelta(seconds=2))
        assert due.command_id == second.commands[0].command_id
        assert due.device_online is True  # telemetry newer than the offline status
        (older,) = command_store.list_commands(conn, request_id=first.request_id)
        assert older.state == CommandState.SUPERSEDED.value
        assert older.detail == f"superseded by request {second.request_id}"


def test_a_schedule_for_a_target_that_names_nothing_is_refused(database_url: str) -> None:
    register(database_url)
    db = Database(database_url, max_size=2)
    db.open()
    try:
        with TestClient(create_app(db, CollectorRegistry(), routers=domain_routers())) as api:
            body = {"name": "night", "action": "on", "sun_event": "dusk", "offset_min": 5}
            refused = api.post("/lighting/schedules", json={**body, "target": "group:nosuch"})
            assert refused.status_code == 422
            made = api.post("/lighting/schedules", json={**body, "target": OBEYS})
            assert made.status_code == 201, made.text
    finally:
        db.close()
