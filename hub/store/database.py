"""The store facade: a connection pool plus the queries the API and the CLI need."""

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.store import deadletters, registry, telemetry
from hub.store.migrations import load_migrations
from hub.store.storage import StorageMode

log = logging.getLogger(__name__)
Conn = psycopg.Connection[tuple[Any, ...]]


class SchemaNotReadyError(RuntimeError):
    """The database has not been migrated."""


DATABASE_ERRORS: tuple[type[Exception], ...] = (psycopg.Error,)
"""What a query through this store may raise (PoolTimeout included), for callers that must
not import psycopg themselves; `classify_failure` says what one of them means."""


class StoreFailure(StrEnum):
    """What a database error means to a caller."""

    UNAVAILABLE = "unavailable"  # not reachable or not taking work now: retry later
    REFUSED_VALUE = "refused_value"  # a value it cannot hold or compute: the data's fault


_UNAVAILABLE_STATES = ("08", "53", "57P")
"""SQLSTATE classes of an outage: connection exception, insufficient resources (disk, memory,
connections), and operator intervention short of a cancelled query (shutdown, restart)."""


def classify_failure(err: BaseException) -> StoreFailure | None:
    """Whether a database error is an outage, a refused value, or neither (a bug: None)."""
    if isinstance(err, PoolTimeout):
        return StoreFailure.UNAVAILABLE
    if isinstance(err, psycopg.OperationalError):
        state = err.sqlstate
        # No SQLSTATE: the client lost or could not open the connection.
        if state is None or state.startswith(_UNAVAILABLE_STATES):
            return StoreFailure.UNAVAILABLE
    if isinstance(err, psycopg.errors.DataError | psycopg.errors.ProgramLimitExceeded):
        return StoreFailure.REFUSED_VALUE
    return None


_wait_budget_s: ContextVar[float | None] = ContextVar("hub_pool_wait_budget_s", default=None)


@contextmanager
def bounded_wait(seconds: float) -> Iterator[None]:
    """Connections taken in this context (and threads started from it) wait at most `seconds`
    for the pool: a caller that would rather fail fast than queue behind an outage."""
    token = _wait_budget_s.set(seconds)
    try:
        yield
    finally:
        _wait_budget_s.reset(token)


RECONNECT_TIMEOUT_S = 10.0
"""How long the pool keeps retrying a lost connection (1, 2, 4 … s apart) before giving up;
the next request that wants one starts afresh. The default 5 min let the gaps grow past two
minutes, so the hub went on answering 503 long after PostgreSQL was back."""


# 19 digits in a row: a number that may not fit in 64 bits, which orjson reads as a float.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def load_json(data: str | bytes) -> Any:
    """A json or jsonb value as the standard library's `json.loads` reads it, faster.

    orjson reads the same values as `json.loads` except integers beyond 64 bits (it
    returns a float) and numbers beyond a double (it refuses): a text with 19 digits in a
    row, or one orjson refuses, is read by `json.loads`. psycopg's default is `json.loads`
    on every jsonb column, and the alarm flow reads back each alarm it writes (evidence
    and details): ~5 % of its thread's samples under a paced load (py-spy, issue 23). A
    property test holds the two readers to the same answers over generated JSON.
    """
    if isinstance(data, str):  # psycopg passes bytes; the signature allows text
        data = data.encode()
    if _LONG_DIGITS.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def configure_connection(conn: Conn) -> None:
    """What every connection of the hub is given: the faster JSON reader."""
    set_json_loads(load_json, conn)


class _Pool(ConnectionPool[Conn]):
    """The pool, honouring the wait budget of `bounded_wait`."""

    def getconn(self, timeout: float | None = None) -> Conn:
        """A connection, waiting at most the caller's timeout and the context's budget."""
        budget = _wait_budget_s.get()
        if budget is not None:
            timeout = budget if timeout is None else min(timeout, budget)
        return super().getconn(timeout)


class Database:
    """Pooled access to the hub's PostgreSQL database."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.pool: ConnectionPool[Conn] = _Pool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            name="hub",
            reconnect_timeout=RECONNECT_TIMEOUT_S,
            configure=configure_connection,
        )

    def open(self) -> None:
        """Open the pool and wait until one connection works."""
        self.pool.open(wait=True, timeout=30)

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection inside a transaction that commits on success."""
        with self.pool.connection() as conn:
            yield conn

    def connect_writer(self) -> Conn:
        """A dedicated connection for the ingest writer (kept out of the pool)."""
        conn = psycopg.connect(self.url, autocommit=True)
        configure_connection(conn)
        return conn

    def storage_mode(self) -> StorageMode:
        """The mode the schema was created in; raise if the database is not migrated."""
        with self.connection() as conn:
            try:
                row = conn.execute(
                    "SELECT value FROM hub_meta WHERE key = 'storage_mode'"
                ).fetchone()
            except psycopg.errors.UndefinedTable as err:
                raise SchemaNotReadyError(
                    "database is not migrated: run `python -m hub migrate`"
                ) from err
        if row is None:
            raise SchemaNotReadyError("database is not migrated: run `python -m hub migrate`")
        return StorageMode(str(row[0]))

    def check_schema_current(self) -> StorageMode:
        """The storage mode, after checking every packaged migration has been applied."""
        mode = self.storage_mode()
        with self.connection() as conn:
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        applied = int(row[0]) if row else 0
        latest = max((m.version for m in load_migrations(mode)), default=0)
        if applied < latest:
            raise SchemaNotReadyError(
                f"database schema is at version {applied}, this hub needs {latest}:"
                " run `python -m hub migrate`"
            )
        return mode

    def ping(self) -> bool:
        """Whether the database answers now."""
        try:
            with self.pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, TimeoutError):
            return False
        return True

    # registry
    def upsert_devices(self, records: list[DeviceRecord]) -> tuple[int, int]:
        """Create or update devices; (created, updated)."""
        with self.connection() as conn:
            return registry.upsert_devices(conn, records)

    def list_devices(
        self, kind: Kind | None = None, limit: int = 1000, offset: int = 0
    ) -> list[DeviceRecord]:
        """Registered devices by id."""
        with self.connection() as conn:
            return registry.list_devices(conn, kind=kind, limit=limit, offset=offset)

    def get_device(self, device_id: str) -> DeviceRecord | None:
        """One device."""
        with self.connection() as conn:
            return registry.get_device(conn, device_id)

    def delete_device(self, device_id: str) -> bool:
        """Remove a device from the registry."""
        with self.connection() as conn:
            return registry.delete_device(conn, device_id)

    def count_devices(self) -> dict[str, int]:
        """Registered devices per kind."""
        with self.connection() as conn:
            return registry.count_devices(conn)

    def fetch_kind_index(self, since: datetime | None) -> tuple[dict[str, Kind], datetime | None]:
        """Device id → kind of devices changed since a time."""
        with self.connection() as conn:
            return registry.fetch_kind_index(conn, since)

    def fetch_devices_changed_since(
        self, since: datetime | None
    ) -> tuple[list[DeviceRecord], datetime | None]:
        """Full records of devices changed since a time (all when None), and the newest change."""
        with self.connection() as conn:
            return registry.fetch_devices_changed_since(conn, since)

    def device_pages(
        self, since: datetime | None, page: int = 5_000
    ) -> Iterator[tuple[list[DeviceRecord], datetime | None]]:
        """`fetch_devices_changed_since` a page at a time (a city's registry is big)."""
        after: str | None = None
        while True:
            with self.connection() as conn:
                records, newest = registry.fetch_devices_changed_since(
                    conn, since, after_id=after, limit=page
                )
            yield records, newest
            if len(records) < page:
                return
            after = records[-1].device_id

    def fetch_all_ids(self) -> set[str]:
        """All registered ids."""
        with self.connection() as conn:
            return registry.fetch_all_ids(conn)

    # telemetry
    def latest_reading(self, kind: Kind, device_id: str) -> dict[str, Any] | None:
        """A device's newest reading."""
        with self.connection() as conn:
            return telemetry.fetch_latest(conn, kind, device_id)

    def readings(
        self, kind: Kind, device_id: str, start: datetime, end: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """A device's readings in [start, end)."""
        with self.connection() as conn:
            return telemetry.fetch_readings(conn, kind, device_id, start, end, limit)

    # dead letters
    def list_dead_letters(
        self,
        reason: str | None = None,
        pending_only: bool = True,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[deadletters.StoredDeadLetter]:
        """Dead letters in arrival order."""
        with self.connection() as conn:
            return deadletters.list_dead_letters(
                conn, reason=reason, pending_only=pending_only, after_id=after_id, limit=limit
            )

    def count_dead_letters(self) -> dict[str, int]:
        """Unreplayed dead letters per reason."""
        with self.connection() as conn:
            return deadletters.count_dead_letters(conn)

    # retention
    def enforce_retention(self, mode: StorageMode) -> dict[str, int]:
        """Delete rows older than each table's retention (hypertables are left to TimescaleDB)."""
        deleted: dict[str, int] = {}
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT table_name, time_column, keep FROM retention_settings"
            ).fetchall()
            hypertables: set[str] = set()
            if mode is StorageMode.TIMESCALE:
                hypertables = {
                    str(r[0])
                    for r in conn.execute(
                        "SELECT hypertable_name FROM timescaledb_information.hypertables"
                    )
                }
            for table, column, keep in rows:
                if table in hypertables:
                    continue
                cursor = conn.execute(
                    psycopg.sql.SQL("DELETE FROM {} WHERE {} < now() - %s").format(
                        psycopg.sql.Identifier(table), psycopg.sql.Identifier(column)
                    ),
                    (keep,),
                )
                deleted[str(table)] = cursor.rowcount
        return deleted
