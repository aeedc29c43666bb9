"""What the API answers when the database fails it: 503 with Retry-After for an outage, 422 for a
value the database refused, within about a second rather than after the pool's long wait.

One ASGI middleware around the whole app, so the access check's own queries (tokens,
sessions, before-snapshots) are covered as well as the routes. Every connection taken while
a request runs waits at most `wait_s` for the pool (`hub.store.database.bounded_wait`): with
PostgreSQL away no connection comes, and the caller hears so instead of hanging 30 s.
"""

import logging

from fastapi import status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.store.database import DATABASE_ERRORS, StoreFailure, bounded_wait, classify_failure

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 1.0
"""How long a request waits for a pooled connection before it is told the database is away."""
RETRY_AFTER_S = 5
"""What a 503 asks the client to wait; the pool reconnects in the background meanwhile."""


def unavailable_response() -> JSONResponse:
    """503: the database is not answering; try again later."""
    return JSONResponse(
        {
            "detail": "the database is not answering; nothing was changed, try again in"
            f" {RETRY_AFTER_S} s"
        },
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def refused_value_response(reason: str) -> JSONResponse:
    """422: the database could not hold or compute a value of this request."""
    return JSONResponse(
        {
            "detail": f"the database could not process a value: {reason}; if you sent it, send"
            " numbers within range and text without control characters"
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


class StoreFailureMiddleware:
    """Bounds the wait for a connection, and answers database outages and refusals."""

    def __init__(self, app: ASGIApp, *, wait_s: float = DEFAULT_WAIT_S) -> None:
        self.app = app
        self.wait_s = wait_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; turn a database error it raises before answering into 503 or 422."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with bounded_wait(self.wait_s):
            try:
                await self.app(scope, receive, watching_send)
            except DATABASE_ERRORS as err:
                failure = classify_failure(err)
                if started or failure is None:
                    raise
                if failure is StoreFailure.UNAVAILABLE:
                    log.warning(
                        "%s %s: database unavailable: %s", scope["method"], scope["path"], err
                    )
                    response = unavailable_response()
                else:
                    log.warning(  # with the traceback: stored data may be at fault, not the caller
                        "%s %s: database refused a value: %s",
                        scope["method"],
                        scope["path"],
                        err,
                        exc_info=True,
                    )
                    response = refused_value_response(str(err).splitlines()[0])
                await response(scope, receive, send)
