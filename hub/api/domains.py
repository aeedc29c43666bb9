"""Routers of the domain views (lighting, trucks, manholes, parking), registered by import.

A domain API module (e.g. `hub.api.lighting`) defines `router: APIRouter`; it reads the
store from `request.app.state.db` like every other route. A renamed or missing module fails
at start-up and in the type checker instead of its routes vanishing.
"""

from fastapi import APIRouter

from hub.api import lighting, manholes, parking, trucks


def domain_routers() -> list[APIRouter]:
    """The routers of the domain API modules."""
    return [lighting.router, trucks.router, manholes.router, parking.router]
