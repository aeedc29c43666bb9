"""Muck trucks (渣土车): the position and body-state payload."""

from typing import ClassVar

from pydantic import Field

from hub.devices.kinds import Kind, Load
from hub.devices.wire import FiniteFloat, Payload


class TruckPayload(Payload):
    """Muck truck position and body state."""

    kind: ClassVar[Kind] = Kind.TRUCK
    lat: FiniteFloat = Field(ge=-90, le=90)
    lon: FiniteFloat = Field(ge=-180, le=180)
    speed_kmh: FiniteFloat = Field(ge=0, le=300)
    heading_deg: FiniteFloat = Field(ge=0, le=360)
    acc_on: bool
    body_lifted: bool
    cover_closed: bool
    load: Load
    alarm_flags: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
