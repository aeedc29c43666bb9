"""The web console: static files under /console/, the city's map layers, a case's actions for
the caller. Installed by `hub.api.access.secure_app`; works offline (no CDN, fonts or tiles)."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from hub.api.access import AccessStoreDep, PrincipalDep, check_case_scope
from hub.api.cases import CaseStoreDep
from hub.api.schemas import Int64
from hub.principals import allowed_actions_for

STATIC_DIR = Path(__file__).resolve().parent / "console_static"
DB_LAYERS = ("lots", "zones")

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


def install(app: FastAPI) -> None:
    """Add the console routes and its static files to an app."""
    app.include_router(router)
    app.mount("/console", StaticFiles(directory=STATIC_DIR, html=True), name="console")
