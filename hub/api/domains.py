"""Routers of the domain views (lighting, trucks, manholes, parking), found by module name.

A domain API module (e.g. `hub.api.lighting`) defines `router: APIRouter`; it reads the
store from `request.app.state.db` like every other route.
"""

import importlib
import importlib.util

from fastapi import APIRouter

DOMAIN_API_MODULES: tuple[str, ...] = (
    "hub.api.lighting",
    "hub.api.trucks",
    "hub.api.manholes",
    "hub.api.parking",
)


def domain_routers() -> list[APIRouter]:
    """The routers of the domain API modules that exist."""
    return [
        importlib.import_module(name).router
        for name in DOMAIN_API_MODULES
        if importlib.util.find_spec(name) is not None
    ]
