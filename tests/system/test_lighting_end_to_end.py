"""Lighting on the real broker and database: Modbus polling, commands, crew alerts, the API."""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import psycopg
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.cli.local_stack import free_port
from hub.devices.decode import DecodeLimits
from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.ingest.metrics import IngestMetrics
from hub.ingest.modbus import ModbusPoller, ModbusTarget
from hub.ingest.pipeline import IngestPipeline, KindIndex
from hub.settings import MqttEndpoint
from hub.store import lighting_energy as energy_store
from hub.store.database import Database
from hub.store.telemetry import ReconnectingWriter
from simulators.modbus import CabinetModbusServer
from tests.hub_process import count, hub_env, running_hub, wait_for

pytestmark = pytest.mark.integration

CABINET = "CAB-T1"
LAMP = "LMP-T1"
GRID = "320506001001001"


def cabinet_body(ts: datetime, *, door_open: bool) -> dict[str, object]:
    return {
        "ts": int(ts.timestamp() * 1000),
        "contactor_on": False,
        "door_open": door_open,
        "voltage_a_v": 220.1,
        "voltage_b_v": 219.9,
        "voltage_c_v": 220.4,
        "current_a_a": 0.0,
        "current_b_a": 0.0,
        "current_c_a": 0.0,
        "power_w": 0,
        "energy_kwh": 1234.5,
    }


def register(database_url: str, modbus_port: int | None) -> None:
    cabinet_attrs: dict[str, object] = {"circuits": 1}
    if modbus_port is not None:
        cabinet_attrs |= {"modbus_host": "127.0.0.1", "modbus_port": modbus_port, "modbus_unit": 1}
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
                    department="市政照明管理处",
                    attributes=cabinet_attrs,
                ),
                DeviceRecord(
                    device_id=LAMP,
                    kind=Kind.LIGHTING,
                    lat=31.301,
                    lon=120.601,
                    grid_code=GRID,
                    class_code="01037",
                    parent_id=CABINET,
                    attributes={"rated_power_w": 100, "circuit_id": f"{CABINET}-1"},
                ),
            ]
        )
    finally:
        db.close()


def test_poller_stores_what_the_simulator_serves_and_counts_failures(database_url: str) -> None:
    register(database_url, None)
    port = free_port()
    server = CabinetModbusServer("127.0.0.1", {CABINET: (port, 1)})
    server.start()
    db = Database(database_url, max_size=2)
    db.open()
    sink = ReconnectingWriter(database_url)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        server.update(CABINET, cabinet_body(now, door_open=True))
        kinds = KindIndex(db.fetch_kind_index, db.fetch_all_ids, 5.0)
        kinds.refresh(force=True)
        pipeline = IngestPipeline(
            sink=sink, kinds=kinds, root="city", limits=DecodeLimits(), metrics=IngestMetrics()
        )
        dead = ModbusTarget("CAB-GONE", 1, host="127.0.0.1", port=free_port())
        poller = ModbusPoller(
            [ModbusTarget(CABINET, 1, host="127.0.0.1", port=port), dead],
            submit=pipeline.submit,
            root="city",
            timeout_s=0.5,
            retries=1,
            retry_base_s=0.01,
        )
        stop = threading.Event()
        assert poller.poll_cabinet(poller._client(poller.targets[0]), poller.targets[0], stop)
        assert not poller.poll_cabinet(poller._client(dead), dead, stop)
        assert pipeline.flush() == 1
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT ts, door_open, contactor_on, voltage_a_v, energy_kwh, extra ->> 'source'"
                " FROM telemetry_cabinet WHERE device_id = %s",
                (CABINET,),
            ).fetchone()
        assert row is not None
        assert row[0] == now
        assert row[1:3] == (True, False)
        assert row[3] == pytest.approx(220.1, abs=0.01)
        assert row[4] == pytest.approx(1234.5)
        assert row[5] == "modbus"
        figures = {s.cabinet_id: s for s in poller.status()}
        assert (figures[CABINET].polls, figures[CABINET].errors) == (1, 0)
        assert (figures["CAB-GONE"].errors, figures["CAB-GONE"].consecutive_failures) == (1, 1)
        assert figures["CAB-GONE"].next_poll_in_s > 30  # backed off beyond the interval
    finally:
        server.stop()
        sink.close()
        db.close()


def stored_at(database_url: str, ts: datetime) -> Callable[[], bool]:
    """Whether the cabinet's reading of `ts` is stored."""
    query = f"SELECT count(*) FROM telemetry_cabinet WHERE ts = '{ts.isoformat()}'"
    return lambda: count(database_url, query) == 1


class FakeLamp:
    """A lamp controller: acknowledges every command it receives, over the real broker."""

    def __init__(self, mqtt_url: str, root: str, received: list[dict[str, object]]) -> None:
        endpoint = MqttEndpoint(mqtt_url)
        self._root = root
        self.received = received
        self.alerts: list[tuple[str, dict[str, object]]] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"lamp-{root}")
        self._client.on_message = self._on_message
        self._client.connect(endpoint.host, endpoint.port)
        self._client.subscribe(f"{root}/lighting/{LAMP}/cmd", qos=1)
        self._client.subscribe(f"{root}/alerts/lighting/#", qos=1)
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        body = orjson.loads(message.payload)
        if message.topic.startswith(f"{self._root}/alerts/"):
            self.alerts.append((message.topic, body))
            return
        self.received.append(body)
        ack = {"ts": int(time.time() * 1000), "command_id": body["command_id"], "result": "ok"}
        client.publish(f"{self._root}/lighting/{LAMP}/cmd/ack", orjson.dumps(ack), qos=1)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def test_hub_polls_cabinets_alerts_crews_and_round_trips_commands(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    modbus_port = free_port()
    register(database_url, modbus_port)
    server = CabinetModbusServer("127.0.0.1", {CABINET: (modbus_port, 1)})
    server.start()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=300)
    server.update(CABINET, cabinet_body(start, door_open=True))
    env = hub_env(
        database_url,
        mqtt_url,
        mqtt_root,
        HUB_ALARM_TICK_S="0.2",
        HUB_MODBUS_POLL_INTERVAL_S="0.2",
        HUB_LIGHTING_CONTROL_TICK_S="0.2",
    )
    received: list[dict[str, object]] = []
    lamp = FakeLamp(mqtt_url, mqtt_root, received)
    db = Database(database_url, max_size=2)
    db.open()
    try:
        with (
            running_hub(env, tmp_path / "hub.log"),
            TestClient(create_app(db, CollectorRegistry(), routers=domain_routers())) as api,
        ):
            # the door stays open for 300 s of the cabinet's own clock: past the 120 s debounce
            for step_s in (0, 150, 300):
                server.update(
                    CABINET, cabinet_body(start + timedelta(seconds=step_s), door_open=True)
                )
                wait_for(
                    stored_at(database_url, start + timedelta(seconds=step_s)),
                    20,
                    f"the Modbus reading at +{step_s} s",
                )
            wait_for(
                lambda: any(t.endswith(f"/{CABINET}/door_open") for t, _ in lamp.alerts),
                20,
                "the door_open crew alert on MQTT",
            )
            topic, alert = next(a for a in lamp.alerts if a[0].endswith("/door_open"))
            assert topic == f"{mqtt_root}/alerts/lighting/{CABINET}/door_open"
            assert alert["alert"] == "new"
            since = datetime.fromisoformat(str(alert["since"]))
            assert start <= since <= start + timedelta(seconds=300)
            assert isinstance(alert["location"], dict)
            assert alert["location"]["grid_code"] == GRID
            assert alert["evidence"]

            faults = api.get(
                "/lighting/faults", params={"lat": 31.30, "lon": 120.60, "order": "distance"}
            ).json()
            assert (faults[0]["source_id"], faults[0]["alarm_type"]) == (CABINET, "door_open")
            assert faults[0]["distance_m"] == pytest.approx(0.0, abs=1.0)
            assert faults[0]["location"]["grid_code"] == GRID

            created = api.post(
                "/lighting/commands",
                json={"target": f"{CABINET}-1", "action": "dim", "dim_pct": 50},
            )
            assert created.status_code == 201, created.text
            (command,) = created.json()["commands"]
            assert (command["device_id"], command["state"]) == (LAMP, "pending")

            def state() -> str:
                history = api.get(f"/lighting/devices/{LAMP}/commands").json()
                return str(history[0]["state"])

            wait_for(lambda: state() == "acked", 20, "the command's acknowledgement")
            assert received[0]["command_id"] == command["command_id"]
            assert (received[0]["action"], received[0]["dim_pct"]) == ("dim", 50.0)
            (done,) = api.get("/lighting/commands", params={"state": "acked"}).json()
            assert (done["attempts"], done["result"]) == (1, "acked")
            refused = api.post("/lighting/commands", json={"target": "nowhere", "action": "on"})
            assert refused.status_code == 404
    finally:
        lamp.close()
        server.stop()
        db.close()


def test_lighting_rate_and_energy_with_dimming_saving(database_url: str) -> None:
    register(database_url, None)
    hour = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    rows = (
        [
            # lit at full power for the first hour, lit at 50 % the second, dark but due the third
            (hour + timedelta(minutes=m), True, 100.0, 100.0, 10.0 + m / 600)
            for m in (0, 30, 59)
        ]
        + [
            (hour + timedelta(hours=1, minutes=m), True, 50.0, 50.0, 10.1 + m / 1200)
            for m in (0, 30, 59)
        ]
        + [(hour + timedelta(hours=2, minutes=m), True, 100.0, 0.0, 10.15) for m in (0, 30)]
    )
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            'INSERT INTO telemetry_lighting (device_id, ts, received_at, "on", dim_pct,'
            " voltage_v, current_a, power_w, power_factor, energy_kwh)"
            " VALUES (%s, %s, %s, %s, %s, 220, 0.4, %s, 0.95, %s)",
            [(LAMP, ts, ts, on, dim, power, kwh) for ts, on, dim, power, kwh in rows],
        )
        rates = energy_store.lighting_rates(conn, hour, hour + timedelta(hours=3), 9)
        assert [(r.district, r.lamps, r.due_samples, r.lit_samples) for r in rates] == [
            (GRID[:9], 1, 8, 6),
            (None, 1, 8, 6),
        ]
        assert rates[-1].rate_pct == pytest.approx(75.0)
        (figure,) = energy_store.energy_figures(conn, hour, hour + timedelta(hours=3), "cabinet")
    assert figure.key == CABINET
    assert figure.energy_kwh == pytest.approx(0.15, abs=1e-4)
    # the dimmed hour used 59/1200 kWh at 50 %: full power would have used as much again
    assert figure.saving_kwh == pytest.approx(59 / 1200, abs=1e-4)
