"""案件合并: a duplicate report merged into the surviving case of the same problem.

The duplicate closes as `merged` (its state names the survivor); the survivor gets an
attach_evidence event naming the duplicate, the duplicate's report (reporter, words,
evidence) under `evidence.merged`, its alarms, and its urgency if that was higher. One
transaction; both cases' versions move, so a concurrent change of either is a conflict.
"""

from collections.abc import Sequence
from datetime import datetime

from psycopg.types.json import Jsonb

from hub.cases.calendar import Urgency
from hub.cases.intake import CaseSetup
from hub.cases.workflow import Action, PayloadValue, Role, WorkflowError
from hub.store import alarms
from hub.store.cases_records import (
    CaseNotFoundError,
    CaseRecord,
    Conn,
    get_case,
    get_case_by_number,
)
from hub.store.cases_workflow import _check_transition, act_on_case
from hub.store.outbox import OutboxTarget


class MergeRefusedError(WorkflowError):
    """The cases cannot be merged as asked (409): the survivor is closed, or is the same case."""


def find_case(conn: Conn, reference: str) -> CaseRecord | None:
    """A case by its case number, else by its numeric id."""
    record = get_case_by_number(conn, reference)
    if record is None and reference.isascii() and reference.isdigit() and len(reference) < 19:
        record = get_case(conn, int(reference))
    return record


def merge_case(
    conn: Conn,
    setup: CaseSetup,
    case_id: int,
    into: str,
    actor_role: Role,
    at: datetime,
    *,
    note: str | None = None,
    actor_id: str | None = None,
    expected_version: int | None = None,
    targets: Sequence[OutboxTarget] = (),
) -> CaseRecord:
    """Merge case `case_id` into the case `into` (number or id); the merged duplicate back."""
    duplicate = get_case(conn, case_id, lock=True)
    if duplicate is None:
        raise CaseNotFoundError(f"no case with id {case_id}")
    _check_transition(setup, duplicate, Action.MERGE, actor_role)
    if not into.strip():
        raise WorkflowError(f"merge of case {duplicate.case_number} needs payload 'into'")
    survivor = find_case(conn, into.strip())
    if survivor is None:
        raise MergeRefusedError(f"no case {into!r} to merge case {duplicate.case_number} into")
    if survivor.id == duplicate.id:
        raise MergeRefusedError(f"case {duplicate.case_number} cannot be merged into itself")
    if not survivor.state.is_open:
        raise MergeRefusedError(
            f"case {survivor.case_number} is {survivor.state.status}: merge into an open case"
        )
    get_case(conn, survivor.id, lock=True)
    payload: dict[str, PayloadValue] = {"into": survivor.case_number}
    if note:
        payload["note"] = note
    merged, _ = act_on_case(
        conn,
        setup,
        duplicate.id,
        Action.MERGE,
        actor_role,
        at,
        payload,
        actor_id=actor_id,
        expected_version=expected_version,
        targets=targets,
    )
    dup = duplicate.state
    joined: dict[str, PayloadValue] = {
        "evidence": f"case {duplicate.case_number} ({dup.source}) merged into this case",
        "merged_from": duplicate.case_number,
        "merged_source": dup.source.value,
    }
    if dup.urgency is Urgency.URGENT and survivor.state.urgency is not Urgency.URGENT:
        joined["raise_urgency"] = True
    act_on_case(
        conn,
        setup,
        survivor.id,
        Action.ATTACH_EVIDENCE,
        actor_role,
        max(at, survivor.state.updated_at),
        joined,
        actor_id=actor_id,
        targets=targets,
    )
    report = alarms.json_value(
        {
            "case_number": duplicate.case_number,
            "source": dup.source.value,
            "reported_at": dup.reported_at,
            "description": duplicate.description,
            "address": duplicate.address,
            "lat": duplicate.lat,
            "lon": duplicate.lon,
            "alarm_id": duplicate.alarm_id,
            "evidence": dict(duplicate.evidence),
        }
    )
    conn.execute(
        "UPDATE cases SET evidence = jsonb_set(evidence, '{merged}',"
        " coalesce(evidence -> 'merged', '[]'::jsonb) || %s::jsonb) WHERE id = %s",
        (Jsonb([report]), survivor.id),
    )
    # the duplicate's alarms now belong to the survivor: later alarms join it
    conn.execute("UPDATE alarms SET case_id = %s WHERE case_id = %s", (survivor.id, duplicate.id))
    return merged
