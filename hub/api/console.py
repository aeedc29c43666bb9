"""The web console: static files under /console/, the city's map layers, a case's actions for
the caller, and the API docs pages. Installed by `hub.api.secure.secure_app`; works offline
(no CDN, fonts or tiles): Swagger UI and ReDoc come from the pinned fastapi-offline package,
served beside the console's own files."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

from hub.api.access import PrincipalDep, check_case_scope
from hub.api.auth import AccessStoreDep
from hub.api.cases import CaseStoreDep
from hub.api.schemas import Int64
from hub.principals import allowed_actions_for

STATIC_DIR = Path(__file__).resolve().parent / "console_static"
DB_LAYERS = ("lots", "zones")
# Swagger UI and ReDoc (swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js,
# favicon.png) ship in this package directory; StaticFiles serves them under /console/.
DOCS_ASSETS_PACKAGE = ("fastapi_offline", "static")
DOCS_ASSETS_URL = "/console/"
# The pages' own bootstrap script is inline; everything else comes from this origin.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; font-src 'self'; worker-src 'self' blob:; connect-src 'self';"
    " object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(tags=["console"])


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    """The console."""
    return RedirectResponse("/console/")


@router.get("/city/layers")
def list_layers(store: AccessStoreDep) -> list[str]:
    """Names of the map layers the console can draw (imported ones, lots and zones)."""
    return sorted({*store.layer_names(), *DB_LAYERS})


@router.get("/city/layers/{name}")
def get_layer(store: AccessStoreDep, name: str) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: an imported layer (streets, grids, ...) or lots/zones."""
    layer = store.get_layer(name)
    if layer is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no layer {name!r}")
    return layer


@router.get("/cases/{case_id}/actions")
def case_actions(
    request: Request, store: CaseStoreDep, principal: PrincipalDep, case_id: Int64
) -> dict[str, Any]:
    """The workflow actions the caller's role may take on a case now (the console's buttons)."""
    record = store.get(case_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case with id {case_id}")
    check_case_scope(request, record.state.department, case_id)
    actions = allowed_actions_for(principal, store.setup.workflow, record.state.status)
    return {
        "case_id": case_id,
        "status": record.state.status.value,
        "version": record.state.version,
        "actions": [a.value.replace("_", "-") for a in actions],
        "departments": dict(store.setup.policy.departments),
        "at": datetime.now(UTC).isoformat(),
    }


def install_offline_docs(app: FastAPI) -> None:
    """Replace FastAPI's /docs and /redoc (which load their scripts from a CDN) with pages
    that load them from the hub, so the docs work on a closed network."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} - API"
    replaced = {app.docs_url, app.redoc_url} - {None}
    app.router.routes[:] = [
        r
        for r in app.router.routes
        if isinstance(r, Mount) or getattr(r, "path", None) not in replaced
    ]

    def with_policy(response: HTMLResponse) -> HTMLResponse:
        response.headers["Content-Security-Policy"] = DOCS_POLICY
        return response

    if app.docs_url is not None:

        @app.get(app.docs_url, include_in_schema=False)
        def swagger_ui() -> HTMLResponse:
            """Swagger UI over the hub's OpenAPI document."""
            return with_policy(
                get_swagger_ui_html(
                    openapi_url=openapi_url,
                    title=title,
                    swagger_js_url=f"{DOCS_ASSETS_URL}swagger-ui-bundle.js",
                    swagger_css_url=f"{DOCS_ASSETS_URL}swagger-ui.css",
                    swagger_favicon_url=f"{DOCS_ASSETS_URL}favicon.png",
                    oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
                    # no badge fetched from the public validator
                    swagger_ui_parameters={"validatorUrl": None},
                )
            )

    if app.redoc_url is not None:

        @app.get(app.redoc_url, include_in_schema=False)
        def redoc() -> HTMLResponse:
            """ReDoc over the hub's OpenAPI document."""
            return with_policy(
                get_redoc_html(
                    openapi_url=openapi_url,
                    title=title,
                    redoc_js_url=f"{DOCS_ASSETS_URL}redoc.standalone.js",
                    redoc_favicon_url=f"{DOCS_ASSETS_URL}favicon.png",
                    with_google_fonts=False,
                )
            )


def install(app: FastAPI) -> None:
    """Add the console routes, its static files and the offline API docs to an app."""
    app.include_router(router)
    install_offline_docs(app)
    app.mount(
        "/console",
        StaticFiles(directory=STATIC_DIR, packages=[DOCS_ASSETS_PACKAGE], html=True),
        name="console",
    )
