"""The payload model of every kind: registration is these imports (DESIGN.md, wire contract)."""

from hub.devices.kinds import Kind
from hub.devices.lighting import CabinetPayload, LightingPayload
from hub.devices.manholes import ManholePayload
from hub.devices.parking import ParkingPayload
from hub.devices.trucks import TruckPayload
from hub.devices.wire import Payload

PAYLOAD_MODELS: dict[Kind, type[Payload]] = {
    Kind.LIGHTING: LightingPayload,
    Kind.CABINET: CabinetPayload,
    Kind.TRUCK: TruckPayload,
    Kind.MANHOLE: ManholePayload,
    Kind.PARKING: ParkingPayload,
}


def measurement_fields(kind: Kind) -> tuple[str, ...]:
    """The contract fields of a kind, in table column order (without ts and device_id)."""
    model = PAYLOAD_MODELS[kind]
    return tuple(name for name in model.model_fields if name not in ("ts", "device_id"))
