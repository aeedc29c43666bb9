"""Manhole covers through a real hub child, broker and database: the recalibrate command
goes to the cover on `…/cmd` and the baseline changes on its ack; a displaced cover
(tilt and cover_open) becomes one case."""

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.settings import MqttEndpoint
from tests.hub_process import ROOT, count, hub_env, publish_all, running_hub, wait_for

pytestmark = pytest.mark.integration

COVER = "MH-000001"


def _register_cover(database_url: str, *, baseline_deg: float, road_class: str = "main") -> None:
    attributes = {"cover_type": "storm_water", "baseline_tilt_deg": baseline_deg}
    attributes["road_class"] = road_class
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon, grid_code, class_code, department,"
            " attributes) VALUES (%s, 'manhole', 31.3, 120.6, '320506001001001', '01003',"
            " '排水管理处', %s)",
            (COVER, orjson.dumps(attributes).decode()),
        )


def _reading(root: str, ts: datetime, tilt_deg: float, cover_open: bool) -> tuple[str, bytes]:
    body = {
        "ts": int(ts.timestamp() * 1000),
        "tilt_deg": tilt_deg,
        "cover_open": cover_open,
        "battery_pct": 80.0,
    }
    return f"{root}/manhole/{COVER}/telemetry", orjson.dumps(body)


class FakeCover:
    """A cover's MQTT side: records commands and answers them with acks of `results`, in order."""

    def __init__(self, mqtt_url: str, root: str, *results: str) -> None:
        self.commands: list[dict[str, object]] = []
        self.subscribed = threading.Event()
        self._root = root
        self._results = list(results)
        endpoint = MqttEndpoint(mqtt_url)
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"cover-{root}")
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.connect(endpoint.host, endpoint.port)
        client.subscribe(f"{root}/manhole/{COVER}/cmd", qos=1)
        client.loop_start()
        self._client = client

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        command = orjson.loads(message.payload)
        self.commands.append({"qos": message.qos, "topic": message.topic, **command})
        result = self._results.pop(0)
        ack = {
            "ts": int(datetime.now(UTC).timestamp() * 1000),
            "command_id": command["command_id"],
            "result": result,
            "detail": "calibrated" if result == "ok" else "sensor busy",
        }
        client.publish(f"{self._root}/manhole/{COVER}/cmd/ack", orjson.dumps(ack), qos=1)

    def close(self) -> None:
        """Disconnect."""
        self._client.loop_stop()
        self._client.disconnect()


def _recalibrate_cli(env: dict[str, str], *extra: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hub", "manholes", "recalibrate", COVER, *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _calibrations(database_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT state, baseline_tilt_deg, attempts, detail FROM manhole_calibrations"
            " WHERE device_id = %s ORDER BY id",
            (COVER,),
        ).fetchall()


def _baseline(database_url: str) -> float:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (attributes ->> 'baseline_tilt_deg')::float FROM devices WHERE device_id = %s",
            (COVER,),
        ).fetchone()
    assert row is not None
    return float(row[0])


def test_recalibrate_is_sent_to_the_cover_and_applied_on_its_ack(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    _register_cover(database_url, baseline_deg=2.0)
    env = hub_env(database_url, mqtt_url, mqtt_root)
    cover = FakeCover(mqtt_url, mqtt_root, "ok", "error")
    try:
        assert cover.subscribed.wait(10)
        with running_hub(env, tmp_path / "hub.log"):
            reading = _reading(mqtt_root, datetime.now(UTC), 7.5, False)
            publish_all(mqtt_url, [reading], f"pub-{mqtt_root}")
            wait_for(
                lambda: count(database_url, "SELECT count(*) FROM telemetry_manhole") == 1,
                what="the cover's reading stored",
            )
            out = _recalibrate_cli(env)
            assert "recalibrate to 7.5 deg (now 2.0)" in out
            assert _baseline(database_url) == 2.0  # nothing changes before the ack
            wait_for(
                lambda: _calibrations(database_url)[0][0] == "applied",
                what="the recalibration applied on the ack",
            )
            assert _baseline(database_url) == 7.5
            # the cover refuses the next one: the baseline stays
            _recalibrate_cli(env, "--baseline-deg", "4")
            wait_for(
                lambda: _calibrations(database_url)[-1][0] == "failed",
                what="the recalibration failed on the error ack",
            )
        first, second = cover.commands
        assert first["topic"] == f"{mqtt_root}/manhole/{COVER}/cmd"
        assert (first["qos"], first["action"], first["baseline_tilt_deg"]) == (
            1,
            "recalibrate",
            7.5,
        )
        assert second["baseline_tilt_deg"] == 4.0
        assert _calibrations(database_url) == [
            ("applied", 7.5, 1, None),
            ("failed", 4.0, 1, "cover answered error: sensor busy"),
        ]
        assert _baseline(database_url) == 7.5
    finally:
        cover.close()


def test_a_displaced_cover_on_a_main_road_is_one_urgent_case(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    _register_cover(database_url, baseline_deg=1.0)
    env = hub_env(database_url, mqtt_url, mqtt_root)
    start = datetime.now(UTC) - timedelta(minutes=10)
    with running_hub(env, tmp_path / "hub.log"):
        publish_all(
            mqtt_url,
            [
                _reading(mqtt_root, start, 1.1, False),
                _reading(mqtt_root, start + timedelta(minutes=1), 46.0, True),
                _reading(mqtt_root, start + timedelta(minutes=6), 46.0, True),
                _reading(mqtt_root, start + timedelta(minutes=7), 46.0, True),
            ],
            f"pub-{mqtt_root}",
        )
        wait_for(
            lambda: (
                count(
                    database_url,
                    "SELECT count(*) FROM alarms WHERE case_id IS NOT NULL"
                    " AND alarm_type IN ('tilt', 'cover_open')",
                )
                == 2
            ),
            what="both alarms behind a case",
        )
    with psycopg.connect(database_url) as conn:
        alarms = conn.execute(
            "SELECT alarm_type, severity, case_id FROM alarms ORDER BY alarm_type"
        ).fetchall()
        cases = conn.execute("SELECT id, class_code, department, urgency FROM cases").fetchall()
        joined = conn.execute(
            "SELECT payload ->> 'evidence' FROM case_events WHERE action = 'attach_evidence'"
        ).fetchall()
    assert [(a[0], a[1]) for a in alarms] == [("cover_open", "critical"), ("tilt", "critical")]
    assert len(cases) == 1
    case_id, class_code, department, urgency = cases[0]
    assert {a[2] for a in alarms} == {case_id}
    assert (class_code, department, urgency) == ("01003", "drainage", "urgent")
    assert len(joined) == 1
    assert str(joined[0][0]).endswith("raised on the same device")
