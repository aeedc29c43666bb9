"""What the ingest edge hands to storage and to the rules: one committed unit of work."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hub.devices.decode import CommandAck, Decoded, Reading, RejectReason, StatusChange


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the hub could not accept, kept with its reason so nothing is lost."""

    topic: str
    payload: bytes
    reason: RejectReason
    detail: str
    received_at: datetime


@dataclass(slots=True)
class Batch:
    """Everything decoded from a run of MQTT messages, written in one transaction."""

    readings: list[Reading] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)
    command_acks: list[CommandAck] = field(default_factory=list)

    def add(self, decoded: Decoded) -> None:
        """Add whatever one message decoded to (readings, a status change or a command ack)."""
        if isinstance(decoded, StatusChange):
            self.statuses.append(decoded)
        elif isinstance(decoded, CommandAck):
            self.command_acks.append(decoded)
        else:
            self.readings.extend(decoded)

    def __len__(self) -> int:
        return (
            len(self.readings)
            + len(self.dead_letters)
            + len(self.statuses)
            + len(self.command_acks)
        )


class BatchSink(Protocol):
    """Durable storage of a batch; returns once it is committed, raises if it is not."""

    def write_batch(self, batch: Batch) -> int:
        """Commit the batch and return how many readings were new (not redeliveries)."""
        ...


class BatchObserver(Protocol):
    """Called with each committed batch, e.g. the rule engine; must not block for long."""

    def on_batch(self, readings: Sequence[Reading], now: datetime) -> None:
        """Look at readings that are now durably stored."""
        ...
