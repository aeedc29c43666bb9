"""MQTT → hub child → alarm → case, with the alarm published on MQTT and as server-sent events."""

import time
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.cli.local_stack import free_port
from hub.devices.kinds import Kind
from hub.settings import MqttEndpoint
from tests.hub_process import (
    EventStream,
    api_headers,
    hub_env,
    publish_all,
    running_hub,
    wait_for,
)
from tests.payload_examples import example
from tests.store.cases.case_fixtures import policy_filing_offline_at_once, register_device

pytestmark = pytest.mark.integration

DEVICE = "mh-e2e"


class AlarmTopicListener:
    """A plain MQTT client subscribed to the hub's alarm topics."""

    def __init__(self, mqtt_url: str, root: str) -> None:
        self.messages: list[tuple[str, dict[str, object]]] = []
        endpoint = MqttEndpoint(mqtt_url)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"listen-{root}")
        self._client.on_message = self._on_message
        self._client.connect(endpoint.host, endpoint.port)
        self._client.subscribe(f"{root}/alarms/#", qos=1)
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        self.messages.append((message.topic, orjson.loads(message.payload)))

    def changes(self) -> list[object]:
        """The `change` of each message so far."""
        return [body["change"] for _, body in self.messages]

    def close(self) -> None:
        """Disconnect."""
        self._client.loop_stop()
        self._client.disconnect()


def test_silence_becomes_an_alarm_and_a_case_and_the_next_reading_its_evidence(
    database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    register_device(
        database_url,
        DEVICE,
        class_code="01003",
        attributes='{"rules.offline.expected_interval_s": 3, "rules.offline.missed_reports": 1}',
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_filing_offline_at_once(), "utf-8")
    port = free_port()
    env = hub_env(
        database_url,
        mqtt_url,
        mqtt_root,
        HUB_API_PORT=str(port),
        HUB_CASE_POLICY_FILE=str(policy),
        HUB_ALARM_TICK_S="0.2",
        HUB_CASE_CLEAR_CONFIRM_S="0.5",
        HUB_OPEN311_API_KEYS="k1,k2",
    )
    api = f"http://127.0.0.1:{port}"
    topic = f"{mqtt_root}/manhole/{DEVICE}/telemetry"
    listener = AlarmTopicListener(mqtt_url, mqtt_root)
    try:
        with running_hub(env, tmp_path / "hub.log", api=True) as hub:

            def api_up() -> bool:
                try:
                    return httpx.get(f"{api}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            publish_all(
                mqtt_url,
                [(topic, orjson.dumps(example(Kind.MANHOLE, int(time.time() * 1000))))],
                f"pub-{mqtt_root}",
            )
            wait_for(api_up, 20, "the API")
            auth = api_headers(database_url)
            stream = EventStream(f"{api}/alarms/stream?source_id={DEVICE}", "cleared", auth)
            assert stream.ready.wait(10)

            def open_alarms() -> list[dict[str, object]]:
                alarms: list[dict[str, object]] = httpx.get(
                    f"{api}/alarms", params={"source": DEVICE, "open": "true"}, headers=auth
                ).json()
                return alarms

            wait_for(lambda: bool(open_alarms()), 20, "the offline alarm")
            (alarm,) = open_alarms()
            assert alarm["alarm_type"] == "offline"

            def filed() -> list[dict[str, object]]:
                cases: list[dict[str, object]] = httpx.get(
                    f"{api}/cases", params={"alarm_id": str(alarm["id"])}, headers=auth
                ).json()
                return cases

            wait_for(lambda: bool(filed()), 10, "the case")
            (case,) = filed()
            assert case["status"] == "dispatched"
            assert case["class_code"] == "01003"
            assert case["department"] == "drainage"
            acked = httpx.post(
                f"{api}/alarms/{alarm['id']}/acknowledge", json={"note": "on site"}, headers=auth
            )
            assert acked.status_code == 200

            publish_all(
                mqtt_url,
                [(topic, orjson.dumps(example(Kind.MANHOLE, int(time.time() * 1000))))],
                f"pub2-{mqtt_root}",
            )

            def case_events() -> list[object]:
                detail = httpx.get(f"{api}/cases/{case['id']}", headers=auth).json()
                return [e["action"] for e in detail["events"]]

            wait_for(lambda: "attach_evidence" in case_events(), 15, "the clearance as evidence")
            stream.join()
            # A client still connected when the hub stops is told so, and does not hold it up.
            lingering = EventStream(f"{api}/alarms/stream", "shutdown", auth)
            assert lingering.ready.wait(10)
            assert hub.process is not None
            stopping_at = time.monotonic()
        assert hub.process.returncode == 0
        assert time.monotonic() - stopping_at < 5
        lingering.join()
        assert [e for e, _ in lingering.events] == ["shutdown"]
        wait_for(lambda: "cleared" in listener.changes(), 5, "the MQTT clear")
    finally:
        listener.close()
    assert [e for e, _ in stream.events] == ["raised", "acknowledged", "cleared"]
    assert listener.changes() == ["raised", "acknowledged", "cleared"]
    assert {t for t, _ in listener.messages} == {f"{mqtt_root}/alarms/device/{DEVICE}/offline"}
    log = (tmp_path / "hub.log").read_text()
    assert f"filed into case {case['case_number']}" in log
