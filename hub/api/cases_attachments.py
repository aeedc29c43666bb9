"""Attachments of a case: photos before and after the work, the inspector's on site, other
evidence. Sent as the raw request body with its Content-Type (JPEG, PNG, WebP or PDF, the
bytes checked), at most policy `centre.attachment_max_kib`; 413 too large, 415 a type not
taken, 422 an empty body or unknown kind, 404 no such case. Whoever may see the case may
see and add its attachments (the department role: its own department's cases).
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from hub.api.access import case_actor, check_case_scope
from hub.api.cases_models import (
    ActorHeader,
    AttachmentOut,
    CaseStoreDep,
    RoleHeader,
    attachment_out,
    role_of,
)
from hub.api.schemas import Int64
from hub.cases.attachments import AttachmentError, AttachmentKind, check_upload
from hub.cases.workflow import Action
from hub.store.cases import CaseRecord, CaseStore

router = APIRouter(tags=["cases"])


def _case(request: Request, store: CaseStore, case_id: int) -> CaseRecord:
    record = store.get(case_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case with id {case_id}")
    check_case_scope(request, record.state.department, case_id)
    return record


@router.post(
    "/cases/{case_id}/attachments",
    response_model=AttachmentOut,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("image/jpeg", "image/png", "image/webp", "application/pdf")
            },
        }
    },
)
async def add_attachment(
    request: Request,
    store: CaseStoreDep,
    case_id: Int64,
    kind: Annotated[AttachmentKind, Query(description="before, after, verify or evidence")],
    filename: Annotated[str, Query(max_length=200)] = "",
    x_actor_role: RoleHeader = None,
    x_actor_id: ActorHeader = None,
) -> AttachmentOut:
    """Attach a photo or document to a case (the body is the file)."""
    record = _case(request, store, case_id)
    acting = case_actor(request, store.setup.workflow, Action.ATTACH_EVIDENCE, None)
    role, actor_id = acting or (role_of(None, x_actor_role), x_actor_id)
    data = await request.body()
    try:
        checked = check_upload(
            data,
            request.headers.get("content-type", ""),
            kind.value,
            filename,
            store.setup.policy.centre.attachment_max_kib * 1024,
        )
    except AttachmentError as err:
        raise HTTPException(err.status, str(err)) from err
    stored = store.attach(
        record.id, checked, data, actor_role=role, actor_id=actor_id, at=datetime.now(UTC)
    )
    return attachment_out(stored)


@router.get("/cases/{case_id}/attachments", response_model=list[AttachmentOut])
def list_attachments(request: Request, store: CaseStoreDep, case_id: Int64) -> list[AttachmentOut]:
    """A case's attachments, oldest first."""
    record = _case(request, store, case_id)
    return [attachment_out(a) for a in store.attachments(record.id)]


@router.get(
    "/cases/{case_id}/attachments/{attachment_id}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "application/pdf": {}}}},
)
def get_attachment(
    request: Request, store: CaseStoreDep, case_id: Int64, attachment_id: Int64
) -> Response:
    """The bytes of one attachment, with its type."""
    record = _case(request, store, case_id)
    found = store.attachment(record.id, attachment_id)
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"case {case_id} has no attachment {attachment_id}"
        )
    meta, data = found
    return Response(
        data,
        media_type=meta.content_type,
        headers={
            "Content-Disposition": "inline",
            "Cache-Control": "private, max-age=3600",
            "ETag": f'"{meta.sha256}"',
        },
    )
