"""A batch the database refuses is split until the refused messages are alone.

The pipeline runs with the real writer on a real PostgreSQL whose lighting table refuses
one fault code by a CHECK constraint; Hypothesis places such messages anywhere in a batch.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.devices.decode import DecodeLimits, Reading
from hub.devices.kinds import Kind
from hub.ingest.metrics import IngestMetrics
from hub.ingest.pipeline import IngestPipeline, KindIndex, RawMessage
from hub.store.telemetry import ReconnectingWriter
from tests.ingest.test_poison import REFUSED_FAULT, refuse_in_database
from tests.payload_examples import example

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
KINDS = {f"L-{i}": Kind.LIGHTING for i in range(4)}


class Acks:
    """Collects the tokens the pipeline acknowledges."""

    def __init__(self) -> None:
        self.tokens: list[int] = []

    def ack(self, tokens: Sequence[int]) -> None:
        self.tokens.extend(tokens)


class Seen:
    """Collects the readings handed to observers (what the rules would judge)."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def on_batch(self, readings: Sequence[Reading], now: datetime) -> None:
        self.readings.extend(readings)


def message(n: int, refused: bool) -> RawMessage:
    ts = NOW - timedelta(seconds=n)
    changes: dict[str, Any] = {"fault_code": REFUSED_FAULT} if refused else {}
    payload = orjson.dumps(example(Kind.LIGHTING, ts.isoformat(), **changes))
    return RawMessage(f"city/lighting/L-{n % 4}/telemetry", payload, NOW, n)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    size=st.integers(1, 300),
    refused_at=st.sets(st.integers(0, 299), min_size=1, max_size=6),
)
def test_refused_messages_are_found_and_the_rest_committed_in_order(
    database_url: str, size: int, refused_at: set[int]
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry_lighting, dead_letters")
        conn.execute("ALTER TABLE telemetry_lighting DROP CONSTRAINT IF EXISTS poison_for_test")
    refuse_in_database(database_url)
    refused = {n for n in refused_at if n < size}
    sink = ReconnectingWriter(database_url)
    pipeline = IngestPipeline(
        sink=sink,
        kinds=KindIndex(lambda since: (KINDS, None), lambda: set(KINDS), 60.0),
        root="city",
        limits=DecodeLimits(),
        metrics=IngestMetrics(),
        batch_max_rows=1000,
        clock=lambda: NOW,
    )
    acks, seen = Acks(), Seen()
    pipeline.set_acknowledger(acks)
    pipeline.add_observer(seen)
    messages = [message(n, n in refused) for n in range(size)]
    for m in messages:
        pipeline.submit(m)
    try:
        assert pipeline.flush() == size
    finally:
        sink.close()
    assert sorted(acks.tokens) == list(range(size))  # every message acknowledged
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT count(*) FROM telemetry_lighting").fetchone()
        dead = conn.execute(
            "SELECT reason, payload, detail FROM dead_letters ORDER BY id"
        ).fetchall()
    assert stored is not None
    assert stored[0] == size - len(refused)
    assert [bytes(d[1]) for d in dead] == [messages[n].payload for n in sorted(refused)]
    assert all(d[0] == "store_rejected" and "poison_for_test" in d[2] for d in dead)
    # The rules see the committed readings in arrival order.
    expected = [NOW - timedelta(seconds=n) for n in range(size) if n not in refused]
    assert [r.ts for r in seen.readings] == expected
