"""The alarms table: rule signals applied as upserts, people's acknowledgements and clears.

One open alarm per (source, type) is enforced by the partial unique index
`alarms_one_open_idx`; a raise goes through INSERT ... ON CONFLICT on it, so two hub
processes raising the same alarm at once leave one row with the count of both.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from hub.devices.kinds import Kind
from hub.rules.alarm_changes import AlarmChange, AlarmChangeKind, AlarmRecord, AlarmState
from hub.rules.alarm_types import AlarmType, Severity
from hub.rules.signals import AlarmSignal, EvidenceSnapshot, SignalAction, SourceKind
from hub.store.database import Database
from hub.store.telemetry import TABLES

Conn = psycopg.Connection[tuple[Any, ...]]

COLUMNS = (
    "id, source_kind, source_id, alarm_type, severity, state, raised_at, last_seen_at, count,"
    " message, cleared_at, evidence, details, acknowledged_by, acknowledged_at, cleared_by,"
    " case_id, updated_at"
)
_PREFIXED_COLUMNS = ", ".join(f"a.{c.strip()}" for c in COLUMNS.split(","))

_INSERT = (
    "INSERT INTO alarms (source_kind, source_id, alarm_type, severity, raised_at, last_seen_at,"
    " count, message, evidence, details, filing_due_at, updated_at)"
)
_ON_CONFLICT = (
    " ON CONFLICT (source_id, alarm_type) WHERE state <> 'cleared' DO UPDATE SET"
    " count = {count},"
    " last_seen_at = greatest(alarms.last_seen_at, excluded.last_seen_at),"
    " severity = excluded.severity,"
    " message = excluded.message,"
    " evidence = excluded.evidence,"
    " details = alarms.details || excluded.details,"
    # A severity change may change the filing decision: look at it again.
    " filing_due_at = CASE WHEN alarms.case_id IS NULL AND alarms.severity <> excluded.severity"
    " THEN excluded.filing_due_at ELSE alarms.filing_due_at END,"
    " updated_at = excluded.updated_at"
    f" RETURNING {COLUMNS}, (xmax = 0) AS inserted"
)
_UPSERT = (
    _INSERT
    + " VALUES (%(source_kind)s, %(source_id)s, %(alarm_type)s, %(severity)s, %(at)s, %(at)s,"
    " %(count)s, %(message)s, %(evidence)s, %(details)s, %(filing_due)s, %(now)s)" + _ON_CONFLICT
)
# The same for many signals of distinct (source, type), one row each: a column per array.
_UPSERT_MANY = (
    _INSERT + " SELECT s.source_kind, s.source_id, s.alarm_type, s.severity, s.at, s.at, s.count,"
    " s.message, s.evidence, s.details, s.filing_due, %(now)s FROM unnest(%(source_kind)b::text[],"
    " %(source_id)b::text[], %(alarm_type)b::text[], %(severity)b::text[],"
    " %(at)b::timestamptz[], %(count)b::integer[], %(message)b::text[], %(evidence)b::jsonb[],"
    " %(details)b::jsonb[], %(filing_due)b::timestamptz[]) AS s(source_kind, source_id,"
    " alarm_type, severity, at, count, message, evidence, details, filing_due)" + _ON_CONFLICT
)
_RAISE_COUNT = "alarms.count + 1"
_UPDATE_COUNT = "greatest(alarms.count, excluded.count)"
_UPSERTS = {
    SignalAction.RAISE: (
        _UPSERT.replace("{count}", _RAISE_COUNT),
        _UPSERT_MANY.replace("{count}", _RAISE_COUNT),
    ),
    SignalAction.UPDATE: (
        _UPSERT.replace("{count}", _UPDATE_COUNT),
        _UPSERT_MANY.replace("{count}", _UPDATE_COUNT),
    ),
}
_CLEAR = (
    "UPDATE alarms SET state = 'cleared', cleared_at = greatest(raised_at, %(at)s),"
    " details = details || %(details)s, updated_at = %(now)s,"
    # An alarm that held until its filing was due is still filed, however late the clear
    # and the filing decision are judged (a backlog): filing is in event time.
    " filing_due_at = CASE WHEN case_id IS NULL AND filing_due_at <= greatest(raised_at, %(at)s)"
    " THEN filing_due_at END"
    " WHERE source_id = %(source_id)s AND alarm_type = %(alarm_type)s AND state <> 'cleared'"
    f" RETURNING {COLUMNS}"
)


class AlarmNotFoundError(LookupError):
    """No alarm with that id."""


class AlarmStateError(ValueError):
    """The alarm's state does not allow what was asked; the message says why."""


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """Which alarms to list; None means any."""

    states: Sequence[AlarmState] = ()
    alarm_type: AlarmType | None = None
    source_id: str | None = None
    source_kind: SourceKind | None = None
    asset_kind: Kind | None = None
    severity: Severity | None = None
    raised_since: datetime | None = None
    raised_until: datetime | None = None
    limit: int = 100
    offset: int = 0


_dump_json = partial(orjson.dumps, default=str, option=orjson.OPT_SERIALIZE_NUMPY)


def json_value(value: object) -> Any:
    """A JSON-compatible copy of a value (datetimes as RFC 3339, anything odd as text)."""
    return orjson.loads(_dump_json(value))


def jsonb(value: object) -> Jsonb:
    """A value as a jsonb parameter, dumped as `json_value` would make it, in one pass.

    psycopg dumps a `Jsonb` with the standard library's `json.dumps` unless told otherwise:
    with a copy by `json_value` first, a storm's alarm evidence was encoded three times
    (a fifth of `apply_signals`' time, issue 23)."""
    return Jsonb(value, dumps=_dump_json)


def _evidence(evidence: Sequence[EvidenceSnapshot]) -> list[dict[str, Any]]:
    return [
        {"ts": e.ts.isoformat(), "device_id": e.device_id, "values": dict(e.values)}
        for e in evidence
    ]


def record_from_row(row: Sequence[Any]) -> AlarmRecord:
    """An AlarmRecord from a row of COLUMNS."""
    return AlarmRecord(
        id=int(row[0]),
        source_kind=SourceKind(row[1]),
        source_id=str(row[2]),
        alarm_type=AlarmType(row[3]),
        severity=Severity(row[4]),
        state=AlarmState(row[5]),
        raised_at=row[6],
        last_seen_at=row[7],
        count=int(row[8]),
        message=str(row[9]),
        cleared_at=row[10],
        evidence=tuple(row[11] or ()),
        details=dict(row[12] or {}),
        acknowledged_by=row[13],
        acknowledged_at=row[14],
        cleared_by=row[15],
        case_id=None if row[16] is None else int(row[16]),
        updated_at=row[17],
    )


# Whether the filing policy ever files an alarm of a type at a severity (`CasePolicy.files`).
FilesAlarms = Callable[[AlarmType, Severity], bool]


def _files_all(alarm_type: AlarmType, severity: Severity) -> bool:
    return True


def _signal_params(signal: AlarmSignal, now: datetime, files: FilesAlarms) -> dict[str, Any]:
    return {
        "source_kind": signal.source_kind.value,
        "source_id": signal.source_id,
        "alarm_type": signal.alarm_type.value,
        "severity": signal.severity.value,
        "at": signal.at,
        "count": max(1, signal.count),
        "message": signal.message,
        "evidence": jsonb(_evidence(signal.evidence)),
        "details": jsonb(dict(signal.details)),
        # An alarm the policy never files is decided at its raise, not looked at again.
        "filing_due": signal.at if files(signal.alarm_type, signal.severity) else None,
        "now": now,
    }


def _runs(signals: Sequence[AlarmSignal]) -> Iterator[list[AlarmSignal]]:
    """The signals in order, in runs that one statement can apply: a CLEAR alone; RAISEs, or
    UPDATEs, together while no (source, type) repeats (one statement cannot upsert a row
    twice)."""
    run: list[AlarmSignal] = []
    keys: set[tuple[str, str]] = set()
    for signal in signals:
        key = (signal.source_id, signal.alarm_type.value)
        if run and (
            signal.action is SignalAction.CLEAR or signal.action is not run[0].action or key in keys
        ):
            yield run
            run, keys = [], set()
        run.append(signal)
        keys.add(key)
        if signal.action is SignalAction.CLEAR:
            yield run
            run, keys = [], set()
    if run:
        yield run


def _many_params(run: Sequence[AlarmSignal], now: datetime, files: FilesAlarms) -> dict[str, Any]:
    return {
        "source_kind": [s.source_kind.value for s in run],
        "source_id": [s.source_id for s in run],
        "alarm_type": [s.alarm_type.value for s in run],
        "severity": [s.severity.value for s in run],
        "at": [s.at for s in run],
        "count": [max(1, s.count) for s in run],
        "message": [s.message for s in run],
        "evidence": [jsonb(_evidence(s.evidence)) for s in run],
        "details": [jsonb(dict(s.details)) for s in run],
        "filing_due": [s.at if files(s.alarm_type, s.severity) else None for s in run],
        "now": now,
    }


def apply_signals(
    conn: Conn, signals: Sequence[AlarmSignal], now: datetime, files: FilesAlarms = _files_all
) -> list[AlarmChange]:
    """Apply rule signals in order; return what changed (nothing for a clear of no open alarm).

    RAISE inserts, or counts a repeat on the open alarm; UPDATE refreshes the open alarm and
    opens a new one if a person cleared it while the condition held; CLEAR closes it. An
    alarm is due for the filing policy at its raise (and again when its severity changes),
    unless `files` says the policy never files its type at its severity.
    """
    # The statements go out in a pipeline and their rows are read once all are sent: a storm
    # of thousands of alarms (every truck's track gap after a mobile network outage) costs
    # one round trip to the database, not one each (issue 23). The server runs them in order.
    # A run of raises (or updates) of distinct alarms is one statement: per statement,
    # psycopg's own work was most of a storm's cost (~100 µs per alarm).
    sent: list[tuple[list[AlarmSignal], psycopg.Cursor[tuple[Any, ...]]]] = []
    with conn.pipeline():
        for run in _runs(signals):
            signal = run[0]
            if signal.action is SignalAction.CLEAR:
                params = _signal_params(signal, now, files)
                clear_details = {**signal.details, "clear_evidence": _evidence(signal.evidence)}
                params["details"] = jsonb(clear_details)
                sent.append((run, conn.execute(_CLEAR, params)))
            elif len(run) == 1:
                params = _signal_params(signal, now, files)
                sent.append((run, conn.execute(_UPSERTS[signal.action][0], params)))
            else:
                many = _UPSERTS[signal.action][1]
                sent.append((run, conn.execute(many, _many_params(run, now, files))))
    changes: list[AlarmChange] = []
    for run, cursor in sent:
        if run[0].action is SignalAction.CLEAR:
            row = cursor.fetchone()
            if row is not None:  # None: a CLEAR of no open alarm
                changes.append(AlarmChange(AlarmChangeKind.CLEARED, record_from_row(row)))
            continue
        # INSERT ... ON CONFLICT DO UPDATE returns a row for every one proposed, in no
        # promised order: matched by (source, type), distinct within the run (COLUMNS'
        # third and fourth).
        rows = {(row[2], row[3]): row for row in cursor.fetchall()}
        for signal in run:
            row = rows[(signal.source_id, signal.alarm_type.value)]
            kind = AlarmChangeKind.RAISED if row[-1] else AlarmChangeKind.UPDATED
            changes.append(AlarmChange(kind, record_from_row(row)))
    return changes


def get_alarm(conn: Conn, alarm_id: int) -> AlarmRecord | None:
    """One alarm by id."""
    row = conn.execute(f"SELECT {COLUMNS} FROM alarms WHERE id = %s", (alarm_id,)).fetchone()
    return None if row is None else record_from_row(row)


def _refusal(conn: Conn, alarm_id: int, wanted: str) -> Exception:
    alarm = get_alarm(conn, alarm_id)
    if alarm is None:
        return AlarmNotFoundError(f"no alarm with id {alarm_id}")
    if alarm.state is AlarmState.CLEARED:
        who = alarm.cleared_by or "the rules"
        when = alarm.cleared_at.isoformat() if alarm.cleared_at else "?"
        return AlarmStateError(f"cannot {wanted} alarm {alarm_id}: cleared by {who} at {when}")
    when = alarm.acknowledged_at.isoformat() if alarm.acknowledged_at else "?"
    return AlarmStateError(
        f"cannot {wanted} alarm {alarm_id}: already acknowledged by {alarm.acknowledged_by} "
        f"at {when}"
    )


def acknowledge_alarm(
    conn: Conn, alarm_id: int, actor_id: str, at: datetime, note: str = ""
) -> AlarmChange:
    """Acknowledge an active alarm; AlarmStateError when it is acknowledged or cleared."""
    row = conn.execute(
        "UPDATE alarms SET state = 'acknowledged', acknowledged_by = %(actor)s,"
        " acknowledged_at = %(at)s, updated_at = %(at)s,"
        " details = CASE WHEN %(note)s = '' THEN details"
        " ELSE details || jsonb_build_object('acknowledge_note', %(note)s::text) END"
        f" WHERE id = %(id)s AND state = 'active' RETURNING {COLUMNS}",
        {"actor": actor_id, "at": at, "note": note, "id": alarm_id},
    ).fetchone()
    if row is None:
        raise _refusal(conn, alarm_id, "acknowledge")
    return AlarmChange(AlarmChangeKind.ACKNOWLEDGED, record_from_row(row))


def clear_alarm(
    conn: Conn, alarm_id: int, actor_id: str, at: datetime, note: str = ""
) -> AlarmChange:
    """Clear an open alarm by a person's decision; AlarmStateError when it is already cleared."""
    row = conn.execute(
        "UPDATE alarms SET state = 'cleared', cleared_by = %(actor)s,"
        " cleared_at = greatest(raised_at, %(at)s), updated_at = %(at)s, filing_due_at = NULL,"
        " details = CASE WHEN %(note)s = '' THEN details"
        " ELSE details || jsonb_build_object('clear_note', %(note)s::text) END"
        f" WHERE id = %(id)s AND state <> 'cleared' RETURNING {COLUMNS}",
        {"actor": actor_id, "at": at, "note": note, "id": alarm_id},
    ).fetchone()
    if row is None:
        raise _refusal(conn, alarm_id, "clear")
    return AlarmChange(AlarmChangeKind.CLEARED, record_from_row(row))


def list_alarms(conn: Conn, query: AlarmFilter) -> list[AlarmRecord]:
    """Alarms matching a filter, newest first."""
    join = ""
    if query.asset_kind is not None:
        join = " JOIN devices d ON d.device_id = a.source_id AND d.kind = %(asset_kind)s"
    rows = conn.execute(
        f"SELECT {_PREFIXED_COLUMNS} FROM alarms a{join}"
        " WHERE (%(states)s::text[] IS NULL OR a.state = ANY(%(states)s))"
        " AND (%(alarm_type)s::text IS NULL OR a.alarm_type = %(alarm_type)s)"
        " AND (%(source_id)s::text IS NULL OR a.source_id = %(source_id)s)"
        " AND (%(source_kind)s::text IS NULL OR a.source_kind = %(source_kind)s)"
        " AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)"
        " AND (%(since)s::timestamptz IS NULL OR a.raised_at >= %(since)s)"
        " AND (%(until)s::timestamptz IS NULL OR a.raised_at < %(until)s)"
        " ORDER BY a.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {
            "states": [s.value for s in query.states] or None,
            "alarm_type": query.alarm_type.value if query.alarm_type else None,
            "source_id": query.source_id,
            "source_kind": query.source_kind.value if query.source_kind else None,
            "asset_kind": query.asset_kind.value if query.asset_kind else None,
            "severity": query.severity.value if query.severity else None,
            "since": query.raised_since,
            "until": query.raised_until,
            "limit": query.limit,
            "offset": query.offset,
        },
    ).fetchall()
    return [record_from_row(r) for r in rows]


def list_open_alarms(conn: Conn) -> list[AlarmRecord]:
    """Every alarm not cleared (to restore into the rule engine at start-up)."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM alarms WHERE state <> 'cleared' ORDER BY id"
    ).fetchall()
    return [record_from_row(r) for r in rows]


def fetch_last_seen(conn: Conn) -> dict[str, datetime]:
    """Receive time of each registered device's newest stored reading (for the offline rule)."""
    seen: dict[str, datetime] = {}
    for kind, table in TABLES.items():
        rows = conn.execute(
            "SELECT d.device_id, t.received_at FROM devices d CROSS JOIN LATERAL ("
            f" SELECT received_at FROM {table.table} WHERE device_id = d.device_id"
            " ORDER BY ts DESC LIMIT 1) t WHERE d.kind = %s",
            (kind.value,),
        ).fetchall()
        seen.update({str(r[0]): r[1] for r in rows})
    return seen


def alarms_due_for_filing(conn: Conn, now: datetime, limit: int = 100) -> list[AlarmRecord]:
    """Alarms without a case whose filing decision is due at event time `now` (open, or
    cleared no earlier than it was due), locked for this transaction."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM alarms WHERE filing_due_at <= %s AND case_id IS NULL"
        " AND (state <> 'cleared' OR cleared_at >= filing_due_at)"
        " ORDER BY filing_due_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, limit),
    ).fetchall()
    return [record_from_row(r) for r in rows]


def set_filing_due(conn: Conn, due: Sequence[tuple[int, datetime | None]]) -> None:
    """When the filing policy should look at each alarm again (None: decided for good), in
    one statement: (alarm id, due at) pairs."""
    if not due:
        return
    conn.execute(
        "UPDATE alarms SET filing_due_at = v.due_at"
        " FROM unnest(%b::bigint[], %b::timestamptz[]) AS v(id, due_at) WHERE alarms.id = v.id",
        ([alarm_id for alarm_id, _ in due], [due_at for _, due_at in due]),
    )


def link_case(conn: Conn, alarm_id: int, case_id: int) -> None:
    """Record the case an alarm was filed into."""
    conn.execute(
        "UPDATE alarms SET case_id = %s, filing_due_at = NULL WHERE id = %s", (case_id, alarm_id)
    )


def clearances_to_check(
    conn: Conn, cleared_before: datetime, limit: int = 100
) -> list[AlarmRecord]:
    """Cleared alarms behind a case, cleared before a time and not yet checked, locked."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM alarms WHERE case_id IS NOT NULL AND state = 'cleared'"
        " AND clear_checked_at IS NULL AND cleared_at <= %s ORDER BY cleared_at, id"
        " LIMIT %s FOR UPDATE SKIP LOCKED",
        (cleared_before, limit),
    ).fetchall()
    return [record_from_row(r) for r in rows]


def recurred_since(conn: Conn, alarm: AlarmRecord) -> AlarmRecord | None:
    """A later alarm of the same source and type, if the condition came back."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM alarms WHERE source_id = %s AND alarm_type = %s AND id > %s"
        " ORDER BY id LIMIT 1",
        (alarm.source_id, alarm.alarm_type.value, alarm.id),
    ).fetchone()
    return None if row is None else record_from_row(row)


def mark_clear_checked(
    conn: Conn, alarm_id: int, at: datetime, outcome: Mapping[str, object]
) -> None:
    """Record that an alarm's clearance was checked, and what was found."""
    conn.execute(
        "UPDATE alarms SET clear_checked_at = %s,"
        " details = details || jsonb_build_object('clear_check', %s::jsonb) WHERE id = %s",
        (at, jsonb(dict(outcome)), alarm_id),
    )


class AlarmStore:
    """Alarms through a connection pool: one transaction per operation.

    `files` tells which alarms the filing policy ever files; the others are decided at their
    raise (without it, every alarm is looked at by the policy once).
    """

    def __init__(self, db: Database, files: FilesAlarms = _files_all) -> None:
        self.db = db
        self._files = files

    def apply(self, signals: Sequence[AlarmSignal], now: datetime) -> list[AlarmChange]:
        """Apply rule signals in one transaction; return the changes once committed."""
        if not signals:
            return []
        with self.db.connection() as conn:
            return apply_signals(conn, signals, now, self._files)

    def acknowledge(
        self, alarm_id: int, actor_id: str, at: datetime, note: str = ""
    ) -> AlarmChange:
        """A person acknowledges an active alarm."""
        with self.db.connection() as conn:
            return acknowledge_alarm(conn, alarm_id, actor_id, at, note)

    def clear(self, alarm_id: int, actor_id: str, at: datetime, note: str = "") -> AlarmChange:
        """A person clears an open alarm."""
        with self.db.connection() as conn:
            return clear_alarm(conn, alarm_id, actor_id, at, note)

    def get(self, alarm_id: int) -> AlarmRecord | None:
        """One alarm."""
        with self.db.connection() as conn:
            return get_alarm(conn, alarm_id)

    def search(self, query: AlarmFilter) -> list[AlarmRecord]:
        """Alarms matching a filter, newest first."""
        with self.db.connection() as conn:
            return list_alarms(conn, query)

    def open_alarms(self) -> list[AlarmRecord]:
        """Every alarm not cleared."""
        with self.db.connection() as conn:
            return list_open_alarms(conn)

    def last_seen(self) -> dict[str, datetime]:
        """Receive time of each device's newest stored reading."""
        with self.db.connection() as conn:
            return fetch_last_seen(conn)
