"""Open311 GeoReport v2 server for public reports, mounted under /open311/v2.

Services are the classification table's matters; a posted request becomes a case in
the reported (上报) status, to be checked and registered by the centre. JSON answers are
bare arrays, XML follows the spec's element names, errors are
`[{"code": 400, "description": "…"}]` with the same HTTP status.

Anyone may read requests, so a read without a valid `api_key` shows what a public map needs:
id, service, status, agency, times and lat/long. The reporter's words (`description`), the
address they gave (`address`, `address_id`) and their photo (`media_url`) may name or show
people: they are left empty unless the caller sends a valid `api_key` or the operator sets
HUB_OPEN311_PUBLIC_DETAILS. Reporter contact fields are never shown.
"""

import codecs
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from hub.api.schemas import check_instant
from hub.cases.classification import ClassificationError
from hub.cases.intake import IntakeError, PersonReport
from hub.cases.open311 import (
    STATUS_NOTES,
    Open311Error,
    check_attributes,
    find_service,
    hazard_urgency,
    open311_status,
    service_classes,
    service_definition_document,
    service_document,
)
from hub.cases.workflow import OPEN_STATUSES, TERMINAL_STATUSES, CaseSource, CaseStatus, Role
from hub.store.cases import CaseFilter, CaseRecord, CaseStore

DEFAULT_WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
_FORMATS = ("json", "xml")
_CONTACT_FIELDS = ("email", "first_name", "last_name", "phone", "account_id", "device_id")

Row = Mapping[str, object]


def get_case_store(request: Request) -> CaseStore:
    """The case store of this app."""
    store: CaseStore = request.app.state.case_store
    return store


def get_api_keys(request: Request) -> frozenset[str]:
    """The api_key values accepted for POST requests."""
    keys: frozenset[str] = request.app.state.open311_api_keys
    return keys


def get_details_shown(
    request: Request,
    api_key: Annotated[
        str | None, Query(description="a valid key also shows description, address and media")
    ] = None,
) -> bool:
    """Whether this read shows a request's private fields: a valid api_key, or the setting."""
    config = getattr(request.app.state, "access_config", None)
    if getattr(config, "open311_public_details", False):
        return True
    keys: frozenset[str] = request.app.state.open311_api_keys
    return bool(api_key) and api_key in keys


CaseStoreDep = Annotated[CaseStore, Depends(get_case_store)]
ApiKeysDep = Annotated[frozenset[str], Depends(get_api_keys)]
DetailsDep = Annotated[bool, Depends(get_details_shown)]
PRIVATE_FIELDS = ("description", "address", "address_id", "media_url")
"""Fields of a request that a reader without a valid api_key does not see."""

router = APIRouter(prefix="/open311/v2", tags=["open311"])


def _xml_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _xml_element(parent: ET.Element, name: str, value: object) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, list):
        singular = {"attributes": "attribute", "values": "value"}.get(name, "item")
        for item in value:
            _xml_fields(ET.SubElement(child, singular), item)
    elif isinstance(value, dict):
        _xml_fields(child, value)
    else:
        child.text = _xml_text(value)


def _xml_fields(element: ET.Element, row: Row) -> None:
    for key, value in row.items():
        _xml_element(element, key, value)


def _render(
    fmt: str, root: str, item: str, rows: Sequence[Row], status_code: int = 200
) -> Response:
    if fmt == "xml":
        tree = ET.Element(root)
        for row in rows:
            _xml_fields(ET.SubElement(tree, item), row)
        body = ET.tostring(tree, encoding="utf-8", xml_declaration=True)
        return Response(body, status_code, media_type="text/xml; charset=utf-8")
    return Response(orjson.dumps(list(rows)), status_code, media_type="application/json")


def _render_object(fmt: str, root: str, row: Row) -> Response:
    if fmt == "xml":
        tree = ET.Element(root)
        _xml_fields(tree, row)
        body = ET.tostring(tree, encoding="utf-8", xml_declaration=True)
        return Response(body, media_type="text/xml; charset=utf-8")
    return Response(orjson.dumps(row), media_type="application/json")


def _error(fmt: str, err: Open311Error) -> Response:
    fmt = fmt if fmt in _FORMATS else "json"
    return _render(
        fmt, "errors", "error", [{"code": err.code, "description": err.description}], err.code
    )


def _check_format(fmt: str) -> None:
    if fmt not in _FORMATS:
        raise Open311Error(404, f"format {fmt!r} is not supported; use json or xml")


def _local(store: CaseStore, at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(store.setup.calendar.tz).isoformat(timespec="seconds")


def _survivor(store: CaseStore, record: CaseRecord) -> CaseRecord:
    """The case a merged report lives on in (following merges of merges), else the report."""
    current = record
    for _ in range(10):
        into = current.state.merged_into
        if into is None:
            break
        found = store.get_by_number(into)
        if found is None:
            break
        current = found
    return current


def request_document(
    store: CaseStore, record: CaseRecord, details: bool = True
) -> dict[str, object]:
    """A case as an Open311 service request; without `details`, its PRIVATE_FIELDS empty.

    A report merged into another case (案件合并) answers with the surviving case's state,
    agency and times, its notes naming the case it joined."""
    survivor = _survivor(store, record)
    state = survivor.state
    own = record.state
    try:
        service_name: str | None = store.setup.classes.get(own.class_kind, own.class_code).name_zh
    except ClassificationError:
        service_name = None
    departments = store.setup.policy.departments
    agency = departments.get(state.department or "") if state.department else None
    evidence = record.evidence
    location = evidence.get("location")
    address_id = location.get("address_id") if isinstance(location, dict) else None
    due_at = survivor.milestones.due_at if survivor.milestones is not None else None
    notes = STATUS_NOTES.get(state.status, state.status.value)
    if survivor is not record:
        notes = f"已合并至 {survivor.case_number} (merged): {notes}"
    document: dict[str, object] = {
        "service_request_id": record.case_number,
        "status": open311_status(state.status),
        "status_notes": notes,
        "service_name": service_name,
        "service_code": own.class_code,
        "description": record.description,
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": _local(store, own.reported_at),
        "updated_datetime": _local(store, state.updated_at),
        "expected_datetime": _local(store, due_at) if state.is_open else None,
        "address": record.address,
        "address_id": address_id,
        "zipcode": None,
        "lat": record.lat,
        "long": record.lon,
        "media_url": evidence.get("media_url"),
    }
    if not details:
        document.update(dict.fromkeys(PRIVATE_FIELDS))
    return document


@router.get("/services.{fmt}")
def services(store: CaseStoreDep, fmt: str) -> Response:
    """Every service (matter class) a report can be filed under."""
    try:
        _check_format(fmt)
    except Open311Error as err:
        return _error(fmt, err)
    classes = store.setup.classes
    rows = [service_document(classes, c) for c in service_classes(classes)]
    return _render(fmt, "services", "service", rows)


@router.get("/services/{service_code}.{fmt}")
def service_definition(store: CaseStoreDep, service_code: str, fmt: str) -> Response:
    """A service's definition: the attributes a report may carry."""
    try:
        _check_format(fmt)
        case_class = find_service(store.setup.classes, service_code)
    except Open311Error as err:
        return _error(fmt, err)
    return _render_object(fmt, "service_definition", service_definition_document(case_class))


def _float(form: Mapping[str, str], name: str) -> float | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number in WGS-84 degrees") from None


def _report_from_form(
    store: CaseStore, form: Mapping[str, str], keys: frozenset[str]
) -> PersonReport:
    api_key = form.get("api_key", "")
    if not api_key or api_key not in keys:
        raise Open311Error(403, "api_key is missing or not valid")
    service_code = form.get("service_code", "").strip()
    if not service_code:
        raise Open311Error(400, "service_code is required")
    case_class = find_service(store.setup.classes, service_code)
    lat, lon = _float(form, "lat"), _float(form, "long")
    address = form.get("address_string", "").strip() or None
    address_id = form.get("address_id", "").strip() or None
    if (lat is None) != (lon is None):
        raise Open311Error(400, "give both lat and long, or neither")
    if lat is None and address is None and address_id is None:
        raise Open311Error(
            400, "a location is required: lat and long, address_string or address_id"
        )
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise Open311Error(400, "lat must be within ±90 and long within ±180")
    attributes = {
        key[len("attribute[") : -1]: value
        for key, value in form.items()
        if key.startswith("attribute[") and key.endswith("]")
    }
    checked = check_attributes(case_class, attributes)
    description = form.get("description", "").strip()[:4000]
    media_url = form.get("media_url", "").strip() or None
    reporter = {k: form[k] for k in _CONTACT_FIELDS if form.get(k, "").strip()}
    urgency = hazard_urgency(checked, store.setup.policy.centre.hazard_urgency)
    evidence: dict[str, object] = {"attributes": checked, "open311": {"api_key_used": True}}
    if media_url:
        evidence["media_url"] = media_url
    return PersonReport(
        source=CaseSource.OPEN311,
        class_code=case_class.code,
        class_kind=case_class.kind,
        actor_role=Role.SYSTEM,
        actor_id="open311",
        description=description,
        lat=lat,
        lon=lon,
        address=address,
        address_id=address_id,
        urgency=urgency,
        reporter=reporter,
        evidence=evidence,
    )


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def decode_form_body(body: bytes, content_type: str) -> dict[str, str]:
    """Fields of a url-encoded body in its declared charset (UTF-8 when none is declared).

    Raw bytes and percent-escapes are both read in that charset: `-d description=垃圾`
    from curl arrives as raw UTF-8 bytes, which a latin-1 reading would garble.
    """
    charset = "utf-8"
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value.strip('" '):
            charset = value.strip('" ')
    try:
        codecs.lookup(charset)
    except LookupError:
        raise Open311Error(400, f"charset {charset!r} is not known; send UTF-8") from None
    try:
        text = body.decode(charset)
    except UnicodeDecodeError:
        raise Open311Error(400, f"the form body is not valid {charset}; send UTF-8") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict")
    except UnicodeDecodeError:
        raise Open311Error(
            400, f"a percent-encoded value is not valid {charset}; send UTF-8"
        ) from None
    return dict(pairs)


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields: url-encoded bodies decoded here, multipart ones by Starlette."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == FORM_CONTENT_TYPE:
        return decode_form_body(await request.body(), content_type)
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/requests.{fmt}")
async def post_request(
    request: Request, store: CaseStoreDep, keys: ApiKeysDep, fmt: str
) -> Response:
    """File a public report (form-encoded); it becomes a case in the reported status."""
    try:
        _check_format(fmt)
        fields = await read_form(request)
        report = _report_from_form(store, fields, keys)
        record = await run_in_threadpool(store.report, report, datetime.now(UTC))
    except Open311Error as err:
        return _error(fmt, err)
    except (IntakeError, ClassificationError) as err:
        return _error(fmt, Open311Error(400, str(err)))
    notice = (
        f"已受理上报，案卷号 {record.case_number} (report received as case {record.case_number})"
    )
    location = record.evidence.get("location")
    warning = location.get("warning") if isinstance(location, dict) else None
    if warning:
        notice = f"{notice}; {warning}"

    row = {"service_request_id": record.case_number, "service_notice": notice, "account_id": None}
    return _render(fmt, "service_requests", "request", [row])


def _instant(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(
            400, f"{name} must be a W3C datetime, e.g. 2026-03-16T09:00:00+08:00"
        ) from None
    try:
        return check_instant(at)
    except ValueError as err:
        raise Open311Error(400, f"{name} {err}") from err


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _statuses(text: str | None) -> list[CaseStatus]:
    wanted = _split(text)
    unknown = [s for s in wanted if s not in ("open", "closed")]
    if unknown:
        raise Open311Error(400, f"status must be open or closed, not {', '.join(unknown)}")
    chosen: set[CaseStatus] = set()
    if "open" in wanted:
        chosen |= OPEN_STATUSES
    if "closed" in wanted:
        chosen |= TERMINAL_STATUSES
    return sorted(chosen)


@router.get("/requests.{fmt}")
def get_requests(
    store: CaseStoreDep,
    details: DetailsDep,
    fmt: str,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
) -> Response:
    """Service requests by id (comma-separated), or by service code, dates and status."""
    try:
        _check_format(fmt)
        now = datetime.now(UTC)
        if service_request_id:
            query = CaseFilter(case_numbers=_split(service_request_id), limit=MAX_RESULTS)
        else:
            end_at = _instant(end_date, "end_date")
            start_at = _instant(start_date, "start_date")
            if start_at is None:
                start_at = (end_at or now) - DEFAULT_WINDOW
            query = CaseFilter(
                class_codes=_split(service_code),
                statuses=_statuses(status),
                reported_since=start_at,
                reported_until=end_at,
                limit=MAX_RESULTS,
            )
        records = store.search(query, now)
    except Open311Error as err:
        return _error(fmt, err)
    rows = [request_document(store, r, details) for r in records]
    return _render(fmt, "service_requests", "request", rows)


@router.get("/requests/{service_request_id}.{fmt}")
def get_request(
    store: CaseStoreDep, details: DetailsDep, service_request_id: str, fmt: str
) -> Response:
    """One service request."""
    try:
        _check_format(fmt)
    except Open311Error as err:
        return _error(fmt, err)
    record = store.get_by_number(service_request_id)
    if record is None:
        return _error(fmt, Open311Error(404, f"no service request {service_request_id!r}"))
    document = request_document(store, record, details)
    return _render(fmt, "service_requests", "request", [document])
