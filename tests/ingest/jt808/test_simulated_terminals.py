"""Simulated trucks as JT/T 808 terminals (simulators/jt808_terminal.py).

Pure: a simulated reading survives terminal encoding and the gateway's mapping; a buffered
outage becomes blind-area batches that fit a message. End to end: `python -m simulators run
--trucks-via-jt808` drives the city's trucks over real TCP through the gateway, Mosquitto
and a hub child, and their positions are stored in telemetry_truck.
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from pydantic import SecretStr

from hub.devices.kinds import Kind
from hub.devices.registry import parse_device_csv
from hub.ingest.jt808 import messages as m
from hub.ingest.jt808.gateway import Gateway
from hub.ingest.jt808.mapping import BodyMapping, BodyState, parse_bit_source, truck_reading
from hub.services.jt808 import RegistryDirectory, gateway_config
from hub.settings import Settings
from hub.store.database import Database
from simulators.jt808_terminal import (
    location_of,
    parse_address,
    position_messages,
    terminal_phones,
    write_terminal_devices,
)
from tests.hub_process import hub_env, running_hub, wait_for
from tests.ingest.jt808.terminal import RunningGateway, gateway_thread

DEFAULT_MAPPING = BodyMapping(
    parse_bit_source(Settings.model_fields["jt808_lift_source"].default),
    parse_bit_source(Settings.model_fields["jt808_cover_source"].default),
)
TS_MS = 1_746_086_400_250
READING: dict[str, object] = {
    "ts": TS_MS,
    "lat": 31.301140,
    "lon": 120.623087,
    "speed_kmh": 42.5,
    "heading_deg": 359.6,
    "acc_on": True,
    "body_lifted": True,
    "cover_closed": False,
    "load": "half",
}


def test_a_reading_survives_the_terminal_and_the_gateway_mapping() -> None:
    loc = m.decode_location(m.encode_location(location_of(READING)))
    back = truck_reading(loc, DEFAULT_MAPPING, BodyState())
    assert back["ts"] == 1_746_086_400_000  # BCD time has whole seconds
    assert (back["lat"], back["lon"]) == (READING["lat"], READING["lon"])
    assert back["speed_kmh"] == 42.5
    assert back["heading_deg"] == 0  # 359.6 rounds to north
    for name in ("acc_on", "body_lifted", "cover_closed", "load"):
        assert back[name] == READING[name], name
    assert back["positioned"] is True
    south_west = location_of({**READING, "lat": -33.9, "lon": -70.6, "load": "full"})
    assert (south_west.lat, south_west.lon) == (-33.9, -70.6)
    assert truck_reading(south_west, DEFAULT_MAPPING, BodyState())["load"] == "full"


def test_an_outage_buffer_becomes_blind_area_batches_that_fit() -> None:
    buffered = [{**READING, "ts": TS_MS + 10_000 * i} for i in range(30)]
    messages = position_messages(orjson.dumps(buffered))
    assert [msg_id for msg_id, _ in messages] == [m.MsgId.LOCATION_BATCH] * 2
    batches = [m.decode_location_batch(body) for _, body in messages]
    assert all(batch.blind_area for batch in batches)
    assert [len(batch.locations) for batch in batches] == [25, 5]
    assert all(len(body) <= 1023 for _, body in messages)
    assert position_messages(orjson.dumps(READING))[0][0] == m.MsgId.LOCATION


def test_terminal_numbers_are_stable_and_distinct() -> None:
    phones = terminal_phones(["TRK-0002", "TRK-0001"])
    assert phones == {"TRK-0001": "14000000001", "TRK-0002": "14000000002"}
    assert parse_address("127.0.0.1:7808") == ("127.0.0.1", 7808)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address("7808")


@pytest.fixture
def city(tmp_path: Path, db: Database) -> Path:
    """A city of three trucks, registered with their terminal numbers."""
    out = tmp_path / "city"
    subprocess.run(
        [
            *(sys.executable, "-m", "simulators", "city", "--out", str(out), "--seed", "3"),
            *("--lamps", "0", "--trucks", "3", "--manholes", "0", "--spots", "0", "--quiet"),
        ],
        check=True,
        capture_output=True,
    )
    parsed = parse_device_csv(write_terminal_devices(out).read_text())
    assert not parsed.problems
    db.upsert_devices(parsed.records)
    return out


@pytest.fixture
def gateway(
    database_url: str, mqtt_url: str, mqtt_root: str, db: Database
) -> Iterator[RunningGateway]:
    """A gateway reading the registry, publishing under the test's topic root."""
    settings = Settings(
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_root=mqtt_root,
        jt808_client_id=f"jt808-{mqtt_root}",
        jt808_auth_secret=SecretStr("sim-key"),
        jt808_metrics_port=0,  # no metrics server: a fixed port may be taken
    )
    directory = RegistryDirectory(lambda: db.list_devices(Kind.TRUCK, 1000, 0), 0.5)
    with gateway_thread(Gateway(gateway_config(settings), directory)) as running:
        yield running


@pytest.mark.integration
def test_simulated_trucks_report_through_the_gateway(
    city: Path,
    gateway: RunningGateway,
    database_url: str,
    mqtt_url: str,
    mqtt_root: str,
    tmp_path: Path,
) -> None:
    env = hub_env(database_url, mqtt_url, mqtt_root)
    with running_hub(env, tmp_path / "hub.log"):
        run = subprocess.run(
            [
                *(sys.executable, "-m", "simulators", "run", "--city", str(city)),
                *("--kinds", "truck", "--duration", "30m", "--no-noise", "--quiet"),
                *("--mqtt-url", mqtt_url, "--root", mqtt_root, "--client-id", f"sim-{mqtt_root}"),
                *("--trucks-via-jt808", f"127.0.0.1:{gateway.port}"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "(some messages were not acknowledged)" not in run.stdout
        counters = gateway.gateway.counters
        # Every position the simulator sent was acknowledged, so published by the gateway.
        assert counters.positions_published > 10
        assert counters.bad_frames["register_refused"] == 0

        def stored() -> list[tuple[str, int]]:
            with psycopg.connect(database_url) as conn:
                return conn.execute(
                    "SELECT device_id, count(*) FROM telemetry_truck GROUP BY 1 ORDER BY 1"
                ).fetchall()

        wait_for(
            lambda: sum(n for _, n in stored()) == counters.positions_published,
            what="every acknowledged position stored",
        )
    assert [device_id for device_id, _ in stored()] == ["TRK-0001", "TRK-0002", "TRK-0003"]
    assert counters.frames["0x0100"] == 3  # each terminal registered once
