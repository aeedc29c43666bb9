"""`hub deadletters replay` judges each letter on its own and reports counts."""

import subprocess
import sys
import time
from datetime import UTC, datetime

import orjson
import psycopg
import pytest

from hub.devices.batch import Batch, DeadLetter
from hub.devices.decode import RejectReason
from hub.devices.kinds import Kind
from hub.store.telemetry import TelemetryWriter
from tests.hub_process import ROOT, count, hub_env
from tests.ingest.test_poison import REFUSED_FAULT, refuse_in_database
from tests.payload_examples import example

pytestmark = pytest.mark.integration


def test_a_letter_that_still_fails_stays_and_the_others_are_replayed(
    database_url: str, mqtt_url: str
) -> None:
    now = datetime.now(UTC)
    now_ms = int(time.time() * 1000)
    refuse_in_database(database_url)
    letters = [
        # Unregistered when it came; registered below, so it now passes.
        ("city/parking/P-1/telemetry", orjson.dumps(example(Kind.PARKING, now_ms))),
        # Passes decoding, but the database refuses it: stays, as store_rejected.
        (
            "city/lighting/L-1/telemetry",
            orjson.dumps(example(Kind.LIGHTING, now_ms, fault_code=REFUSED_FAULT)),
        ),
        # Still not JSON.
        ("city/parking/P-1/telemetry", b"{not json"),
        # Another that now passes, after the refused one.
        ("city/parking/P-1/telemetry", orjson.dumps(example(Kind.PARKING, now_ms - 1000))),
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        TelemetryWriter(conn).write_batch(
            Batch(
                dead_letters=[
                    DeadLetter.of(topic, payload, RejectReason.UNREGISTERED, "not yet", now)
                    for topic, payload in letters
                ]
            )
        )
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon) VALUES"
            " ('P-1', 'parking', 31.3, 120.6), ('L-1', 'lighting', 31.3, 120.6)"
        )
    env = hub_env(database_url, mqtt_url, "city")
    result = subprocess.run(
        [sys.executable, "-m", "hub", "deadletters", "replay"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "2 stored, 2 still rejected" in result.stdout
    assert "still invalid_json: 1" in result.stdout
    assert "still store_rejected: 1" in result.stdout
    assert count(database_url, "SELECT count(*) FROM telemetry_parking") == 2
    with psycopg.connect(database_url) as conn:
        pending = conn.execute(
            "SELECT reason, detail FROM dead_letters WHERE replayed_at IS NULL ORDER BY id"
        ).fetchall()
    assert [r[0] for r in pending] == ["store_rejected", "invalid_json"]
    assert "poison_for_test" in pending[0][1]
