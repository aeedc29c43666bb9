"""Attachments (photos, documents) on cases: their kinds, the types accepted, and the policy
that some steps need one (a photo after the work at 反馈, one on site at 核查).

Pure: the bytes come from the API and go to the store; here only what they must be.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from hub.cases.workflow import Action, CaseState, CaseStatus, WorkflowError


class AttachmentKind(StrEnum):
    """What an attachment shows."""

    BEFORE = "before"  # 处置前: the problem as found
    AFTER = "after"  # 处置后: the work done (反馈)
    VERIFY = "verify"  # 核查: the inspector's photo on site
    EVIDENCE = "evidence"  # anything else: a document, a reporter's photo


class MissingAttachmentError(WorkflowError):
    """A step the policy wants a photo for, taken before the photo was uploaded (409)."""


class AttachmentError(ValueError):
    """An attachment the hub does not take; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# The types accepted, each recognised by its first bytes: a declared type that the bytes
# do not bear out is refused, so a script cannot pass for a photo.
_SIGNATURES: Mapping[str, tuple[tuple[int, bytes], ...]] = MappingProxyType(
    {
        "image/jpeg": ((0, b"\xff\xd8\xff"),),
        "image/png": ((0, b"\x89PNG\r\n\x1a\n"),),
        "image/webp": ((0, b"RIFF"), (8, b"WEBP")),
        "application/pdf": ((0, b"%PDF-"),),
    }
)
ACCEPTED_TYPES: tuple[str, ...] = tuple(_SIGNATURES)


@dataclass(frozen=True, slots=True)
class CheckedAttachment:
    """An upload that passed the checks: its type, size and SHA-256."""

    kind: AttachmentKind
    content_type: str
    size: int
    sha256: str
    filename: str


def check_upload(
    data: bytes, content_type: str, kind: str, filename: str, max_bytes: int
) -> CheckedAttachment:
    """Refuse what the hub does not keep: 413 too large, 415 a type not accepted or bytes that
    are not of the declared type, 422 an unknown kind, an empty body or a bad file name."""
    try:
        chosen = AttachmentKind(kind)
    except ValueError:
        raise AttachmentError(
            422, f"kind must be one of {[k.value for k in AttachmentKind]}, got {kind!r}"
        ) from None
    if not data:
        raise AttachmentError(422, "the attachment is empty: send the file as the request body")
    if len(data) > max_bytes:
        raise AttachmentError(
            413,
            f"the attachment has {len(data)} bytes, more than the limit of {max_bytes}"
            " (policy centre.attachment_max_kib)",
        )
    media = content_type.split(";", 1)[0].strip().lower()
    signature = _SIGNATURES.get(media)
    if signature is None:
        raise AttachmentError(
            415, f"type {media or 'none'!r} is not accepted; send one of {list(ACCEPTED_TYPES)}"
        )
    if not all(data[at : at + len(magic)] == magic for at, magic in signature):
        raise AttachmentError(415, f"the bytes are not a {media} file")
    name = filename.strip()
    if len(name) > 200 or any(c in name for c in "/\\\x00"):
        raise AttachmentError(422, "filename must be a plain name of at most 200 characters")
    return CheckedAttachment(chosen, media, len(data), hashlib.sha256(data).hexdigest(), name)


def check_required_photos(
    required: Mapping[Action, frozenset[AttachmentKind]],
    state: CaseState,
    action: Action,
    uploaded: Iterable[tuple[AttachmentKind, datetime]],
) -> None:
    """Refuse a step the policy wants a photo for when none of the kinds it names was
    uploaded since the running stage began (e.g. 反馈 after the latest dispatch)."""
    kinds = required.get(action)
    if not kinds:
        return
    since = state.dispatched_at if state.status in _HANDLING else state.stage_started_at
    if any(kind in kinds and (since is None or at >= since) for kind, at in uploaded):
        return
    names = ", ".join(sorted(k.value for k in kinds))
    raise MissingAttachmentError(
        f"{action} of case {state.case_id} needs an attachment of kind {names} uploaded in "
        "this stage (policy centre.photos_required): POST it to "
        f"/cases/{{id}}/attachments?kind={sorted(kinds)[0].value} first"
    )


_HANDLING = frozenset({CaseStatus.DISPATCHED, CaseStatus.IN_PROGRESS})
