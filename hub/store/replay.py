"""Replaying dead letters once their cause is fixed (e.g. the device is now registered)."""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from hub.devices.batch import Batch, BatchRejectedError
from hub.devices.decode import DecodeError, DecodeLimits, RejectReason, decode_message
from hub.store import deadletters, registry
from hub.store.deadletters import StoredDeadLetter
from hub.store.telemetry import TelemetryWriter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplayReport:
    """Outcome of a replay run: letters now stored, still refused (per reason), left alone."""

    stored: int = 0
    still_dead: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    sampled: int = 0  # oversize letters of which only a sample was kept: not replayable

    def refused(self, reason: str) -> None:
        """Count one letter that still does not pass."""
        self.still_dead += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


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

    Each letter is judged on its own: one that still fails (at decoding, or refused by the
    database) stays a dead letter with its new reason, and the others are stored. Time
    limits are judged against the original receipt time, so a message does not become
    "too old" merely by waiting in the dead-letter table.
    """
    report = ReplayReport()
    kinds, _ = registry.fetch_kind_index(conn, None)
    writer = TelemetryWriter(conn)
    after_id = 0
    wanted = set(ids) if ids is not None else None
    while True:
        letters = deadletters.list_dead_letters(
            conn, reason=reason, pending_only=True, after_id=after_id, limit=chunk
        )
        conn.commit()
        if not letters:
            break
        after_id = letters[-1].id
        if wanted is not None:
            letters = [d for d in letters if d.id in wanted]
        decoded: list[tuple[StoredDeadLetter, Batch]] = []
        failed: list[tuple[int, str, str]] = []
        for letter in letters:
            if letter.sampled:
                report.sampled += 1
                continue
            try:
                batch = Batch()
                batch.add(
                    decode_message(
                        letter.topic,
                        letter.payload,
                        letter.received_at,
                        root=root,
                        registry=kinds,
                        limits=limits,
                    )
                )
            except DecodeError as err:
                failed.append((letter.id, err.reason.value, err.detail))
                report.refused(err.reason.value)
                continue
            except Exception as err:  # one letter's failure must not stop the others
                log.exception("decoding dead letter %d failed", letter.id)
                failed.append(
                    (letter.id, RejectReason.DECODE_FAILED.value, f"{type(err).__name__}: {err}")
                )
                report.refused(RejectReason.DECODE_FAILED.value)
                continue
            decoded.append((letter, batch))
        replayed = _store(writer, decoded, failed, report)
        with conn.transaction():
            if replayed:
                deadletters.mark_replayed(conn, replayed, now)
            if failed:
                deadletters.mark_still_dead(conn, failed)
        conn.commit()
        report.stored += len(replayed)
    return report


def _store(
    writer: TelemetryWriter,
    decoded: list[tuple[StoredDeadLetter, Batch]],
    failed: list[tuple[int, str, str]],
    report: ReplayReport,
) -> list[int]:
    """Write the decoded letters together, or one by one when the store refuses the lot."""
    if not decoded:
        return []
    together = Batch()
    for _, batch in decoded:
        together.extend(batch)
    try:
        writer.write_batch(together)
    except BatchRejectedError:
        pass
    else:
        return [letter.id for letter, _ in decoded]
    stored: list[int] = []
    for letter, batch in decoded:
        try:
            writer.write_batch(batch)
        except BatchRejectedError as err:
            failed.append((letter.id, RejectReason.STORE_REJECTED.value, str(err)))
            report.refused(RejectReason.STORE_REJECTED.value)
        else:
            stored.append(letter.id)
    return stored
