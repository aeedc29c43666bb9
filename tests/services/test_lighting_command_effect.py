"""Commanded vs reported state: pure judgement, and lamps that obey (or not) over a real hub."""

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.devices.kinds import Kind
from hub.devices.lighting import (
    CommandAction,
    CommandEffect,
    EffectRules,
    ReportedState,
    expected_effect,
    judge_effect,
)
from hub.devices.registry import DeviceRecord
from hub.settings import MqttEndpoint
from hub.store.database import Database
from simulators.lighting import command_ack, commanded_lamp_state
from tests.hub_process import hub_env, running_hub, wait_for

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
RULES = EffectRules(window=timedelta(seconds=60))


def report(
    s: int, *, on: bool, dim: float | None = 100.0, power: float | None = 90.0
) -> ReportedState:
    return ReportedState(T0 + timedelta(seconds=s), T0 + timedelta(seconds=s), on, dim, power)


def test_a_dim_is_effective_once_a_report_shows_the_level() -> None:
    expected = expected_effect(Kind.LIGHTING, CommandAction.DIM, 50.0)
    assert (
        judge_effect(expected, [report(5, on=True)], T0, T0 + timedelta(seconds=10), RULES) is None
    )
    reports = [report(5, on=True), report(8, on=True, dim=50.0, power=45.0)]
    assert (
        judge_effect(expected, reports, T0, T0 + timedelta(seconds=10), RULES)
        is CommandEffect.EFFECTIVE
    )


def test_on_judged_by_report_and_by_power_after_the_window() -> None:
    expected = expected_effect(Kind.LIGHTING, CommandAction.ON, None)
    dark_by_power = [report(5, on=True, power=0.0)]
    late = T0 + timedelta(seconds=61)
    assert judge_effect(expected, dark_by_power, T0, late, RULES) is CommandEffect.NOT_EFFECTIVE
    assert judge_effect(expected, [], T0, late, RULES) is CommandEffect.UNVERIFIED
    # on with a dim level expects that level, as a schedule's on does
    with_level = expected_effect(Kind.LIGHTING, CommandAction.ON, 30.0)
    assert judge_effect(with_level, [report(5, on=True, dim=30.0, power=27.0)], T0, T0, RULES) is (
        CommandEffect.EFFECTIVE
    )


def test_a_cabinet_is_judged_by_its_contactor() -> None:
    expected = expected_effect(Kind.CABINET, CommandAction.OFF, None)
    closed = [report(5, on=True, dim=None)]
    opened = [report(5, on=False, dim=None)]
    late = T0 + timedelta(seconds=61)
    assert judge_effect(expected, closed, T0, late, RULES) is CommandEffect.NOT_EFFECTIVE
    assert judge_effect(expected, opened, T0, T0, RULES) is CommandEffect.EFFECTIVE


CABINET = "CAB-E1"
OBEYS = "LMP-E1"
DISOBEYS = "LMP-E2"
GRID = "320506001001001"


class ControllerLamps:
    """Lamp controllers over the real broker: take each command's state with the simulator's
    own rules (`simulators.lighting`), ack it, and report every 0.3 s; one acks but stays dark."""

    def __init__(self, mqtt_url: str, root: str) -> None:
        endpoint = MqttEndpoint(mqtt_url)
        self._root = root
        self.state: dict[str, tuple[bool, float]] = {OBEYS: (True, 100.0), DISOBEYS: (False, 0.0)}
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"lamps-{root}")
        self._client.on_message = self._on_message
        self._client.connect(endpoint.host, endpoint.port)
        for lamp in self.state:
            self._client.subscribe(f"{root}/lighting/{lamp}/cmd", qos=1)
        self._client.loop_start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._report, daemon=True)
        self._thread.start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        lamp = message.topic.split("/")[2]
        document = orjson.loads(message.payload)
        state = commanded_lamp_state(document)
        if state is not None and lamp == OBEYS:
            self.state[lamp] = state
        ack = command_ack(document, int(time.time() * 1000))
        client.publish(f"{self._root}/lighting/{lamp}/cmd/ack", orjson.dumps(ack), qos=1)

    def _report(self) -> None:
        while not self._stop.wait(0.3):
            for lamp, (on, dim) in list(self.state.items()):
                power = 100.0 * dim / 100.0 if on else 0.0
                body = {
                    "ts": int(time.time() * 1000),
                    "on": on,
                    "dim_pct": dim,
                    "voltage_v": 220.0,
                    "current_a": round(power / 220.0 / 0.95, 3),
                    "power_w": power,
                    "power_factor": 0.95 if power else 0.0,
                    "energy_kwh": 10.0,
                }
                self._client.publish(
                    f"{self._root}/lighting/{lamp}/telemetry", orjson.dumps(body), qos=1
                )

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._client.loop_stop()
        self._client.disconnect()


def register(database_url: str) -> None:
    db = Database(database_url, max_size=2)
    db.open()
    try:
        db.upsert_devices(
            [
                DeviceRecord(
                    device_id=CABINET,
                    kind=Kind.CABINET,
                    lat=31.30,
                    lon=120.60,
                    grid_code=GRID,
                    class_code="01060",
                    attributes={"circuits": 1},
                ),
                *(
                    DeviceRecord(
                        device_id=lamp,
                        kind=Kind.LIGHTING,
                        lat=31.301,
                        lon=120.601,
                        grid_code=GRID,
                        class_code="01037",
                        parent_id=CABINET,
                        attributes={"rated_power_w": 100, "circuit_id": f"{CABINET}-1"},
                    )
                    for lamp in (OBEYS, DISOBEYS)
                ),
            ]
        )
    finally:
        db.close()


@pytest.mark.integration
def test_obeyed_command_is_effective_and_an_ignored_one_raises_an_alarm(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    register(database_url)
    env = hub_env(
        database_url,
        mqtt_url,
        mqtt_root,
        HUB_ALARM_TICK_S="0.2",
        HUB_LIGHTING_CONTROL_TICK_S="0.2",
        HUB_COMMAND_EFFECT_WINDOW_S="3",
        HUB_MODBUS_ENABLED="false",
    )
    lamps = ControllerLamps(mqtt_url, mqtt_root)
    db = Database(database_url, max_size=2)
    db.open()
    try:
        with (
            running_hub(env, tmp_path / "hub.log"),
            TestClient(create_app(db, CollectorRegistry(), routers=domain_routers())) as api,
        ):
            dim = api.post(
                "/lighting/commands", json={"target": OBEYS, "action": "dim", "dim_pct": 50}
            )
            on = api.post("/lighting/commands", json={"target": DISOBEYS, "action": "on"})
            assert (dim.status_code, on.status_code) == (201, 201), dim.text + on.text

            def effect(lamp: str) -> object:
                return api.get(f"/lighting/devices/{lamp}/commands").json()[0]["effect"]

            wait_for(lambda: effect(OBEYS) == "effective", 20, "the dim taking effect")
            wait_for(lambda: effect(DISOBEYS) == "not_effective", 20, "the ignored on judged")
            (ignored,) = api.get(f"/lighting/devices/{DISOBEYS}/commands").json()
            assert ignored["state"] == "acked"
            assert ignored["effect_evidence"]["expected"] == {"on": True}
            assert ignored["effect_evidence"]["reports"][-1]["on"] is False

            faults = api.get("/lighting/faults").json()
            alarms = [f for f in faults if f["alarm_type"] == "command_not_effective"]
            assert [f["source_id"] for f in alarms] == [DISOBEYS]
            assert alarms[0]["details"]["command_id"] == ignored["command_id"]
            assert alarms[0]["evidence"], "the readings that show the lamp stayed dark"
    finally:
        lamps.close()
        db.close()
