"""Cases in PostgreSQL behind one connection pool: `CaseStore`, and the names of the modules
that hold the pieces (rows and queries, workflow writes, filing from alarms, figures).

Every change of a case is one transaction: the new state (with optimistic concurrency
on its version), its events in `case_events` and their rows in the outbox.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from hub.cases.attachments import CheckedAttachment
from hub.cases.evaluation import DepartmentScore
from hub.cases.intake import CaseSetup, PersonReport, draft_person_case
from hub.cases.post_statistics import PostFigures
from hub.cases.statistics import AreaFigures, AreaLevel
from hub.cases.workflow import Action, CaseEvent, Payload, Role
from hub.store import cases_attachments
from hub.store.cases_attachments import AttachmentRecord
from hub.store.cases_filing import (
    ClearanceCheck,
    FiledAlarm,
    check_clearances,
    file_due_alarms,
)
from hub.store.cases_merge import MergeRefusedError, merge_case
from hub.store.cases_records import (
    CaseConflictError,
    CaseFilter,
    CaseNotFoundError,
    CaseRecord,
    IllegalTransitionError,
    RoleRefusedError,
    case_document,
    count_open_by_status_and_light,
    get_case,
    get_case_by_number,
    list_case_events,
    list_cases,
    next_case_number,
    overdue_board,
)
from hub.store.cases_stats import area_statistics, evaluate_period, post_statistics
from hub.store.cases_workflow import act_on_case, open_case
from hub.store.database import Database
from hub.store.outbox import OutboxTarget

__all__ = [
    "CaseConflictError",
    "CaseFilter",
    "CaseNotFoundError",
    "CaseRecord",
    "CaseStore",
    "ClearanceCheck",
    "FiledAlarm",
    "IllegalTransitionError",
    "MergeRefusedError",
    "RoleRefusedError",
    "act_on_case",
    "case_document",
    "check_clearances",
    "count_open_by_status_and_light",
    "evaluate_period",
    "file_due_alarms",
    "get_case",
    "get_case_by_number",
    "list_case_events",
    "list_cases",
    "next_case_number",
    "open_case",
    "overdue_board",
]


class CaseStore:
    """Cases through a connection pool: one transaction per operation."""

    def __init__(
        self, db: Database, setup: CaseSetup, targets: Sequence[OutboxTarget] = ()
    ) -> None:
        self.db = db
        self.setup = setup
        self.targets = tuple(targets)

    def report(self, report: PersonReport, at: datetime) -> CaseRecord:
        """Open a case from a person's report (IntakeError or ClassificationError if it cannot)."""
        draft = draft_person_case(self.setup, report)
        with self.db.connection() as conn:
            return open_case(conn, self.setup, draft, at, self.targets)

    def act(
        self,
        case_id: int,
        action: Action,
        actor_role: Role,
        at: datetime,
        payload: Payload | None = None,
        *,
        actor_id: str | None = None,
        expected_version: int | None = None,
    ) -> CaseRecord:
        """Apply one workflow action as one transaction (merge moves both cases)."""
        with self.db.connection() as conn:
            if action is Action.MERGE:
                into = (payload or {}).get("into")
                note = (payload or {}).get("note")
                return merge_case(
                    conn,
                    self.setup,
                    case_id,
                    "" if into is None else str(into),
                    actor_role,
                    at,
                    note=None if note is None else str(note),
                    actor_id=actor_id,
                    expected_version=expected_version,
                    targets=self.targets,
                )
            record, _ = act_on_case(
                conn,
                self.setup,
                case_id,
                action,
                actor_role,
                at,
                payload,
                actor_id=actor_id,
                expected_version=expected_version,
                targets=self.targets,
            )
        return record

    def get(self, case_id: int) -> CaseRecord | None:
        """One case by id."""
        with self.db.connection() as conn:
            return get_case(conn, case_id)

    def get_by_number(self, case_number: str) -> CaseRecord | None:
        """One case by case number."""
        with self.db.connection() as conn:
            return get_case_by_number(conn, case_number)

    def events(self, record: CaseRecord) -> list[CaseEvent]:
        """A case's event log."""
        with self.db.connection() as conn:
            return list_case_events(conn, record.id, record.case_number)

    def search(self, query: CaseFilter, now: datetime) -> list[CaseRecord]:
        """Cases matching a filter, newest first."""
        with self.db.connection() as conn:
            return list_cases(conn, query, now)

    def supervision(
        self, now: datetime, limit: int
    ) -> tuple[list[tuple[str, str, int]], list[CaseRecord]]:
        """Open cases counted by status and light, and the overdue board (值班长 view)."""
        with self.db.connection() as conn:
            return count_open_by_status_and_light(conn, now), overdue_board(conn, now, limit)

    def evaluate(
        self, start: datetime, end: datetime, as_of: datetime
    ) -> dict[str, DepartmentScore]:
        """Department figures, scores and grades for cases registered in [start, end)."""
        with self.db.connection() as conn:
            return evaluate_period(conn, self.setup, start, end, as_of)

    def statistics(
        self,
        level: AreaLevel,
        start: datetime,
        end: datetime,
        as_of: datetime,
        department: str | None = None,
    ) -> list[AreaFigures]:
        """Figures per area or department for cases reported or registered in [start, end)."""
        with self.db.connection() as conn:
            return area_statistics(conn, self.setup, level, start, end, as_of, department)

    def post_statistics(self, start: datetime, end: datetime) -> list[PostFigures]:
        """The centre posts' work per person for actions in [start, end)."""
        with self.db.connection() as conn:
            return post_statistics(conn, start, end)

    def file_due_alarms(self, now: datetime, event_now: datetime | None = None) -> list[FiledAlarm]:
        """Run the filing policy over alarms whose decision is due at event time `event_now`."""
        results: list[FiledAlarm] = []
        while True:
            with self.db.connection() as conn:
                batch = file_due_alarms(conn, self.setup, now, self.targets, event_now=event_now)
            results.extend(batch)
            if len(batch) < 100:
                return results

    def check_clearances(
        self, now: datetime, stay_clear: timedelta, event_now: datetime | None = None
    ) -> list[ClearanceCheck]:
        """Attach stayed-clear alarms to their cases as verification evidence."""
        with self.db.connection() as conn:
            return check_clearances(
                conn, self.setup, now, stay_clear, self.targets, event_now=event_now
            )

    def attach(
        self,
        case_id: int,
        checked: CheckedAttachment,
        data: bytes,
        *,
        actor_role: Role,
        actor_id: str | None,
        at: datetime,
    ) -> AttachmentRecord:
        """Keep an attachment (already checked for size and type) of a case."""
        with self.db.connection() as conn:
            return cases_attachments.add_attachment(
                conn, case_id, checked, data, actor_role=actor_role, actor_id=actor_id, at=at
            )

    def attachments(self, case_id: int) -> list[AttachmentRecord]:
        """A case's attachments, without their bytes."""
        with self.db.connection() as conn:
            return cases_attachments.list_attachments(conn, case_id)

    def attachment(self, case_id: int, attachment_id: int) -> tuple[AttachmentRecord, bytes] | None:
        """One attachment of a case with its bytes."""
        with self.db.connection() as conn:
            return cases_attachments.get_attachment(conn, case_id, attachment_id)
