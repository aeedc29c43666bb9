"""Telemetry tables: batched COPY writes, idempotent on (device, ts), and time-range reads."""

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from hub.devices.batch import Batch, BatchRejectedError, DeadLetter
from hub.devices.decode import Reading
from hub.devices.kinds import Channel, Kind
from hub.devices.payloads import measurement_fields
from hub.store import parking
from hub.store.deadletters import storable_text

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KindTable:
    """How one kind's readings map onto its telemetry table."""

    kind: Kind
    table: str
    fields: tuple[str, ...]
    columns: tuple[str, ...]
    # The measurement fields of a payload as a tuple, in one C call per row.
    measurements: Callable[[Any], tuple[Any, ...]] = field(compare=False, repr=False)


def kind_table(kind: Kind) -> KindTable:
    """The table layout of a kind, derived from its payload model.

    The fields are read from the model's `__dict__` (where pydantic keeps a model's field
    values) by one C call: an attribute of a pydantic model costs ~0.1 µs to read, through
    the class's `__getattr__` hook.
    """
    fields = measurement_fields(kind)
    columns = ("device_id", "ts", "received_at", "is_event", *fields, "extra")
    table = f"telemetry_{kind.value}"
    if not fields:
        return KindTable(kind, table, fields, columns, lambda _: ())
    if len(fields) == 1:  # itemgetter of one key returns the value, not a tuple
        only = itemgetter(fields[0])
        return KindTable(kind, table, fields, columns, lambda p: (only(p.__dict__),))
    values = itemgetter(*fields)
    return KindTable(kind, table, fields, columns, lambda p: values(p.__dict__))


TABLES: dict[Kind, KindTable] = {kind: kind_table(kind) for kind in Kind}


def reading_row(table: KindTable, reading: Reading) -> tuple[Any, ...]:
    """The COPY row of a reading, in the table's column order."""
    _, device_id, channel, ts, received_at, payload = reading
    extra = payload.__pydantic_extra__
    return (
        device_id,
        ts,
        received_at,
        channel is Channel.EVENT,
        *table.measurements(payload),
        Jsonb(extra) if extra else None,
    )


class _RedeliveredError(Exception):
    """A batch COPY met a (device, ts) already stored, or twice in the batch, or being written
    by another member: merge it instead."""


class TelemetryWriter:
    """Writes whole batches in one transaction, idempotent on (device, ts).

    Readings are copied straight into their tables (binary COPY) while batches hold only new
    readings, which is nearly always: a unique violation, from a redelivered or duplicated
    reading (or a deadlock with another member copying the same rows in another order),
    rolls the batch back and it is written again by the merge (COPY into a session's
    staging table, then `INSERT … SELECT DISTINCT ON … ON CONFLICT DO NOTHING`), which the
    next batches keep using until one of them holds no duplicate. The straight COPY costs
    PostgreSQL 35-40 % less per row than the merge (docs/performance.md). Parking's readings
    take their staging table on the straight path too, and a plain insert from it, so that
    the spots' latest reports are moved from the same rows (`_copy_kind`).
    """

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self._conn = conn
        self._copy_types: dict[Kind, list[str]] = {}
        # Each kind's COPY into its table, COPY into its stage and merge, as the bytes sent
        # (composed SQL is rendered per use).
        self._statements: dict[Kind, _Statements] = {}
        # Whether the next batch is copied straight into the tables: not after a batch
        # that held duplicates, until a merged batch holds none.
        self.straight = True

    def _ensure_stage(self, table: KindTable) -> tuple[str, list[str]]:
        """The session's staging table of a kind and the binary COPY types of its columns."""
        stage = f"stage_{table.kind.value}"
        types = self._copy_types.get(table.kind)
        if types is None:
            self._conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)"
                    " ON COMMIT DELETE ROWS"
                ).format(sql.Identifier(stage), sql.Identifier(table.table))
            )
            found = dict(
                self._conn.execute(
                    "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
                    " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                    (table.table,),
                ).fetchall()
            )
            types = [str(found[column]) for column in table.columns]
            self._copy_types[table.kind] = types
        return stage, types

    def write_batch(self, batch: Batch) -> int:
        """Commit the batch; return how many readings were new rather than redelivered.

        Raises BatchRejectedError, with the database's words, when what the batch holds
        cannot be stored; connection and server troubles propagate as psycopg raised them.
        """
        try:
            if self.straight:
                try:
                    return self._write_batch(batch, straight=True)
                except _RedeliveredError:
                    self.straight = False
            inserted = self._write_batch(batch, straight=False)
        except _REJECTED_BY_DATA as err:
            raise BatchRejectedError(f"{type(err).__name__}: {err}") from err
        self.straight = inserted == len(batch.readings)
        return inserted

    def _write_batch(self, batch: Batch, *, straight: bool) -> int:
        conn = self._conn
        inserted = 0
        by_kind: dict[Kind, list[Reading]] = defaultdict(list)
        for reading in batch.readings:
            by_kind[reading.kind].append(reading)
        # Staging tables are made before the batch's transaction: made inside it, a batch
        # rolled back would take them along while this writer still believed they exist.
        for kind in by_kind:
            self._ensure_stage(TABLES[kind])
        write_kind = self._copy_kind if straight else self._merge_kind
        with conn.transaction():
            for kind, readings in by_kind.items():
                inserted += write_kind(TABLES[kind], readings)
            if batch.dead_letters:
                write_dead_letters(conn, batch.dead_letters)
            if batch.statuses:
                conn.cursor().executemany(
                    "INSERT INTO device_status (device_id, online, changed_at, received_at)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET"
                    " online = excluded.online, changed_at = excluded.changed_at,"
                    " received_at = excluded.received_at"
                    " WHERE device_status.changed_at <= excluded.changed_at",
                    [(s.device_id, s.online, s.ts, s.received_at) for s in batch.statuses],
                )
            if batch.command_acks:
                conn.cursor().executemany(
                    "INSERT INTO command_acks"
                    " (device_id, command_id, result, detail, ts, received_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [
                        (a.device_id, a.command_id, a.result, a.detail, a.ts, a.received_at)
                        for a in batch.command_acks
                    ],
                )
        return inserted

    def _kind_statements(self, table: KindTable, stage: str) -> "_Statements":
        statements = self._statements.get(table.kind)
        if statements is None:
            statements = self._statements[table.kind] = _statements(table, stage, self._conn)
        return statements

    def _copy_kind(self, table: KindTable, readings: Sequence[Reading]) -> int:
        """COPY a kind's readings straight into its table; _RedeliveredError on a duplicate.

        Parking's go through its stage: one statement then inserts them into the table and
        moves each spot's latest report from the same rows, so they are sent once (a
        second COPY of the spots' reports cost the writer 2-3 µs per report and two round
        trips per batch; docs/performance.md).
        """
        stage, types = self._ensure_stage(table)
        statements = self._kind_statements(table, stage)
        cursor = self._conn.cursor()
        try:
            if statements.insert_staged is None:
                _copy_readings(cursor, statements.copy_table, types, table, readings)
            else:
                _copy_readings(cursor, statements.copy_stage, types, table, readings)
                cursor.execute(statements.insert_staged)
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected) as err:
            # A deadlock too: copied in arrival order, two members writing the same rows
            # in opposite orders can wait on each other; the merge inserts in key order.
            raise _RedeliveredError(str(err)) from err
        return len(readings)

    def _merge_kind(self, table: KindTable, readings: Sequence[Reading]) -> int:
        """COPY a kind's readings into its staging table and merge what is new."""
        stage, types = self._ensure_stage(table)
        statements = self._kind_statements(table, stage)
        cursor = self._conn.cursor()
        _copy_readings(cursor, statements.copy_stage, types, table, readings)
        cursor.execute(statements.merge)
        inserted = cursor.rowcount
        if table.kind is Kind.PARKING:
            parking.record_latest_reports(self._conn, stage)
        return inserted


def _copy_readings(
    cursor: psycopg.Cursor[tuple[Any, ...]],
    statement: bytes,
    types: list[str],
    table: KindTable,
    readings: Sequence[Reading],
) -> None:
    """Binary COPY of a kind's readings by one of its COPY statements."""
    with cursor.copy(statement) as copy:
        copy.set_types(types)
        write_row = copy.write_row
        for reading in readings:
            write_row(reading_row(table, reading))


class _Statements(NamedTuple):
    """A kind's statements as the bytes sent."""

    copy_table: bytes
    copy_stage: bytes
    merge: bytes
    # Parking's: its stage into its table and each spot's latest report, in one query.
    insert_staged: bytes | None


def _statements(table: KindTable, stage: str, conn: psycopg.Connection[Any]) -> _Statements:
    """A kind's COPY into its table, COPY into its staging table and merge into its table.

    A reading repeated within a batch keeps the version received first, as one repeated
    across batches does: the stage is emptied at each commit and filled by one COPY, so
    its rows' ctid order is the order received.
    """
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)
    copy = "COPY {} ({}) FROM STDIN (FORMAT BINARY)"
    insert_staged = None
    if table.kind is Kind.PARKING:
        # Two statements in one simple query (no parameters): one round trip. Without ON
        # CONFLICT: a reading stored before raises the unique violation the merge takes over.
        insert_staged = sql.SQL(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}; "
        ).format(
            table=sql.Identifier(table.table), columns=columns, stage=sql.Identifier(stage)
        ).as_bytes(conn) + parking.stored_reports_statement(stage).as_bytes(conn)
    return _Statements(
        sql.SQL(copy).format(sql.Identifier(table.table), columns).as_bytes(conn),
        sql.SQL(copy).format(sql.Identifier(stage), columns).as_bytes(conn),
        sql.SQL(
            "INSERT INTO {table} ({columns}) SELECT DISTINCT ON (device_id, ts) {columns}"
            " FROM {stage} ORDER BY device_id, ts, ctid ON CONFLICT (device_id, ts) DO NOTHING"
        )
        .format(table=sql.Identifier(table.table), columns=columns, stage=sql.Identifier(stage))
        .as_bytes(conn),
        insert_staged,
    )


# What the database (or the adapting of a value for it) says when the data is at fault: a
# data exception (SQLSTATE class 22), an integrity violation (23), a program limit such as
# nesting too deep (54, an OperationalError in psycopg, told apart in write_batch), or a
# value Python could not adapt. Anything else (connection, server, permissions) is not the
# data's fault: the batch is retried whole.
# (ProgramLimitExceeded is the one OperationalError here.)
_REJECTED_BY_DATA = (
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.errors.ProgramLimitExceeded,
    ValueError,
    OverflowError,
    RecursionError,
    TypeError,
)


def write_dead_letters(
    conn: psycopg.Connection[tuple[Any, ...]], letters: Sequence[DeadLetter]
) -> None:
    """Keep dead letters; a retained one already kept (and not replayed) is not kept again."""
    fresh = [d for d in letters if not d.retained]
    if fresh:
        with conn.cursor().copy(
            "COPY dead_letters (received_at, topic, payload, reason, detail, payload_bytes,"
            " payload_sha256, retained) FROM STDIN"
        ) as copy:
            for dead in fresh:
                copy.write_row(_dead_letter_row(dead))
    retained = [d for d in letters if d.retained]
    if retained:
        conn.cursor().executemany(
            "INSERT INTO dead_letters (received_at, topic, payload, reason, detail,"
            " payload_bytes, payload_sha256, retained) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (topic, payload_sha256) WHERE retained AND replayed_at IS NULL"
            " DO NOTHING",
            [_dead_letter_row(dead) for dead in retained],
        )


def _dead_letter_row(dead: DeadLetter) -> tuple[Any, ...]:
    return (
        dead.received_at,
        storable_text(dead.topic, 1000),
        dead.payload,
        dead.reason.value,
        storable_text(dead.detail),
        dead.payload_bytes,
        dead.payload_sha256,
        dead.retained,
    )


def row_to_reading_dict(table: KindTable, row: Sequence[Any]) -> dict[str, Any]:
    """A stored row as the JSON object the API returns: contract fields plus extras."""
    record = dict(zip(table.columns, row, strict=True))
    extra = record.pop("extra") or {}
    out: dict[str, Any] = {"device_id": record.pop("device_id"), "ts": record.pop("ts")}
    out.update(record)
    if extra:
        out["extra"] = extra if isinstance(extra, dict) else orjson.loads(extra)
    return out


def fetch_readings(
    conn: psycopg.Connection[tuple[Any, ...]],
    kind: Kind,
    device_id: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[dict[str, Any]]:
    """A device's readings with start <= ts < end, oldest first, at most `limit`."""
    table = TABLES[kind]
    query = sql.SQL(
        "SELECT {columns} FROM {table} WHERE device_id = %s AND ts >= %s AND ts < %s"
        " ORDER BY ts LIMIT %s"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in table.columns),
        table=sql.Identifier(table.table),
    )
    rows = conn.execute(query, (device_id, start, end, limit)).fetchall()
    return [row_to_reading_dict(table, row) for row in rows]


def fetch_latest(
    conn: psycopg.Connection[tuple[Any, ...]], kind: Kind, device_id: str
) -> dict[str, Any] | None:
    """A device's newest reading by event time."""
    table = TABLES[kind]
    query = sql.SQL(
        "SELECT {columns} FROM {table} WHERE device_id = %s ORDER BY ts DESC LIMIT 1"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in table.columns),
        table=sql.Identifier(table.table),
    )
    row = conn.execute(query, (device_id,)).fetchone()
    return row_to_reading_dict(table, row) if row else None


class ReconnectingWriter:
    """A BatchSink over a dedicated connection that is reopened after the database comes back."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._writer: TelemetryWriter | None = None
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def write_batch(self, batch: Batch) -> int:
        """Commit the batch, reconnecting first if the last attempt broke the connection."""
        writer = self._writer
        if writer is None or self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = psycopg.connect(self._url, autocommit=True)
            writer = self._writer = TelemetryWriter(self._conn)
        return writer.write_batch(batch)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
