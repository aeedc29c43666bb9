"""The outbox: case events waiting for delivery to external systems, in order per case.

Rows are written in the transaction that records the case event, so an event is never
delivered without being recorded nor recorded without being queued. The forwarder claims
only the oldest undelivered row of each (case, target), so a case's later events wait
while an earlier one fails; rows stay in the table across restarts.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hub.cases.workflow import Action, CaseSource
from hub.store.database import Database

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class OutboxTarget:
    """An external system fed from the outbox: which case actions it takes, which sources not."""

    name: str
    actions: frozenset[Action] | None = None
    skip_sources: frozenset[CaseSource] = frozenset()

    def takes(self, action: Action, source: CaseSource) -> bool:
        """Whether an event of this action on a case of this source goes to the target."""
        if source in self.skip_sources:
            return False
        return self.actions is None or action in self.actions


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One queued delivery."""

    id: int
    case_id: int
    seq: int
    target: str
    event_type: str
    body: Mapping[str, Any]
    idempotency_key: str
    attempts: int
    created_at: datetime


def idempotency_key(target: str, case_number: str, seq: int) -> str:
    """The key the receiver deduplicates on: one per target, case and event."""
    return f"{target}:{case_number}:{seq}"


def enqueue(
    conn: Conn,
    *,
    case_id: int,
    case_number: str,
    seq: int,
    event_type: str,
    body: Mapping[str, object],
    targets: Sequence[str],
    now: datetime,
) -> None:
    """Queue one case event for each target (in the caller's transaction)."""
    if not targets:
        return
    conn.cursor().executemany(
        "INSERT INTO outbox (case_id, seq, target, event_type, body, idempotency_key,"
        " created_at, next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (idempotency_key) DO NOTHING",
        [
            (
                case_id,
                seq,
                target,
                event_type,
                Jsonb(dict(body)),
                idempotency_key(target, case_number, seq),
                now,
                now,
            )
            for target in targets
        ],
    )


def claim_due(conn: Conn, target: str, now: datetime, limit: int = 20) -> list[OutboxItem]:
    """The oldest undelivered row of each case that is due, locked for this transaction."""
    rows = conn.execute(
        "SELECT o.id, o.case_id, o.seq, o.target, o.event_type, o.body, o.idempotency_key,"
        " o.attempts, o.created_at FROM outbox o"
        " WHERE o.target = %(target)s AND o.delivered_at IS NULL"
        " AND o.next_attempt_at <= %(now)s"
        " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.case_id = o.case_id"
        " AND p.target = o.target AND p.delivered_at IS NULL AND p.id < o.id)"
        " ORDER BY o.id LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
        {"target": target, "now": now, "limit": limit},
    ).fetchall()
    return [
        OutboxItem(
            id=int(r[0]),
            case_id=int(r[1]),
            seq=int(r[2]),
            target=str(r[3]),
            event_type=str(r[4]),
            body=dict(r[5]),
            idempotency_key=str(r[6]),
            attempts=int(r[7]),
            created_at=r[8],
        )
        for r in rows
    ]


def mark_delivered(conn: Conn, item_id: int, at: datetime) -> None:
    """Record a successful delivery."""
    conn.execute(
        "UPDATE outbox SET delivered_at = %s, attempts = attempts + 1, last_error = NULL"
        " WHERE id = %s",
        (at, item_id),
    )


def mark_failed(conn: Conn, item_id: int, error: str, retry_at: datetime) -> None:
    """Record a failed attempt and when to try again."""
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = %s, next_attempt_at = %s"
        " WHERE id = %s",
        (error[:2000], retry_at, item_id),
    )


def next_due_in(conn: Conn, target: str, now: datetime) -> timedelta | None:
    """Time until the next undelivered row of a target is due (None when none waits)."""
    row = conn.execute(
        "SELECT min(next_attempt_at) FROM outbox WHERE target = %s AND delivered_at IS NULL",
        (target,),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    due_at: datetime = row[0]
    return max(timedelta(), due_at - now)


def pending_counts(conn: Conn) -> dict[str, int]:
    """Undelivered rows per target."""
    rows = conn.execute(
        "SELECT target, count(*) FROM outbox WHERE delivered_at IS NULL GROUP BY target"
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def set_external_id(conn: Conn, case_id: int, external_id: str) -> None:
    """Remember the id an external system gave a case."""
    conn.execute("UPDATE cases SET external_id = %s WHERE id = %s", (external_id, case_id))


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What happened to one delivery: done (with the receiver's id for the case) or failed."""

    delivered: bool
    error: str = ""
    external_id: str | None = None


def retry_delay(attempts: int, base: timedelta, longest: timedelta) -> timedelta:
    """Exponential backoff after `attempts` failures: base, 2×base, 4×base … up to `longest`."""
    exponent = min(max(attempts - 1, 0), 30)
    delay: timedelta = base * (2**exponent)
    return min(longest, delay)


class Outbox:
    """The outbox through a connection pool."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def deliver_due(
        self,
        target: str,
        now: datetime,
        deliver: Callable[[OutboxItem], DeliveryOutcome],
        *,
        retry_base: timedelta,
        retry_longest: timedelta,
        limit: int = 10,
    ) -> tuple[int, int]:
        """Claim the due head of each case, deliver each, record outcomes; (delivered, failed).

        The claimed rows stay locked during delivery, so another hub process skips them
        and the cases' later events.
        """
        delivered = failed = 0
        with self.db.connection() as conn:
            for item in claim_due(conn, target, now, limit):
                outcome = deliver(item)
                if outcome.delivered:
                    mark_delivered(conn, item.id, now)
                    if outcome.external_id is not None:
                        set_external_id(conn, item.case_id, outcome.external_id)
                    delivered += 1
                else:
                    wait = retry_delay(item.attempts + 1, retry_base, retry_longest)
                    mark_failed(conn, item.id, outcome.error, now + wait)
                    failed += 1
        return delivered, failed

    def next_due_in(self, target: str, now: datetime) -> timedelta | None:
        """Time until a target's next undelivered row is due."""
        with self.db.connection() as conn:
            return next_due_in(conn, target, now)

    def pending(self) -> dict[str, int]:
        """Undelivered rows per target."""
        with self.db.connection() as conn:
            return pending_counts(conn)
