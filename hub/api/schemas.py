"""API request and response models."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from hub.devices.registry import AttributeValue


class Health(BaseModel):
    """Liveness and the facts an operator checks first."""

    status: str = Field(description="ok, or degraded when the broker or database is down")
    database: bool
    broker: bool
    storage_mode: str | None
    ingest_lag_s: float
    ingest_pending: int


class DeviceUpdate(BaseModel):
    """Fields of a device that PUT replaces (the id comes from the path)."""

    kind: str
    lat: float
    lon: float
    name: str | None = None
    grid_code: str | None = None
    class_code: str | None = None
    department: str | None = None
    parent_id: str | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)


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
