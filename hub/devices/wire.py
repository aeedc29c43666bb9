"""The wire contract's shared types: timestamps, storable text, the reading base, status and
command acknowledgements (DESIGN.md, wire contract). Each kind's payload is in its module."""

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from hub.devices.kinds import Kind
from hub.devices.wire_checks import parse_ts, refuse_nul

_MAX_ID_LEN = 64


Timestamp = Annotated[datetime, BeforeValidator(parse_ts)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


# Text the database can store. A message that passed decoding but failed the write would
# be found only by splitting its batch, so what the store refuses is refused at the door.
StoredText = Annotated[str, AfterValidator(refuse_nul)]


class Payload(BaseModel):
    """Fields every reading shares; unknown fields are kept as extras, not dropped."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=False)

    kind: ClassVar[Kind]
    ts: Timestamp
    device_id: StoredText | None = Field(default=None, max_length=_MAX_ID_LEN)


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
