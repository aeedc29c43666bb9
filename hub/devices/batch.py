"""What the ingest edge hands to storage and to the rules: one committed unit of work."""

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hub.devices.decode import CommandAck, Decoded, Reading, RejectReason, StatusChange

# Bytes of an oversize payload kept as its sample; the rest is known by size and hash.
OVERSIZE_SAMPLE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the hub could not accept, kept with its reason so nothing is lost.

    `payload` is the message as received, except for an oversize one: then only its first
    OVERSIZE_SAMPLE_BYTES, with `payload_bytes` and `payload_sha256` telling the whole.
    """

    topic: str
    payload: bytes
    reason: RejectReason
    detail: str
    received_at: datetime
    payload_bytes: int
    payload_sha256: bytes
    retained: bool = False

    @classmethod
    def of(
        cls,
        topic: str,
        payload: bytes,
        reason: RejectReason,
        detail: str,
        received_at: datetime,
        *,
        retained: bool = False,
    ) -> "DeadLetter":
        """A dead letter of a received message, sampled when it is oversize."""
        kept = payload[:OVERSIZE_SAMPLE_BYTES] if reason is RejectReason.OVERSIZE else payload
        return cls(
            topic,
            kept,
            reason,
            detail,
            received_at,
            len(payload),
            hashlib.sha256(payload).digest(),
            retained,
        )


@dataclass(slots=True)
class Batch:
    """Everything decoded from a run of MQTT messages, written in one transaction."""

    readings: list[Reading] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)
    command_acks: list[CommandAck] = field(default_factory=list)

    @classmethod
    def of(cls, items: Iterable[Decoded | DeadLetter | None]) -> "Batch":
        """One batch of what a run of messages decoded to (None: a message that keeps nothing)."""
        batch = cls()
        extend = batch.readings.extend
        for item in items:
            if type(item) is list:  # readings, nearly every message: no method call
                extend(item)
            else:
                batch.add(item)
        return batch

    def add(self, decoded: Decoded | DeadLetter | None) -> None:
        """Add what one message decoded to: readings, a status, an ack or a dead letter."""
        if isinstance(decoded, list):  # readings, by far the most common: tested first
            self.readings.extend(decoded)
        elif isinstance(decoded, StatusChange):
            self.statuses.append(decoded)
        elif isinstance(decoded, CommandAck):
            self.command_acks.append(decoded)
        elif isinstance(decoded, DeadLetter):
            self.dead_letters.append(decoded)
        elif decoded is not None:
            self.readings.extend(decoded)

    def extend(self, other: "Batch") -> None:
        """Add everything of another batch (e.g. a committed part of a split batch)."""
        self.readings.extend(other.readings)
        self.dead_letters.extend(other.dead_letters)
        self.statuses.extend(other.statuses)
        self.command_acks.extend(other.command_acks)

    def __len__(self) -> int:
        return (
            len(self.readings)
            + len(self.dead_letters)
            + len(self.statuses)
            + len(self.command_acks)
        )


class BatchRejectedError(Exception):
    """The store refused a batch for what it holds, not for being unavailable.

    Writing the same batch again cannot succeed; the ingest edge splits it to find the
    message(s) responsible. Any other exception from a sink means "try again later".
    """


class BatchSink(Protocol):
    """Durable storage of a batch; returns once it is committed, raises if it is not."""

    def write_batch(self, batch: Batch) -> int:
        """Commit the batch and return how many readings were new (not redeliveries).

        Raises BatchRejectedError when the data cannot be stored (nothing is committed).
        """
        ...


class BatchObserver(Protocol):
    """Called with each committed batch, e.g. the rule engine; must not block for long."""

    def on_batch(self, readings: Sequence[Reading], now: datetime) -> None:
        """Look at readings that are now durably stored."""
        ...
