"""Replaying dead letters once their cause is fixed (e.g. the device is now registered)."""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from hub.devices.batch import Batch
from hub.devices.decode import DecodeError, DecodeLimits, decode_message
from hub.store import deadletters, registry
from hub.store.telemetry import TelemetryWriter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplayReport:
    """Outcome of a replay run."""

    stored: int = 0
    still_dead: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def replay_dead_letters(
    conn: psycopg.Connection[tuple[Any, ...]],
    *,
    root: str,
    limits: DecodeLimits,
    now: datetime,
    reason: str | None = None,
    ids: list[int] | None = None,
    chunk: int = 1000,
) -> ReplayReport:
    """Decode pending dead letters again with today's registry; store those that now pass.

    Time limits are judged against the original receipt time, so a message does not
    become "too old" merely by waiting in the dead-letter table.
    """
    report = ReplayReport()
    kinds, _ = registry.fetch_kind_index(conn, None)
    writer = TelemetryWriter(conn)
    after_id = 0
    while True:
        letters = deadletters.list_dead_letters(
            conn, reason=reason, pending_only=True, after_id=after_id, limit=chunk
        )
        conn.commit()
        if ids is not None:
            letters = [d for d in letters if d.id in ids]
        if not letters and (ids is None or after_id >= max(ids, default=0)):
            break
        if letters:
            after_id = letters[-1].id
        else:
            after_id += chunk
            continue
        batch = Batch()
        replayed: list[int] = []
        failed: list[tuple[int, str, str]] = []
        for letter in letters:
            try:
                decoded = decode_message(
                    letter.topic,
                    letter.payload,
                    letter.received_at,
                    root=root,
                    registry=kinds,
                    limits=limits,
                )
            except DecodeError as err:
                failed.append((letter.id, err.reason.value, err.detail))
                report.reasons[err.reason.value] = report.reasons.get(err.reason.value, 0) + 1
                continue
            batch.add(decoded)
            replayed.append(letter.id)
        writer.write_batch(batch)
        with conn.transaction():
            if replayed:
                deadletters.mark_replayed(conn, replayed, now)
            if failed:
                deadletters.mark_still_dead(conn, failed)
        conn.commit()
        report.stored += len(replayed)
        report.still_dead += len(failed)
    return report
