"""Texts to a truck's driver from the API: POST queues a 0x8300 on the truck's cmd topic, the
gateway writes it to the terminal, and the terminal's answer is what GET shows."""

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.api.domains import domain_routers
from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.ingest.device_commands import MqttCommandSender
from hub.ingest.jt808 import frame as fr
from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.gateway import Gateway, Terminal
from hub.ingest.metrics import IngestMetrics
from hub.store.database import Database
from tests.ingest.jt808.terminal import TerminalClient, gateway_thread
from tests.ingest.jt808.test_metrics import config

pytestmark = pytest.mark.integration
TRUCK = "T-MSG-1"
PHONE = "13912348888"


class OneTruck:
    """A directory holding one terminal."""

    async def find(self, phone: str) -> Terminal | None:
        """The truck for PHONE."""
        return Terminal(TRUCK, PHONE) if phone == PHONE else None


@pytest.fixture
def registered(db: Database) -> Database:
    """A database whose registry has the truck and a lamp."""
    db.upsert_devices(
        [
            DeviceRecord(
                device_id=TRUCK,
                kind=Kind.TRUCK,
                lat=31.2,
                lon=121.4,
                attributes={"jt808_phone": PHONE},
            ),
            DeviceRecord(device_id="LAMP-MSG-1", kind=Kind.LIGHTING, lat=31.2, lon=121.4),
        ]
    )
    return db


def client_with(db: Database, sender: object) -> TestClient:
    """The API with `sender` as its path to the trucks (None: no path)."""
    state = {} if sender is None else {"truck_commands": sender}
    app = create_app(db, IngestMetrics().registry, routers=domain_routers(), state=state)
    return TestClient(app)


def test_a_text_reaches_the_terminal_and_its_answer_is_shown(
    registered: Database, mqtt_url: str, mqtt_root: str
) -> None:
    sender = MqttCommandSender(url=mqtt_url, client_id=f"{mqtt_root}-api", root=mqtt_root)
    sender.start()
    quiet = dataclasses.replace(config(mqtt_url, mqtt_root), metrics_port=None)
    try:
        with (
            gateway_thread(Gateway(quiet, OneTruck())) as running,
            client_with(registered, sender.send) as api,
        ):
            terminal = TerminalClient(running.port, PHONE, fr.Version.V2019)
            assert terminal.authenticate(terminal.register("").auth_code).result == 0
            sent = api.post(f"/trucks/{TRUCK}/messages", json={"text": "请按核准路线行驶"})
            assert sent.status_code == 202, sent.text
            command_id = sent.json()["command_id"]
            waiting = api.get(f"/trucks/{TRUCK}/messages/{command_id}").json()
            assert waiting["result"] is None

            text = terminal.receive()
            assert text.header.msg_id == m.MsgId.TEXT
            assert m.decode_text(text.body, fr.Version.V2019).text == "请按核准路线行驶"
            # The hub stores the gateway's cmd/ack in command_acks; stand in for its ingest.
            answer = m.GeneralResponse(text.header.serial, m.MsgId.TEXT, m.Result.OK)
            terminal.send(m.MsgId.TERMINAL_RESPONSE, m.encode_general_response(answer))
            terminal.close()
    finally:
        sender.stop()
    now = datetime.now(UTC)
    with registered.connection() as conn:
        conn.execute(
            "INSERT INTO command_acks (device_id, command_id, result, detail, ts, received_at)"
            " VALUES (%s, %s, 'ok', NULL, %s, %s)",
            (TRUCK, command_id, now, now),
        )
    with client_with(registered, None) as api:
        shown = api.get(f"/trucks/{TRUCK}/messages/{command_id}").json()
    assert shown["result"] == "ok"
    assert shown["command_id"] == command_id


def test_refusals(registered: Database) -> None:
    sent: list[Mapping[str, object]] = []

    def accept(kind: Kind, device_id: str, document: Mapping[str, object]) -> bool:
        sent.append(document)
        return True

    with client_with(registered, accept) as api:
        assert api.post("/trucks/NOPE/messages", json={"text": "x"}).status_code == 404
        assert api.post("/trucks/LAMP-MSG-1/messages", json={"text": "x"}).status_code == 404
        assert api.post(f"/trucks/{TRUCK}/messages", json={"text": ""}).status_code == 422
        ok = api.post(f"/trucks/{TRUCK}/messages", json={"text": "停车", "emergency": True})
        assert ok.status_code == 202
    assert sent == [
        {
            "command_id": ok.json()["command_id"],
            "action": "text",
            "text": "停车",
            "emergency": True,
            "ts": sent[0]["ts"],
        }
    ]
    with client_with(registered, lambda *_: False) as api:
        assert api.post(f"/trucks/{TRUCK}/messages", json={"text": "x"}).status_code == 503
    with client_with(registered, None) as api:
        assert api.post(f"/trucks/{TRUCK}/messages", json={"text": "x"}).status_code == 503
