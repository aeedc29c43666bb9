"""Smart manhole covers: the tilt, cover and water payload."""

from typing import ClassVar

from pydantic import Field

from hub.devices.kinds import Kind
from hub.devices.wire import FiniteFloat, Payload


class ManholePayload(Payload):
    """Smart manhole cover reading."""

    kind: ClassVar[Kind] = Kind.MANHOLE
    tilt_deg: FiniteFloat = Field(ge=0, le=180)
    cover_open: bool
    water_level_cm: FiniteFloat | None = Field(default=None, ge=-1000, le=10_000)
    battery_pct: FiniteFloat | None = Field(default=None, ge=0, le=100)
    rssi_dbm: FiniteFloat | None = Field(default=None, ge=-200, le=0)
