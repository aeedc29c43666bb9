"""API request and response models."""

from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import Interval
from fastapi import Query
from pydantic import AfterValidator, BaseModel, Field

from hub.devices.registry import AttributeValue

MAX_OFFSET = 1_000_000_000
Offset = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_OFFSET,
        description=f"rows to skip for paging, at most {MAX_OFFSET:,}; narrow the filters beyond",
    ),
]
"""The paging offset of every list route, bounded so it always fits PostgreSQL's OFFSET."""

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def check_instant(value: datetime) -> datetime:
    """An instant the hub can compute windows around: with a UTC offset, 1970 to 3000."""
    if value.utcoffset() is None:
        raise ValueError(
            "needs a UTC offset, e.g. 2026-03-16T09:00:00+08:00 or 2026-03-16T01:00:00Z"
        )
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be from 1970-01-01 to before 3000-01-01")
    return value


Instant = Annotated[datetime, AfterValidator(check_instant)]
"""A time given to the API: aware, and far enough from datetime's ends to subtract a window."""

INT64 = 2**63

Int64 = Annotated[int, Interval(ge=-INT64, le=INT64 - 1)]
"""An integer that fits PostgreSQL's bigint: every id and count a caller gives that reaches SQL
(path, query or body). Beyond it the caller gets 422 naming the bound, not a database error."""


def _check_numbers(value: object, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_numbers(item, f"{where}[{index}]")
    elif isinstance(value, int) and not isinstance(value, bool) and not -INT64 <= value < INT64:
        raise ValueError(f"{where} is an integer beyond 64 bits; send it as a string")
    elif isinstance(value, float) and not -INT64 <= value < INT64:
        # jsonb keeps 1e20 as the digits 100000000000000000000, read back as an integer
        # beyond 64 bits that no JSON encoder of the hub can write out again.
        raise ValueError(
            f"{where} is {value:g}, beyond ±{INT64:.3g} (a 64-bit integer); send it as a string"
        )


def check_json_object(value: dict[str, Any]) -> dict[str, Any]:
    """A free-form JSON object the store can keep and give back: numbers within 64 bits."""
    _check_numbers(value, "value")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_object)]
"""Free-form JSON from a caller (evidence, extras), kept as jsonb through orjson."""


class Health(BaseModel):
    """Liveness and the facts an operator checks first."""

    status: str = Field(
        description="ok, or degraded when the broker or database is down, the writer is"
        " retrying, the MQTT network thread is not running or ingest lags"
    )
    problems: list[str] = Field(description="why the status is degraded, for an operator")
    database: bool
    broker: bool
    storage_mode: str | None
    ingest_lag_s: float
    ingest_pending: int
    warnings: list[str] = Field(
        default=[],
        description="what needs attention soon without degrading the hub (the working"
        " calendar running out within 60 days)",
    )


def check_attributes(value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
    """Registry attributes the store and every JSON encoder can carry: numbers within 64 bits."""
    _check_numbers(value, "attributes")
    return value


Attributes = Annotated[dict[str, AttributeValue], AfterValidator(check_attributes)]
"""A device's kind-specific attributes as a caller sends them."""


class DeviceUpdate(BaseModel):
    """Fields of a device that PUT replaces (the id comes from the path)."""

    kind: str
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    name: str | None = None
    grid_code: str | None = None
    class_code: str | None = None
    department: str | None = None
    parent_id: str | None = None
    attributes: Attributes = Field(default_factory=dict)


class ReadingOut(BaseModel):
    """One stored reading: contract fields of its kind, receipt time, extras."""

    model_config = {"extra": "allow"}

    device_id: str
    ts: datetime
    received_at: datetime
    is_event: bool


class ReadingsPage(BaseModel):
    """A device's readings over a time range."""

    device_id: str
    kind: str
    start: datetime
    end: datetime
    count: int
    readings: list[dict[str, Any]]


class Problem(BaseModel):
    """An error body: what went wrong and what to fix."""

    detail: str
