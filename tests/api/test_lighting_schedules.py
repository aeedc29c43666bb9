"""Schedules through the API and the control pass: next fire times, full update, delete,
and a dusk-on created after dusk acting at once (real PostgreSQL)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from astral import Observer
from astral.sun import dusk
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.access_table import ROUTE_ACCESS
from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.devices.lighting import CommandAction, SunEvent
from hub.services.lighting import LightingControl
from hub.store import lighting_schedules as schedule_store
from hub.store.database import Database
from tests.services.test_lighting_command_effect import DISOBEYS, OBEYS, register

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")


def control(db: Database) -> LightingControl:
    return LightingControl(
        db,
        root="city",
        publish=lambda topic, body: True,
        zone=SHANGHAI,
        ack_timeout=timedelta(seconds=30),
        ttl=timedelta(hours=1),
        max_attempts=3,
    )


def test_schedules_show_next_fire_times_and_can_be_changed_and_deleted(database_url: str) -> None:
    register(database_url)
    db = Database(database_url, max_size=2)
    db.open()
    try:
        with TestClient(create_app(db, CollectorRegistry(), routers=domain_routers())) as api:
            made = api.post(
                "/lighting/schedules",
                json={
                    "name": "night",
                    "target": OBEYS,
                    "action": "on",
                    "dim_pct": 80,
                    "sun_event": "dusk",
                    "offset_min": 5,
                },
            )
            assert made.status_code == 201, made.text
            night = made.json()
            assert night["params"] == {"dim_pct": 80}  # on with a level, as a command takes it
            next_at = datetime.fromisoformat(night["next_fire_at"])
            local_day = next_at.astimezone(SHANGHAI).date()
            lamp = Observer(latitude=31.301, longitude=120.601)  # the target's own position
            expected = dusk(lamp, local_day, tzinfo=SHANGHAI) + timedelta(minutes=5)
            assert abs(next_at - expected) < timedelta(seconds=1)
            assert next_at > datetime.now(UTC)

            sid = night["schedule_id"]
            changed = api.patch(
                f"/lighting/schedules/{sid}",
                json={"at_local": "23:50", "action": "dim", "dim_pct": 30, "name": "late dim"},
            )
            assert changed.status_code == 200, changed.text
            body = changed.json()
            assert (body["name"], body["action"], body["params"]) == (
                "late dim",
                "dim",
                {"dim_pct": 30},
            )
            assert (body["at_local"], body["sun_event"], body["offset_min"]) == (
                "23:50:00",
                None,
                5,
            )
            assert body["next_fire_local"].endswith("23:55:00+08:00")

            refused = api.patch(f"/lighting/schedules/{sid}", json={"action": "off", "dim_pct": 10})
            assert refused.status_code == 422
            nowhere = api.patch(f"/lighting/schedules/{sid}", json={"target": "group:nosuch"})
            assert nowhere.status_code == 422
            off = api.patch(f"/lighting/schedules/{sid}", json={"action": "off", "enabled": False})
            assert off.status_code == 200, off.text
            assert (off.json()["params"], off.json()["next_fire_at"]) == ({}, None)

            gone = api.delete(f"/lighting/schedules/{sid}")
            assert gone.status_code == 200, gone.text
            assert api.delete(f"/lighting/schedules/{sid}").status_code == 404
            assert (
                api.patch(f"/lighting/schedules/{sid}", json={"enabled": True}).status_code == 404
            )
            assert api.get("/lighting/schedules").json() == []
        assert ("DELETE", "/lighting/schedules/{schedule_id}") in ROUTE_ACCESS
    finally:
        db.close()


def test_a_dusk_on_created_after_dusk_turns_the_lamps_on_at_once(database_url: str) -> None:
    register(database_url)
    day = date(2026, 1, 10)
    evening = datetime(2026, 1, 10, 21, 0, tzinfo=SHANGHAI)  # dusk was about 17:35
    db = Database(database_url, max_size=2)
    db.open()
    try:
        with db.connection() as conn:
            night = schedule_store.insert_schedule(
                conn,
                name="night",
                target=OBEYS,
                action=CommandAction.ON,
                params={},
                at_local=None,
                sun_event=SunEvent.DUSK,
                offset_min=5,
            )
            later = schedule_store.insert_schedule(
                conn,
                name="midnight",
                target=DISOBEYS,
                action=CommandAction.DIM,
                params={"dim_pct": 50},
                at_local=time(0, 0),
                sun_event=None,
                offset_min=0,
            )
        hub = control(db)
        (request,) = hub.fire_schedules(evening)  # the midnight dim does not hold at 21:00
        assert request.request_id.startswith(f"schedule{night.schedule_id}-")
        assert [c.device_id for c in request.commands] == [OBEYS]
        assert hub.fire_schedules(evening + timedelta(minutes=1)) == []  # once
        with psycopg.connect(database_url) as conn:
            fired = conn.execute(
                "SELECT last_fired_at FROM lighting_schedules WHERE schedule_id = %s",
                (night.schedule_id,),
            ).fetchone()
        lamp = Observer(latitude=31.301, longitude=120.601)
        assert fired is not None
        assert abs(
            fired[0] - (dusk(lamp, day, tzinfo=SHANGHAI) + timedelta(minutes=5))
        ) < timedelta(seconds=1)
        # The midnight dim fires at its own time, on the right day.
        (dimmed,) = hub.fire_schedules(datetime(2026, 1, 11, 0, 0, 30, tzinfo=SHANGHAI))
        assert dimmed.request_id.startswith(f"schedule{later.schedule_id}-")
    finally:
        db.close()


def test_calendars_and_scenes_through_the_api_and_the_control_pass(database_url: str) -> None:
    register(database_url)
    db = Database(database_url, max_size=2)
    db.open()
    holiday = date(2030, 10, 1)
    try:
        with TestClient(create_app(db, CollectorRegistry(), routers=domain_routers())) as api:
            made = api.post(
                "/lighting/calendars",
                json={"name": "national-day", "dates": [holiday.isoformat()], "annual": ["01-01"]},
            )
            assert made.status_code == 201, made.text
            bad = api.post("/lighting/calendars", json={"name": "bad", "annual": ["02-30"]})
            assert bad.status_code == 422
            scene = api.post(
                "/lighting/scenes",
                json={
                    "name": "festival",
                    "steps": [
                        {"offset_min": 0, "dim_pct": 100},
                        {"offset_min": 240, "dim_pct": 50},
                    ],
                },
            )
            assert scene.status_code == 201, scene.text
            assert [c["name"] for c in api.get("/lighting/calendars").json()] == ["national-day"]
            assert [s["name"] for s in api.get("/lighting/scenes").json()] == ["festival"]
            body = {
                "name": "festival nights",
                "target": OBEYS,
                "action": "dim",
                "sun_event": "dusk",
                "calendar": "national-day",
                "scene": "festival",
            }
            unknown = api.post("/lighting/schedules", json={**body, "calendar": "nosuch"})
            assert unknown.status_code == 422
            assert "nosuch" in unknown.text
            no_scene = api.post("/lighting/schedules", json={**body, "scene": "nosuch"})
            assert no_scene.status_code == 422
            with_level = api.post("/lighting/schedules", json={**body, "dim_pct": 30})
            assert with_level.status_code == 422
            created = api.post("/lighting/schedules", json=body)
            assert created.status_code == 201, created.text
            out = created.json()
            assert (out["calendar"], out["calendar_mode"], out["scene"], out["weekdays"]) == (
                "national-day",
                "only",
                "festival",
                [],
            )
            next_local = datetime.fromisoformat(out["next_fire_local"])
            # a holiday night: 1 January or 1 October 2030 (whichever comes first from today)
            assert (next_local.month, next_local.day) in {(1, 1), (10, 1)}
            assert out["next_fire_command"] == {"action": "dim", "dim_pct": 100.0}
            in_use = api.delete("/lighting/calendars/national-day")
            assert in_use.status_code == 409
            assert api.delete("/lighting/scenes/nosuch").status_code == 404
            weekdays = api.patch(
                f"/lighting/schedules/{out['schedule_id']}",
                json={"weekdays": [6, 7], "calendar_mode": "except"},
            )
            assert weekdays.status_code == 200, weekdays.text
            assert weekdays.json()["weekdays"] == [6, 7]
            nonsense = api.patch(
                f"/lighting/schedules/{out['schedule_id']}", json={"weekdays": [0]}
            )
            assert nonsense.status_code == 422
            back = api.patch(
                f"/lighting/schedules/{out['schedule_id']}",
                json={"weekdays": [], "calendar_mode": "only"},
            )
            assert back.status_code == 200, back.text
        for route in ("/lighting/calendars", "/lighting/scenes"):
            assert ("POST", route) in ROUTE_ACCESS
        # The control pass fires the scene's steps on the holiday night, nothing the next.
        lamp = Observer(latitude=31.301, longitude=120.601)
        evening = dusk(lamp, holiday, tzinfo=SHANGHAI)
        hub = control(db)
        (first,) = hub.fire_schedules(evening + timedelta(minutes=1))
        assert first.action is CommandAction.DIM
        assert [c.params for c in first.commands] == [{"dim_pct": 100.0}]
        assert hub.fire_schedules(evening + timedelta(minutes=120)) == []
        (second,) = hub.fire_schedules(evening + timedelta(minutes=241))
        assert [c.params for c in second.commands] == [{"dim_pct": 50.0}]
        next_evening = dusk(lamp, holiday + timedelta(days=1), tzinfo=SHANGHAI)
        assert hub.fire_schedules(next_evening + timedelta(minutes=1)) == []
    finally:
        db.close()
