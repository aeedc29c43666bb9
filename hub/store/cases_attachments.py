"""Attachments on cases (photos before and after, the inspector's on site, evidence) in
PostgreSQL, beside the case; the API checks size and type before they get here."""

from dataclasses import dataclass
from datetime import datetime

from hub.cases.attachments import AttachmentKind, CheckedAttachment
from hub.cases.workflow import Role
from hub.store.cases_records import Conn

_COLUMNS = (
    "id, case_id, kind, content_type, filename, size_bytes, sha256, uploaded_by, actor_role,"
    " uploaded_at"
)


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    """A stored attachment without its bytes."""

    id: int
    case_id: int
    kind: AttachmentKind
    content_type: str
    filename: str
    size: int
    sha256: str
    uploaded_by: str | None
    actor_role: Role
    uploaded_at: datetime


def _attachment(row: tuple[object, ...]) -> AttachmentRecord:
    return AttachmentRecord(
        id=int(str(row[0])),
        case_id=int(str(row[1])),
        kind=AttachmentKind(str(row[2])),
        content_type=str(row[3]),
        filename=str(row[4]),
        size=int(str(row[5])),
        sha256=str(row[6]),
        uploaded_by=None if row[7] is None else str(row[7]),
        actor_role=Role(str(row[8])),
        uploaded_at=row[9],  # type: ignore[arg-type]
    )


def add_attachment(
    conn: Conn,
    case_id: int,
    checked: CheckedAttachment,
    data: bytes,
    *,
    actor_role: Role,
    actor_id: str | None,
    at: datetime,
) -> AttachmentRecord:
    """Keep an attachment of a case."""
    row = conn.execute(
        "INSERT INTO case_attachments (case_id, kind, content_type, filename, size_bytes,"
        " sha256, data, uploaded_by, actor_role, uploaded_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        f" RETURNING {_COLUMNS}",
        (
            case_id,
            checked.kind.value,
            checked.content_type,
            checked.filename,
            checked.size,
            checked.sha256,
            data,
            actor_id,
            actor_role.value,
            at,
        ),
    ).fetchone()
    if row is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
        raise RuntimeError("attachment insert returned nothing")
    return _attachment(row)


def list_attachments(conn: Conn, case_id: int) -> list[AttachmentRecord]:
    """A case's attachments, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM case_attachments WHERE case_id = %s ORDER BY uploaded_at, id",
        (case_id,),
    ).fetchall()
    return [_attachment(r) for r in rows]


def get_attachment(
    conn: Conn, case_id: int, attachment_id: int
) -> tuple[AttachmentRecord, bytes] | None:
    """One attachment of a case with its bytes."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, data FROM case_attachments WHERE case_id = %s AND id = %s",
        (case_id, attachment_id),
    ).fetchone()
    return None if row is None else (_attachment(row[:-1]), bytes(row[-1]))


def attachment_times(conn: Conn, case_id: int) -> list[tuple[AttachmentKind, datetime]]:
    """(kind, uploaded_at) of every attachment of a case, for the photo policy's check."""
    rows = conn.execute(
        "SELECT kind, uploaded_at FROM case_attachments WHERE case_id = %s", (case_id,)
    ).fetchall()
    return [(AttachmentKind(str(r[0])), r[1]) for r in rows]
