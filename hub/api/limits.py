"""What the API accepts before any route reads a request: a bounded body, text PostgreSQL keeps.

Checked at the edge, for every route alike: an oversize body gets 413 before it is buffered;
NUL (U+0000) in the path, query string or body, and JSON that is not RFC 8259 JSON (NaN,
Infinity, unpaired surrogates) get 422, because the hub keeps text in PostgreSQL, whose text
and jsonb types cannot hold them, and answers in JSON, which cannot carry NaN.
"""

import json
import re

import orjson
from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.settings import Settings

_TOO_LARGE = status.HTTP_413_CONTENT_TOO_LARGE
_UNPROCESSABLE = status.HTTP_422_UNPROCESSABLE_CONTENT
DEFAULT_MAX_BODY_BYTES: int = Settings.model_fields["api_max_body_bytes"].default
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A `\\u0000` escape in JSON text: one preceded by an even run of backslashes (`\\\\u0000`
is an escaped backslash followed by the letters u0000, which is harmless)."""


def body_limit_detail(max_body_bytes: int) -> str:
    """The 413 message: the limit, and the setting that changes it."""
    return (
        f"request body is larger than the limit of {max_body_bytes} bytes"
        " (HUB_API_MAX_BODY_BYTES); send a smaller body"
    )


def nul_detail(where: str) -> str:
    """The 422 message for a NUL character in a part of the request."""
    return (
        f"the {where} contains a NUL character (\\u0000); remove it: text is stored in"
        " PostgreSQL, which cannot hold NUL"
    )


class RefusedRequestError(HTTPException):
    """Raised from `receive` when the body breaks a limit; FastAPI answers it with its status
    and detail, and the middleware answers it if a reader outside FastAPI lets it escape."""


def _nonstandard_json(body: bytes) -> str | None:
    """Why a body Python's parser takes (FastAPI's) is still not RFC 8259 JSON, else None.

    Python also reads NaN, Infinity, 1e400 (as infinity) and unpaired surrogate escapes, none
    of which the store, PostgreSQL or a JSON response can carry. Text neither parser reads
    is left to FastAPI, whose 422 points at the broken spot.
    """
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as strict:
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            return None
        return (
            f"the JSON body is not standard JSON (RFC 8259): {strict}; send UTF-8 without NaN,"
            " Infinity, numbers beyond double range or unpaired surrogate escapes (\\ud800)"
        )
    return None


BINARY_TYPES = ("image/", "application/pdf")
"""Bodies kept as bytes (case attachments, bytea), where NUL is data, not text."""


def _body_problem(body: bytes, content_type: str) -> str | None:
    """The 422 detail for a body the hub cannot keep, None when the body is fine."""
    if content_type.startswith(BINARY_TYPES):
        return None
    if b"\x00" in body:
        return nul_detail("body")
    if "json" in content_type or not content_type:
        if _JSON_NUL.search(body):
            return nul_detail("JSON body")
        return _nonstandard_json(body)
    if "x-www-form-urlencoded" in content_type and b"%00" in body:
        return nul_detail("form body")
    return None


class RequestLimitsMiddleware:
    """Refuses a declared Content-Length over the limit and NUL in the path or query before the
    app runs; reads the body (chunked or not) up to the limit when the app first asks for it,
    and hands it over whole once it is within the limit and holds nothing the hub cannot keep."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a checking `receive`, or answer 413/422 without running it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.lower(): value for key, value in scope["headers"]}
        declared = _content_length(headers.get(b"content-length"))
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(scope, receive, send, _TOO_LARGE, body_limit_detail(self.max_body_bytes))
            return
        where = _url_problem(scope)
        if where is not None:
            await _refuse(scope, receive, send, _UNPROCESSABLE, nul_detail(where))
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = self.max_body_bytes
        body_read = False
        response_started = False

        async def checked_receive() -> Message:
            nonlocal body_read
            if body_read:
                return await receive()
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message  # the client left mid-body
                body.extend(message.get("body", b""))
                if len(body) > limit:
                    raise RefusedRequestError(_TOO_LARGE, body_limit_detail(limit))
                if not message.get("more_body", False):
                    break
            body_read = True
            problem = _body_problem(bytes(body), content_type)
            if problem is not None:
                raise RefusedRequestError(_UNPROCESSABLE, problem)
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        async def watching_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, checked_receive, watching_send)
        except RefusedRequestError as err:
            if response_started:
                raise
            await _refuse(scope, receive, send, err.status_code, str(err.detail))


def _url_problem(scope: Scope) -> str | None:
    """Where the path or query string holds a NUL character, None when neither does."""
    if "\x00" in str(scope["path"]):
        return "path"
    if b"%00" in scope.get("query_string", b""):
        return "query string"
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, code: int, detail: str) -> None:
    # The body may be unread: close the connection rather than read it to reuse it.
    response = JSONResponse({"detail": detail}, status_code=code, headers={"Connection": "close"})
    await response(scope, receive, send)


def _content_length(value: bytes | None) -> int | None:
    """The declared body size; None when absent or unreadable (the server rejects the latter)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
