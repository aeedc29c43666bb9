"""Case rows in PostgreSQL: the record, its columns, reading and listing cases and their events.

The workflow's writes are in `cases_workflow`, filing from alarms in `cases_filing`, the
figures in `cases_stats`; `cases.CaseStore` puts them behind one pool.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hub.cases.calendar import Light, Stage
from hub.cases.classification import ClassificationError
from hub.cases.intake import CaseSetup
from hub.cases.milestones import StageMilestones, evaluate_stage_milestones
from hub.cases.numbering import DEFAULT_SEQ_WIDTH, case_date, format_case_number
from hub.cases.state_codec import decode_case_state, encode_case_state
from hub.cases.workflow import (
    Action,
    CaseEvent,
    CaseSource,
    CaseState,
    CaseStatus,
    Role,
    WorkflowError,
)

Conn = psycopg.Connection[tuple[Any, ...]]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_COLUMNS = (
    "id, case_number, state, description, lat, lon, address, alarm_id, device_id, evidence,"
    " external_id, created_at, stage, stage_started_at, stage_due_at, stage_yellow_at,"
    " stage_overdue_at, stage_due_beyond_calendar"
)


class CaseNotFoundError(LookupError):
    """No case with that id."""


class IllegalTransitionError(WorkflowError):
    """The case's status does not allow the action; the message names the allowed ones."""


class RoleRefusedError(WorkflowError):
    """The action is allowed now, but not for this role."""


class CaseConflictError(RuntimeError):
    """The case changed since it was read (its version moved on); read it again and retry."""


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """A stored case: workflow state plus location, description, evidence and stage deadlines."""

    id: int
    case_number: str
    state: CaseState
    description: str
    created_at: datetime
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    alarm_id: int | None = None
    device_id: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    external_id: str | None = None
    milestones: StageMilestones | None = None

    def light_at(self, now: datetime) -> Light | None:
        """The running stage's light at an instant; None once final."""
        return None if self.milestones is None else self.milestones.light_at(now)


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """Which cases to list; None or empty means any."""

    statuses: Sequence[CaseStatus] = ()
    class_code: str | None = None
    class_codes: Sequence[str] = ()
    case_numbers: Sequence[str] = ()
    department: str | None = None
    area: str | None = None
    source: CaseSource | None = None
    overdue: bool | None = None
    light: Light | None = None
    alarm_id: int | None = None
    inspector: str | None = None
    callback_due_from: Sequence[CaseSource] = ()
    """closed cases reported from these sources, or with such a report merged into them,
    whose reporter has not been called back (回访)"""
    open_only: bool = False
    reported_since: datetime | None = None
    reported_until: datetime | None = None
    limit: int = 100
    offset: int = 0


def _record(row: Sequence[Any]) -> CaseRecord:
    milestones = None
    if row[12] is not None:
        milestones = StageMilestones(
            stage=Stage(row[12]),
            started_at=row[13],
            due_at=row[14],
            yellow_at=row[15],
            overdue_at=row[16],
            beyond_calendar=bool(row[17]),
        )
    return CaseRecord(
        id=int(row[0]),
        case_number=str(row[1]),
        state=decode_case_state(row[2]),
        description=str(row[3]),
        lat=row[4],
        lon=row[5],
        address=row[6],
        alarm_id=None if row[7] is None else int(row[7]),
        device_id=row[8],
        evidence=dict(row[9] or {}),
        external_id=row[10],
        created_at=row[11],
        milestones=milestones,
    )


def _state_columns(setup: CaseSetup, state: CaseState) -> dict[str, Any]:
    marks = evaluate_stage_milestones(
        state, calendar=setup.calendar, deadlines=setup.policy.deadlines
    )
    return {
        "status": state.status.value,
        "class_kind": state.class_kind.value,
        "class_code": state.class_code,
        "urgency": state.urgency.value,
        "grid_code": state.grid_code,
        "department": state.department,
        "state": Jsonb(encode_case_state(state)),
        "version": state.version,
        "reported_at": state.reported_at,
        "registered_at": state.registered_at,
        "dispatched_at": state.dispatched_at,
        "handled_at": state.handled_at,
        "closed_at": state.closed_at,
        "finished_at": state.finished_at,
        "updated_at": state.updated_at,
        "stage": marks.stage.value if marks else None,
        "stage_started_at": marks.started_at if marks else None,
        "stage_due_at": marks.due_at if marks else None,
        "stage_yellow_at": marks.yellow_at if marks else None,
        "stage_overdue_at": marks.overdue_at if marks else None,
        "stage_due_beyond_calendar": marks.beyond_calendar if marks else False,
    }


def case_document(setup: CaseSetup, record: CaseRecord) -> dict[str, object]:
    """A case as the webhook and the API show it (without events)."""
    state = record.state
    try:
        class_name = setup.classes.get(state.class_kind, state.class_code).name_zh
    except ClassificationError:
        class_name = None
    return {
        "id": record.id,
        "case_number": record.case_number,
        "status": state.status.value,
        "source": state.source.value,
        "class_kind": state.class_kind.value,
        "class_code": state.class_code,
        "class_name": class_name,
        "urgency": state.urgency.value,
        "department": state.department,
        "department_name": setup.policy.departments.get(state.department or ""),
        "grid_code": state.grid_code,
        "lat": record.lat,
        "lon": record.lon,
        "address": record.address,
        "description": record.description,
        "alarm_id": record.alarm_id,
        "device_id": record.device_id,
        "reported_at": state.reported_at.isoformat(),
        "updated_at": state.updated_at.isoformat(),
        "version": state.version,
        # The running stage's deadline lies past the loaded calendar: computed by weekdays
        # alone, holidays unknown. Import the next year (python -m hub calendar import).
        "deadline_beyond_calendar": (
            record.milestones.beyond_calendar if record.milestones is not None else False
        ),
    }


def next_case_number(conn: Conn, setup: CaseSetup, at: datetime) -> str:
    """Take the next number of the local day of `at` (atomic across processes)."""
    local_date = case_date(at, setup.calendar.tz)
    row = conn.execute(
        "INSERT INTO case_number_seq (local_date, last_seq) VALUES (%s, 1)"
        " ON CONFLICT (local_date) DO UPDATE SET last_seq = case_number_seq.last_seq + 1"
        " RETURNING last_seq",
        (local_date,),
    ).fetchone()
    seq = int(row[0]) if row else 1
    width = max(DEFAULT_SEQ_WIDTH, len(str(seq)))
    return format_case_number(local_date, seq, setup.number_prefix, width)


def get_case(conn: Conn, case_id: int, *, lock: bool = False) -> CaseRecord | None:
    """One case by id."""
    suffix = " FOR UPDATE" if lock else ""
    row = conn.execute(f"SELECT {_COLUMNS} FROM cases WHERE id = %s{suffix}", (case_id,)).fetchone()
    return None if row is None else _record(row)


def get_case_by_number(conn: Conn, case_number: str) -> CaseRecord | None:
    """One case by its case number."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM cases WHERE case_number = %s", (case_number,)
    ).fetchone()
    return None if row is None else _record(row)


def list_case_events(conn: Conn, case_id: int, case_number: str) -> list[CaseEvent]:
    """A case's event log in order."""
    rows = conn.execute(
        "SELECT seq, action, from_status, to_status, actor_role, at, actor_id, note, payload"
        " FROM case_events WHERE case_id = %s ORDER BY seq",
        (case_id,),
    ).fetchall()
    return [
        CaseEvent(
            case_id=case_number,
            seq=int(r[0]),
            action=Action(r[1]),
            from_status=None if r[2] is None else CaseStatus(r[2]),
            to_status=CaseStatus(r[3]),
            actor_role=Role(r[4]),
            at=r[5],
            actor_id=r[6],
            note=str(r[7]),
            payload=MappingProxyType(dict(r[8] or {})),
        )
        for r in rows
    ]


def list_cases(conn: Conn, query: CaseFilter, now: datetime) -> list[CaseRecord]:
    """Cases matching a filter, newest first."""
    light = query.light.value if query.light else None
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM cases"
        " WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))"
        " AND (NOT %(open_only)s OR finished_at IS NULL)"
        " AND (%(class_code)s::text IS NULL OR class_code = %(class_code)s)"
        " AND (%(class_codes)s::text[] IS NULL OR class_code = ANY(%(class_codes)s))"
        " AND (%(numbers)s::text[] IS NULL OR case_number = ANY(%(numbers)s))"
        " AND (%(department)s::text IS NULL OR department = %(department)s)"
        " AND (%(area)s::text IS NULL OR grid_code LIKE %(area)s || '%%')"
        " AND (%(source)s::text IS NULL OR source = %(source)s)"
        " AND (%(alarm_id)s::bigint IS NULL OR alarm_id = %(alarm_id)s)"
        " AND (%(inspector)s::text IS NULL OR (finished_at IS NULL"
        "  AND state ->> 'inspector' = %(inspector)s))"
        " AND (%(callback)s::text[] IS NULL OR (status = 'closed'"
        "  AND state ->> 'callback_result' IS NULL AND (source = ANY(%(callback)s)"
        "  OR EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(evidence -> 'merged',"
        "  '[]'::jsonb)) AS m WHERE m ->> 'source' = ANY(%(callback)s)))))"
        " AND (%(since)s::timestamptz IS NULL OR reported_at >= %(since)s)"
        " AND (%(until)s::timestamptz IS NULL OR reported_at < %(until)s)"
        " AND (%(overdue)s::boolean IS NULL OR (%(overdue)s = (finished_at IS NULL"
        "  AND stage_overdue_at IS NOT NULL AND stage_overdue_at <= %(now)s)))"
        " AND (%(light)s::text IS NULL OR (finished_at IS NULL AND stage IS NOT NULL AND"
        "  CASE WHEN stage_overdue_at <= %(now)s THEN 'red'"
        "  WHEN stage_yellow_at <= %(now)s THEN 'yellow' ELSE 'green' END = %(light)s))"
        " ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {
            "statuses": [s.value for s in query.statuses] or None,
            "open_only": query.open_only,
            "class_code": query.class_code,
            "class_codes": list(query.class_codes) or None,
            "numbers": list(query.case_numbers) or None,
            "department": query.department,
            "area": query.area,
            "source": query.source.value if query.source else None,
            "alarm_id": query.alarm_id,
            "inspector": query.inspector,
            "callback": [s.value for s in query.callback_due_from] or None,
            "since": query.reported_since,
            "until": query.reported_until,
            "overdue": query.overdue,
            "light": light,
            "now": now,
            "limit": query.limit,
            "offset": query.offset,
        },
    ).fetchall()
    return [_record(r) for r in rows]


def count_open_by_status_and_light(conn: Conn, now: datetime) -> list[tuple[str, str, int]]:
    """(status, light, count) of every open case with a running stage, at `now`."""
    rows = conn.execute(
        "SELECT status, CASE WHEN stage_overdue_at <= %(now)s THEN 'red'"
        " WHEN stage_yellow_at <= %(now)s THEN 'yellow' ELSE 'green' END AS light, count(*)"
        " FROM cases WHERE finished_at IS NULL AND stage IS NOT NULL GROUP BY 1, 2",
        {"now": now},
    ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def overdue_board(conn: Conn, now: datetime, limit: int) -> list[CaseRecord]:
    """Open cases past their stage's limit, longest overdue first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM cases WHERE finished_at IS NULL"
        " AND stage_overdue_at <= %s ORDER BY stage_overdue_at, id LIMIT %s",
        (now, limit),
    ).fetchall()
    return [_record(r) for r in rows]


def reporter_sources(record: CaseRecord) -> set[str]:
    """The sources of a case's report and of every report merged into it."""
    merged = record.evidence.get("merged")
    sources = {record.state.source.value}
    for report in merged if isinstance(merged, list) else []:
        if isinstance(report, dict) and isinstance(report.get("source"), str):
            sources.add(report["source"])
    return sources


def callback_due(setup: CaseSetup, record: CaseRecord) -> bool:
    """Closed, a public report (or one merged into it), and its reporter not yet called back."""
    state = record.state
    wanted = {s.value for s in setup.policy.centre.callback_sources}
    return (
        state.status is CaseStatus.CLOSED
        and state.callback_result is None
        and bool(reporter_sources(record) & wanted)
    )
