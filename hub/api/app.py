"""The FastAPI application: health, metrics, device registry and telemetry reads."""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from hub.api.limits import DEFAULT_MAX_BODY_BYTES, RequestLimitsMiddleware
from hub.api.schemas import (
    DeviceUpdate,
    Health,
    Instant,
    Offset,
    ReadingsPage,
    check_attributes,
)
from hub.api.security_headers import SecurityHeadersMiddleware
from hub.api.status import NoIngest, RuntimeStatus
from hub.api.store_failures import DEFAULT_WAIT_S, StoreFailureMiddleware
from hub.cases.calendar import calendar_expiry_warning
from hub.devices.kinds import Kind
from hub.devices.registry import DeviceRecord
from hub.store.cases import CaseStore
from hub.store.database import Database, SchemaNotReadyError


def get_db(request: Request) -> Database:
    """The store this app was built with."""
    db: Database = request.app.state.db
    return db


def get_status(request: Request) -> RuntimeStatus:
    """The runtime status provider this app was built with."""
    runtime: RuntimeStatus = request.app.state.runtime
    return runtime


DbDep = Annotated[Database, Depends(get_db)]
StatusDep = Annotated[RuntimeStatus, Depends(get_status)]

router = APIRouter()


def _calendar_warnings(request: Request) -> list[str]:
    """The working calendar's expiry warning, when this app files cases."""
    store: CaseStore | None = getattr(request.app.state, "case_store", None)
    if store is None:
        return []
    calendar = store.setup.calendar
    warning = calendar_expiry_warning(calendar, calendar.local_date(datetime.now(UTC)))
    return [] if warning is None else [warning]


@router.get("/health", response_model=Health, tags=["system"])
def health(request: Request, db: DbDep, runtime: StatusDep) -> Health:
    """Broker and database reachability, storage mode, ingest lag, and what is wrong."""
    problems: list[str] = []
    database_ok = db.ping()
    mode: str | None = None
    if database_ok:
        try:
            mode = db.storage_mode().value
        except SchemaNotReadyError as err:
            database_ok = False
            problems.append(str(err))
    else:
        problems.append("the database does not answer")
    broker_ok = runtime.broker_connected()
    problems.extend(runtime.ingest_problems())
    return Health(
        status="ok" if database_ok and broker_ok and not problems else "degraded",
        problems=problems,
        database=database_ok,
        broker=broker_ok,
        storage_mode=mode,
        ingest_lag_s=round(runtime.ingest_lag_s(), 3),
        ingest_pending=runtime.ingest_pending(),
        warnings=_calendar_warnings(request),
    )


@router.get("/metrics", tags=["system"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of the ingest metrics."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _not_found(device_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id!r} is not registered")


@router.get("/devices", response_model=list[DeviceRecord], tags=["devices"])
def list_devices(
    db: DbDep,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Offset = 0,
) -> list[DeviceRecord]:
    """Registered devices, by id, optionally of one kind."""
    return db.list_devices(kind, limit, offset)


@router.post(
    "/devices", response_model=DeviceRecord, status_code=status.HTTP_201_CREATED, tags=["devices"]
)
def create_device(db: DbDep, device: DeviceRecord) -> DeviceRecord:
    """Register a new device; 409 if the id exists (use PUT to update)."""
    try:
        check_attributes(device.attributes)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    if db.get_device(device.device_id) is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"device {device.device_id!r} exists; PUT /devices/{device.device_id} to update it",
        )
    db.upsert_devices([device])
    return device


@router.get("/devices/{device_id}", response_model=DeviceRecord, tags=["devices"])
def get_device(db: DbDep, device_id: str) -> DeviceRecord:
    """One registered device."""
    device = db.get_device(device_id)
    if device is None:
        raise _not_found(device_id)
    return device


@router.put("/devices/{device_id}", response_model=DeviceRecord, tags=["devices"])
def put_device(db: DbDep, device_id: str, update: DeviceUpdate) -> DeviceRecord:
    """Create or replace a device's registration."""
    try:
        record = DeviceRecord.model_validate({"device_id": device_id, **update.model_dump()})
    except ValidationError as err:
        raise RequestValidationError(err.errors()) from err
    db.upsert_devices([record])
    return record


@router.delete("/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["devices"])
def delete_device(db: DbDep, device_id: str) -> Response:
    """Remove a device from the registry; its stored telemetry is kept."""
    if not db.delete_device(device_id):
        raise _not_found(device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/devices/{device_id}/latest", tags=["telemetry"])
def latest_reading(db: DbDep, device_id: str) -> dict[str, Any]:
    """The device's newest reading by event time."""
    device = db.get_device(device_id)
    if device is None:
        raise _not_found(device_id)
    reading = db.latest_reading(device.kind, device_id)
    if reading is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no readings stored for {device_id!r}")
    return reading


@router.get("/devices/{device_id}/readings", response_model=ReadingsPage, tags=["telemetry"])
def readings(
    db: DbDep,
    device_id: str,
    start: Annotated[Instant | None, Query(description="inclusive, RFC 3339")] = None,
    end: Annotated[Instant | None, Query(description="exclusive, RFC 3339; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> ReadingsPage:
    """The device's readings with start <= ts < end, oldest first (default: the last 24 h)."""
    device = db.get_device(device_id)
    if device is None:
        raise _not_found(device_id)
    end_at = end or datetime.now(UTC)
    start_at = start or end_at - timedelta(hours=24)
    if start_at >= end_at:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must be before end")
    rows = db.readings(device.kind, device_id, start_at, end_at, limit)
    return ReadingsPage(
        device_id=device_id,
        kind=device.kind.value,
        start=start_at,
        end=end_at,
        count=len(rows),
        readings=rows,
    )


def create_app(
    db: Database,
    metrics_registry: CollectorRegistry,
    runtime: RuntimeStatus | None = None,
    routers: Iterable[APIRouter] | None = None,
    state: Mapping[str, object] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    database_wait_s: float = DEFAULT_WAIT_S,
) -> FastAPI:
    """Build the API around an opened store; nothing happens at import time.

    A request waits at most `database_wait_s` for a database connection: with PostgreSQL
    away it gets 503 and Retry-After within about that long (hub/api/store_failures.py)."""
    app = FastAPI(
        title="City telemetry hub",
        version="0.1.0",
        description="Street assets' telemetry, alarms and 数字城管 cases.",
    )
    app.state.db = db
    app.state.runtime = runtime or NoIngest()
    app.state.metrics_registry = metrics_registry
    for name, value in (state or {}).items():
        setattr(app.state, name, value)
    app.include_router(router)
    for extra in routers or ():
        app.include_router(extra)
    app.add_middleware(RequestLimitsMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(StoreFailureMiddleware, wait_s=database_wait_s)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: every answer carries them

    @app.exception_handler(SchemaNotReadyError)
    def _schema_not_ready(request: Request, exc: SchemaNotReadyError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    return app
