"""The gateway over real TCP, with a real Mosquitto, PostgreSQL and hub child process.

register → authenticate → positions (one by one and a blind-area batch) are stored with
their own timestamps; an unknown terminal and an unauthenticated position are refused;
a hub command reaches the terminal as 0x8300 and its 0x0001 answer comes back as the
`cmd/ack` the hub stores.
"""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.ingest.jt808 import frame as fr
from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.gateway import Gateway
from hub.services.jt808 import RegistryDirectory, gateway_config
from hub.settings import MqttEndpoint, Settings
from hub.store.database import Database
from tests.hub_process import hub_env, publish_all, running_hub, wait_for
from tests.ingest.jt808.terminal import RunningGateway, TerminalClient, gateway_thread

pytestmark = pytest.mark.integration

PHONE = "013912344323"
PLATE = "沪A12345"


@pytest.fixture
def gateway(
    database_url: str, mqtt_url: str, mqtt_root: str, db: Database
) -> Iterator[RunningGateway]:
    """A registered truck with a terminal, and a gateway serving it."""
    db.upsert_devices(
        [
            DeviceRecord(
                device_id="truck-808",
                kind=Kind.TRUCK,
                lat=31.23,
                lon=121.47,
                attributes={"jt808_phone": int(PHONE), "plate": PLATE, "plate_colour": 2},
            )
        ]
    )
    settings = Settings(
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_root=mqtt_root,
        jt808_client_id=f"jt808-{mqtt_root}",
        jt808_auth_secret=SecretStr("auth-code-key"),
        jt808_metrics_port=0,  # no metrics server: a fixed port may be taken
    )
    directory = RegistryDirectory(lambda: db.list_devices(Kind.TRUCK, 1000, 0), 0.5)
    with gateway_thread(Gateway(gateway_config(settings), directory)) as running:
        yield running


def location_body(at: datetime, lat_e6: int, status: int = 0b11 | 0b11 << 8) -> bytes:
    """A 0x0200 body: ACC on, fixed, full, 30 km/h."""
    loc = m.Location(0, status, lat_e6, 121_470_000, 5, 300, 45, at, {0xEB: b"\x02"})
    return m.encode_location(loc)


def rows(database_url: str) -> list[tuple[datetime, float, str, bool]]:
    """Stored positions of the truck."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT ts, lat, load, cover_closed FROM telemetry_truck"
            " WHERE device_id = 'truck-808' ORDER BY ts"
        ).fetchall()


def test_register_authenticate_and_positions_are_stored(
    gateway: RunningGateway, database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    env = hub_env(database_url, mqtt_url, mqtt_root)
    with running_hub(env, tmp_path / "hub.log"):
        stranger = TerminalClient(gateway.port, "013900000000")
        assert stranger.register("沪B99999").result == m.RegisterResult.NO_SUCH_TERMINAL
        early = stranger.answer(stranger.send(m.MsgId.LOCATION, location_body(now, 31_000_000)))
        assert early.result == m.Result.FAILURE  # not authenticated: not accepted
        stranger.close()

        terminal = TerminalClient(gateway.port, PHONE)
        registered = terminal.register(PLATE)
        assert registered.result == m.RegisterResult.OK
        assert terminal.authenticate(registered.auth_code).result == m.Result.OK
        for i in range(3):
            at = now - timedelta(seconds=30 * (3 - i))
            serial = terminal.send(m.MsgId.LOCATION, location_body(at, 31_230_000 + i))
            assert terminal.answer(serial) == m.GeneralResponse(serial, m.MsgId.LOCATION, 0)
        # Blind-area data: positions kept while out of coverage, with their own times.
        late = [
            m.decode_location(location_body(now - timedelta(minutes=10 + k), 31_100_000 + k))
            for k in range(2)
        ]
        batch = m.encode_location_batch(m.LocationBatch(True, tuple(late)))
        assert terminal.answer(terminal.send(m.MsgId.LOCATION_BATCH, batch)).result == 0
        wait_for(lambda: len(rows(database_url)) == 5, what="five stored positions")
        stored = rows(database_url)
        assert stored[0][0] == now - timedelta(minutes=11)
        assert stored[-1][0] == now - timedelta(seconds=30)
        assert {r[2] for r in stored} == {"full"}
        assert all(r[3] for r in stored)  # item 0xEB bit 1: cover closed
        terminal.close()
    counters = gateway.gateway.counters
    assert counters.positions_published == 5
    assert counters.bad_frames["register_refused"] == 1
    assert counters.bad_frames["unauthenticated"] == 1


def test_a_bad_frame_is_counted_and_the_connection_goes_on(gateway: RunningGateway) -> None:
    terminal = TerminalClient(gateway.port, PHONE, fr.Version.V2019)
    broken = bytearray(fr.encode_frame(fr.Header(msg_id=2, phone=PHONE, serial=1), b""))
    broken[-2] ^= 0x55
    terminal.sock.sendall(bytes(broken) + b"\x7e" + b"\x00" * 5000 + b"\x7e")
    serial = terminal.send(m.MsgId.HEARTBEAT)
    assert terminal.answer(serial).result == m.Result.OK
    unknown = terminal.send(0x0F0F, b"\x01")
    assert terminal.answer(unknown).result == m.Result.UNSUPPORTED
    terminal.close()
    bad = gateway.gateway.counters.bad_frames
    assert bad["oversize"] == 1
    assert bad["unsupported"] == 1
    assert sum(bad.values()) - bad["oversize"] - bad["unsupported"] == 1, bad


def test_command_round_trip(
    gateway: RunningGateway, database_url: str, mqtt_url: str, mqtt_root: str, tmp_path: Path
) -> None:
    acks: list[dict[str, object]] = []
    got_ack = threading.Event()
    endpoint = MqttEndpoint(mqtt_url)
    listener = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"ack-{mqtt_root}")

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        acks.append(orjson.loads(message.payload))
        got_ack.set()

    listener.on_message = on_message
    listener.connect(endpoint.host, endpoint.port)
    listener.subscribe(f"{mqtt_root}/truck/truck-808/cmd/ack", qos=1)
    listener.loop_start()
    env = hub_env(database_url, mqtt_url, mqtt_root)
    try:
        with running_hub(env, tmp_path / "hub.log"):
            terminal = TerminalClient(gateway.port, PHONE, fr.Version.V2019)
            code = terminal.register(PLATE).auth_code
            assert terminal.authenticate(code).result == m.Result.OK
            command = {"command_id": "text-1", "action": "text", "text": "请按核准路线行驶"}
            publish_all(
                mqtt_url,
                [(f"{mqtt_root}/truck/truck-808/cmd", orjson.dumps(command))],
                f"cmd-{mqtt_root}",
            )
            message = terminal.receive()
            assert message.header.msg_id == m.MsgId.TEXT
            assert m.decode_text(message.body, fr.Version.V2019).text == "请按核准路线行驶"
            answer = m.GeneralResponse(message.header.serial, m.MsgId.TEXT, m.Result.OK)
            terminal.send(m.MsgId.TERMINAL_RESPONSE, m.encode_general_response(answer))
            assert got_ack.wait(20)
            assert acks[0]["command_id"] == "text-1"
            assert acks[0]["result"] == "ok"

            def stored() -> bool:
                with psycopg.connect(database_url) as conn:
                    row = conn.execute(
                        "SELECT result FROM command_acks WHERE command_id = 'text-1'"
                    ).fetchone()
                return row is not None and row[0] == "ok"

            wait_for(stored, what="the ack stored by the hub")
            terminal.close()
    finally:
        listener.loop_stop()
        listener.disconnect()
