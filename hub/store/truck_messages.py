"""Answers to the texts enforcement sends to truck drivers: the terminals' cmd/acks."""

from dataclasses import dataclass
from datetime import datetime

from hub.store.database import Database


@dataclass(frozen=True, slots=True)
class CommandAnswer:
    """A device's newest answer to one command (`command_acks`)."""

    result: str
    detail: str | None
    answered_at: datetime


def command_answer(db: Database, device_id: str, command_id: str) -> CommandAnswer | None:
    """The newest answer of `device_id` to `command_id`, or None while there is none."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT result, detail, ts FROM command_acks"
            " WHERE device_id = %s AND command_id = %s ORDER BY ts DESC LIMIT 1",
            (device_id, command_id),
        ).fetchone()
    if row is None:
        return None
    return CommandAnswer(result=row[0], detail=row[1], answered_at=row[2])
