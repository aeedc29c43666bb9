"""Per-spot parking sensors: the occupancy payload."""

from typing import ClassVar

from pydantic import Field

from hub.devices.kinds import Kind
from hub.devices.wire import FiniteFloat, Payload


class ParkingPayload(Payload):
    """Per-spot parking sensor reading or arrival/departure event."""

    kind: ClassVar[Kind] = Kind.PARKING
    occupied: bool
    battery_pct: FiniteFloat | None = Field(default=None, ge=0, le=100)
