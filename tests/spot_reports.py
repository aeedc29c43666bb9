"""Spot reports as the ingest sees them: the parking tests' one way to build a batch."""

from collections.abc import Sequence
from datetime import datetime

import orjson

from hub.devices.batch import Batch
from hub.devices.decode import DecodeLimits, decode_message
from hub.devices.kinds import Kind

Report = tuple[str, datetime, bool]  # spot id, event time, occupied


def spot_report_batch(
    reports: Sequence[Report], received_at: datetime, battery_pct: float = 50.0
) -> Batch:
    """One batch of `event` messages, decoded the way the ingest decodes them (all valid)."""
    batch = Batch()
    registry = {device_id: Kind.PARKING for device_id, _, _ in reports}
    for device_id, ts, occupied in reports:
        body = {"ts": int(ts.timestamp() * 1000), "occupied": occupied, "battery_pct": battery_pct}
        batch.add(
            decode_message(
                f"city/parking/{device_id}/event",
                orjson.dumps(body),
                received_at,
                root="city",
                registry=registry,
                limits=DecodeLimits(),
            )
        )
    assert not batch.dead_letters, batch.dead_letters
    return batch
