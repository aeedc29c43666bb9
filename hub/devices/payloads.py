"""Pydantic models of the per-kind wire payloads (DESIGN.md, wire contract)."""

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from hub.devices.kinds import Kind, Load

_MAX_ID_LEN = 64


def _parse_ts(value: Any) -> datetime:
    """Accept RFC 3339 with an offset, or integer epoch milliseconds; return aware UTC."""
    if isinstance(value, bool):
        raise ValueError("ts must be RFC 3339 text with an offset or integer epoch milliseconds")
    if isinstance(value, int):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError) as err:
            raise ValueError("ts epoch milliseconds out of range") from err
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as err:
            raise ValueError("ts is not RFC 3339") from err
        if parsed.tzinfo is None:
            raise ValueError("ts must carry a UTC offset")
        try:
            return parsed.astimezone(UTC)
        except OverflowError as err:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
            raise ValueError("ts is out of range") from err
    raise ValueError("ts must be RFC 3339 text with an offset or integer epoch milliseconds")


Timestamp = Annotated[datetime, BeforeValidator(_parse_ts)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _refuse_nul(value: str) -> str:
    """PostgreSQL's text and jsonb cannot hold U+0000: refuse it here, not at the write."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


# Text the database can store. A message that passed decoding but failed the write would
# be found only by splitting its batch, so what the store refuses is refused at the door.
StoredText = Annotated[str, AfterValidator(_refuse_nul)]
# Cumulative energy counters: a lamp of 100 kW lit for a century stays under 1e8 kWh, a
# cabinet under 1e10; larger is a broken meter, and sums over it would overflow reports.
MAX_LAMP_ENERGY_KWH = 1e8
MAX_CABINET_ENERGY_KWH = 1e10


class Payload(BaseModel):
    """Fields every reading shares; unknown fields are kept as extras, not dropped."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=False)

    kind: ClassVar[Kind]
    ts: Timestamp
    device_id: StoredText | None = Field(default=None, max_length=_MAX_ID_LEN)


class LightingPayload(Payload):
    """Single-lamp controller reading."""

    kind: ClassVar[Kind] = Kind.LIGHTING
    on: bool
    dim_pct: FiniteFloat = Field(ge=0, le=100)
    voltage_v: FiniteFloat = Field(ge=0, le=1000)
    current_a: FiniteFloat = Field(ge=0, le=1000)
    power_w: FiniteFloat = Field(ge=0, le=100_000)
    power_factor: FiniteFloat = Field(ge=0, le=1)
    energy_kwh: FiniteFloat = Field(ge=0, le=MAX_LAMP_ENERGY_KWH)
    fault_code: StoredText | None = Field(default=None, max_length=32)


class CabinetPayload(Payload):
    """Lighting control cabinet reading: three phases, contactor and door."""

    kind: ClassVar[Kind] = Kind.CABINET
    contactor_on: bool
    door_open: bool
    voltage_a_v: FiniteFloat = Field(ge=0, le=1000)
    voltage_b_v: FiniteFloat = Field(ge=0, le=1000)
    voltage_c_v: FiniteFloat = Field(ge=0, le=1000)
    current_a_a: FiniteFloat = Field(ge=0, le=10_000)
    current_b_a: FiniteFloat = Field(ge=0, le=10_000)
    current_c_a: FiniteFloat = Field(ge=0, le=10_000)
    power_w: FiniteFloat = Field(ge=0, le=10_000_000)
    energy_kwh: FiniteFloat = Field(ge=0, le=MAX_CABINET_ENERGY_KWH)


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


class ManholePayload(Payload):
    """Smart manhole cover reading."""

    kind: ClassVar[Kind] = Kind.MANHOLE
    tilt_deg: FiniteFloat = Field(ge=0, le=180)
    cover_open: bool
    water_level_cm: FiniteFloat | None = Field(default=None, ge=-1000, le=10_000)
    battery_pct: FiniteFloat | None = Field(default=None, ge=0, le=100)
    rssi_dbm: FiniteFloat | None = Field(default=None, ge=-200, le=0)


class ParkingPayload(Payload):
    """Per-spot parking sensor reading or arrival/departure event."""

    kind: ClassVar[Kind] = Kind.PARKING
    occupied: bool
    battery_pct: FiniteFloat | None = Field(default=None, ge=0, le=100)


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


class StatusPayload(BaseModel):
    """Retained online/offline status, also the device's MQTT will."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ts: Timestamp | None = None
    state: str = Field(pattern="^(online|offline)$")


class CommandAckPayload(BaseModel):
    """A device's reply to a command on `cmd/ack`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ts: Timestamp
    command_id: StoredText = Field(min_length=1, max_length=64)
    result: str = Field(pattern="^(ok|error|rejected|unsupported)$")
    detail: StoredText | None = Field(default=None, max_length=500)
