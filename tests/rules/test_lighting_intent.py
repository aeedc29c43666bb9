"""Intent suppresses its own consequences: commanded off and lockouts raise nothing, then normal."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.lighting import CabinetPayload
from hub.rules.alarm_types import AlarmType
from hub.rules.interface import DeviceInfo
from hub.rules.lighting_context import INTENT, IntentWindow
from hub.store import lighting as store
from hub.store.database import Database
from tests.rules.test_lighting_rules import LAT, LON, NIGHT, _engine, _feed, _raised, _reading
from tests.services.test_lighting_command_effect import CABINET, DISOBEYS, OBEYS, register


@pytest.fixture(autouse=True)
def no_intent() -> Iterator[None]:
    INTENT.replace({})
    yield
    INTENT.replace({})


def _cabinet(t: datetime, *, on: bool) -> Reading:
    payload = CabinetPayload(
        ts=round(t.timestamp() * 1000),
        contactor_on=on,
        door_open=False,
        voltage_a_v=220,
        voltage_b_v=220,
        voltage_c_v=220,
        current_a_a=0,
        current_b_a=0,
        current_c_a=0,
        power_w=0,
        energy_kwh=100,
    )
    return Reading(Kind.CABINET, "CAB-00001", Channel.TELEMETRY, t, t, payload)


def test_a_commanded_cabinet_off_at_night_raises_nothing_until_the_window_ends() -> None:
    cabinet = DeviceInfo("CAB-00001", Kind.CABINET, None, {}, LAT, LON)
    lamps = [
        DeviceInfo(f"LMP-{i:06d}", Kind.LIGHTING, "CAB-00001", {"rated_power_w": 100}, LAT, LON)
        for i in range(5)
    ]
    engine = _engine([cabinet, *lamps], NIGHT)
    off_until = NIGHT + timedelta(minutes=30)
    INTENT.replace(
        {"CAB-00001": (IntentWindow(NIGHT - timedelta(minutes=1), off_until, "command c1"),)}
    )
    during: list[Reading] = []
    for k in range(0, 30, 2):
        t = NIGHT + timedelta(minutes=k)
        during.append(_cabinet(t, on=False))
        during += [_reading(lamp.device_id, t, supply=False) for lamp in lamps]
    assert _raised(_feed(engine, during)) == set()
    after: list[Reading] = []
    for k in range(30, 50, 2):
        t = NIGHT + timedelta(minutes=k)
        after.append(_cabinet(t, on=False))
        after += [_reading(lamp.device_id, t, supply=False) for lamp in lamps]
    raised = _raised(_feed(engine, after))
    assert ("CAB-00001", AlarmType.CONTACTOR_ANOMALY) in raised
    assert ("CAB-00001", AlarmType.CABINET_TRIP) in raised


@pytest.mark.integration
def test_lockouts_and_cancel_through_the_api_become_the_rules_windows(database_url: str) -> None:
    register(database_url)
    db = Database(database_url, max_size=2)
    db.open()
    try:
        with TestClient(create_app(db, CollectorRegistry(), routers=domain_routers())) as api:
            now = datetime.now(UTC)
            ends = now + timedelta(hours=2)
            made = api.post(
                "/lighting/lockouts",
                json={"target": CABINET, "ends_at": ends.isoformat(), "reason": "cable repair"},
            )
            assert made.status_code == 201, made.text
            lockout = made.json()
            assert lockout["device_ids"] == sorted([CABINET, OBEYS, DISOBEYS])
            bad = api.post(
                "/lighting/lockouts", json={"target": "nowhere", "ends_at": ends.isoformat()}
            )
            assert bad.status_code == 422
            off = api.post("/lighting/commands", json={"target": OBEYS, "action": "off"}).json()
            dim = api.post(
                "/lighting/commands", json={"target": DISOBEYS, "action": "dim", "dim_pct": 20}
            ).json()
            (dim_command,) = dim["commands"]
            cancelled = api.delete(f"/lighting/commands/{dim_command['command_id']}")
            assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
            again = api.delete(f"/lighting/commands/{dim_command['command_id']}")
            assert (again.status_code, again.json()["state"]) == (200, "cancelled")
            assert api.delete("/lighting/commands/nosuch").status_code == 404
            with psycopg.connect(database_url) as conn:
                windows = store.load_intent(conn, datetime.now(UTC))
            assert {w.why for w in windows[CABINET]} == {f"lockout {lockout['lockout_id']}"}
            (off_command,) = off["commands"]
            assert f"command {off_command['command_id']}" in {w.why for w in windows[OBEYS]}
            with psycopg.connect(database_url) as conn:
                inside = store.intent_by_cabinet(conn, {OBEYS: windows[OBEYS]})
            assert inside == {CABINET: windows[OBEYS]}  # the lamp's cabinet knows of it
            ended = api.delete(f"/lighting/lockouts/{lockout['lockout_id']}")
            assert ended.status_code == 200
            assert api.get("/lighting/lockouts").json() == []
            with psycopg.connect(database_url) as conn:
                windows = store.load_intent(conn, datetime.now(UTC))
            (window,) = windows[CABINET]
            assert window.ends_at is not None
            assert window.ends_at <= datetime.now(UTC)
    finally:
        db.close()
