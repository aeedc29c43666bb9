"""Browser security headers on every response: the console may run only its own scripts and
styles, nothing may frame the hub, no response is sniffed into another type, no URL leaks
in a Referer.

The console (`/console/`, `hub/api/console_static/`) loads nothing from elsewhere and has no
inline script or style attribute, so its policy is `'self'` throughout. The API docs pages
FastAPI serves (/docs, /redoc) load Swagger UI and ReDoc from their CDN with an inline
bootstrap script; they get a policy that allows exactly that. Everything else is data (JSON,
XML, CSV, event streams) and gets `default-src 'none'`. A header a route set itself is kept.
"""

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net;"
    " style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com;"
    " font-src 'self' https://fonts.gstatic.com;"
    " img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly;"
    " worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none';"
    " frame-ancestors 'none'"
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

COMMON_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
DOCS_PATHS = ("/docs", "/redoc")


def content_security_policy(path: str) -> str:
    """The policy of a request path: console, API docs, or data."""
    if path in {"/", "/console"} or path.startswith("/console/"):
        return CONSOLE_POLICY
    if path.startswith(DOCS_PATHS):
        return DOCS_POLICY
    return API_POLICY


class SecurityHeadersMiddleware:
    """Adds the headers to each HTTP response start, keeping any a route set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, adding the headers as its response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = content_security_policy(str(scope["path"]))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if "Content-Security-Policy" not in headers:
                    headers["Content-Security-Policy"] = policy
            await send(message)

        await self.app(scope, receive, send_with_headers)
