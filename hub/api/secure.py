"""Assembling the secured app: authentication, the route table, login and the console."""

import threading
from collections.abc import Mapping

from fastapi import FastAPI
from starlette.middleware import Middleware

from hub.api import console
from hub.api.access import AccessConfig, AccessMiddleware
from hub.api.access_table import ROUTE_ACCESS, RouteAccess
from hub.api.auth import router
from hub.api.proxies import TrustedProxyMiddleware
from hub.store.access import AccessStore


def secure_app(
    app: FastAPI,
    store: AccessStore,
    config: AccessConfig | None = None,
    *,
    table: Mapping[tuple[str, str], RouteAccess] = ROUTE_ACCESS,
) -> FastAPI:
    """Add login, tokens, audit and the console to an app, and enforce `table` on every route."""
    config = config or AccessConfig()
    app.state.access_store = store
    app.state.access_config = config
    app.state.password_slots = threading.BoundedSemaphore(config.password_checks)
    app.include_router(router)
    console.install(app)
    # Innermost of the app's own middleware, so the request limits of create_app run first: a
    # request they refuse (NUL in a path parameter) never reaches the store via authentication
    # or a before-snapshot. The caller's address is settled before the check reads it.
    app.user_middleware.append(Middleware(TrustedProxyMiddleware, trusted=config.trusted_proxies))
    app.user_middleware.append(
        Middleware(AccessMiddleware, store=store, table=table, clock=config.clock)
    )
    return app
