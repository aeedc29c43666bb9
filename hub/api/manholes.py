"""Manhole covers: status list, one cover, its baselines, and the recalibrate command."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, status
from pydantic import BaseModel, Field

from hub.api.app import DbDep
from hub.api.schemas import Offset
from hub.store import manholes as store
from hub.store.manholes import NoReadingError

router = APIRouter(prefix="/manholes", tags=["manholes"])


class CoverOut(BaseModel):
    """A cover's registry facts, baseline, newest reading and open alarm types."""

    device_id: str
    lat: float
    lon: float
    grid_code: str | None
    class_code: str | None
    department: str | None
    cover_type: str | None
    road_class: str | None
    baseline_tilt_deg: float | None
    tilt_from_baseline_deg: float | None
    last_ts: datetime | None
    tilt_deg: float | None
    cover_open: bool | None
    water_level_cm: float | None
    battery_pct: float | None
    rssi_dbm: float | None
    open_alarms: list[str]
    status: str


class RecalibrateIn(BaseModel):
    """A new baseline, or none to take the cover's newest reported tilt; how long to try."""

    baseline_tilt_deg: float | None = Field(default=None, ge=0, le=180)
    actor_id: str | None = None
    ttl_s: float = Field(
        default=86_400.0, gt=0, le=7 * 86_400, description="give up without an ack after this"
    )


class CalibrationOut(BaseModel):
    """One baseline the cover has had, or a recalibrate command and how far it got."""

    device_id: str
    baseline_tilt_deg: float
    previous_tilt_deg: float | None
    source: str
    reading_ts: datetime | None
    actor_id: str | None
    calibrated_at: datetime
    command_id: str | None
    state: str
    attempts: int
    sent_at: datetime | None
    expires_at: datetime | None
    finished_at: datetime | None
    detail: str | None


def _out(cover: store.CoverStatus) -> CoverOut:
    delta = None
    if cover.tilt_deg is not None:
        delta = round(abs(cover.tilt_deg - (cover.baseline_tilt_deg or 0.0)), 2)
    if cover.last_ts is None:
        state = "never_reported"
    elif cover.open_alarms:
        state = "alarm"
    else:
        state = "ok"
    return CoverOut(
        **{k: getattr(cover, k) for k in CoverOut.model_fields if hasattr(cover, k)}
        | {"open_alarms": list(cover.open_alarms)},
        tilt_from_baseline_deg=delta,
        status=state,
    )


@router.get("", response_model=list[CoverOut])
def list_covers(
    db: DbDep,
    alarm_type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Offset = 0,
) -> list[CoverOut]:
    """Covers by id with status; `alarm_type` keeps those with that alarm open."""
    with db.connection() as conn:
        covers = store.list_covers(conn, alarm_type=alarm_type, limit=limit, offset=offset)
    return [_out(c) for c in covers]


@router.get("/{device_id}", response_model=CoverOut)
def get_cover(db: DbDep, device_id: str) -> CoverOut:
    """One cover's status."""
    with db.connection() as conn:
        covers = store.list_covers(conn, device_id=device_id, limit=1)
    if not covers:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no manhole cover {device_id!r}")
    return _out(covers[0])


@router.get("/{device_id}/calibrations", response_model=list[CalibrationOut])
def calibrations(db: DbDep, device_id: str) -> list[CalibrationOut]:
    """The cover's baselines, newest first."""
    with db.connection() as conn:
        rows = store.list_calibrations(conn, device_id)
    return [CalibrationOut.model_validate(r, from_attributes=True) for r in rows]


@router.post(
    "/{device_id}/recalibrate",
    response_model=CalibrationOut,
    status_code=status.HTTP_202_ACCEPTED,
)
def recalibrate(
    db: DbDep,
    device_id: str,
    body: RecalibrateIn | None = None,
    x_actor_id: Annotated[str | None, Header()] = None,
) -> CalibrationOut:
    """Send the cover a recalibrate command; its baseline changes when the cover acks it."""
    body = body or RecalibrateIn()
    try:
        with db.connection() as conn:
            saved = store.request_recalibration(
                conn,
                device_id,
                command_id=f"recal-{uuid.uuid4().hex[:16]}",
                expires_at=datetime.now(UTC) + timedelta(seconds=body.ttl_s),
                baseline_tilt_deg=body.baseline_tilt_deg,
                actor_id=body.actor_id or x_actor_id,
            )
    except NoReadingError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
    if saved is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no manhole cover {device_id!r}")
    return CalibrationOut.model_validate(saved, from_attributes=True)
