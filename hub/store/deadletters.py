"""Dead letters: rejected messages kept with their reason, listed and replayed."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[tuple[Any, ...]]

# Longest detail kept with a dead letter: the database's words can quote the whole row.
DETAIL_CHARS = 2000


def storable_text(text: str, limit: int = DETAIL_CHARS) -> str:
    """Text safe for a text column: NUL spelled out, lone surrogates replaced, bounded."""
    cleaned = text.replace("\x00", "\\0")[:limit]
    return cleaned.encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter as stored."""

    id: int
    received_at: datetime
    topic: str
    payload: bytes
    reason: str
    detail: str
    replayed_at: datetime | None
    replay_count: int
    payload_bytes: int
    retained: bool = False

    @property
    def sampled(self) -> bool:
        """Whether only a sample of the payload was kept (an oversize message)."""
        return len(self.payload) < self.payload_bytes


_COLUMNS = (
    "id, received_at, topic, payload, reason, detail, replayed_at, replay_count,"
    " payload_bytes, retained"
)


def list_dead_letters(
    conn: Conn,
    *,
    reason: str | None = None,
    pending_only: bool = True,
    after_id: int = 0,
    limit: int = 100,
) -> list[StoredDeadLetter]:
    """Dead letters in arrival order, optionally of one reason, by default only unreplayed ones."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM dead_letters"
        " WHERE id > %(after)s AND (%(reason)s::text IS NULL OR reason = %(reason)s)"
        " AND (NOT %(pending)s OR replayed_at IS NULL) ORDER BY id LIMIT %(limit)s",
        {"after": after_id, "reason": reason, "pending": pending_only, "limit": limit},
    ).fetchall()
    return [
        StoredDeadLetter(
            int(r[0]),
            r[1],
            str(r[2]),
            bytes(r[3]),
            str(r[4]),
            str(r[5]),
            r[6],
            int(r[7]),
            int(r[8]),
            bool(r[9]),
        )
        for r in rows
    ]


def count_dead_letters(conn: Conn) -> dict[str, int]:
    """Unreplayed dead letters per reason."""
    rows = conn.execute(
        "SELECT reason, count(*) FROM dead_letters WHERE replayed_at IS NULL GROUP BY reason"
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def mark_replayed(conn: Conn, ids: list[int], at: datetime) -> None:
    """Record that these dead letters are now stored as readings."""
    conn.execute(
        "UPDATE dead_letters SET replayed_at = %s, replay_count = replay_count + 1"
        " WHERE id = ANY(%s)",
        (at, ids),
    )


def mark_still_dead(conn: Conn, updates: list[tuple[int, str, str]]) -> None:
    """Record a failed replay: the reason may have changed (id, reason, detail)."""
    conn.cursor().executemany(
        "UPDATE dead_letters SET reason = %s, detail = %s, replay_count = replay_count + 1"
        " WHERE id = %s",
        [(reason, storable_text(detail), dead_id) for dead_id, reason, detail in updates],
    )
