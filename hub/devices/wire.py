"""The wire contract's shared types: timestamps, storable text, the reading base, status and
command acknowledgements (DESIGN.md, wire contract). Each kind's payload is in its module."""

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from hub.devices.kinds import Kind

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
