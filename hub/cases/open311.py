"""Open311 GeoReport v2 as pure data: services from the classification, statuses, client requests.

The server side (hub/api/open311.py) lists the table's matters as services and shows
cases as service requests; the client side (the case forwarder) files our cases into
a city's own Open311 endpoint. Status is only `open` or `closed`; the workflow status
goes into `status_notes`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import orjson

from hub.cases.calendar import Urgency
from hub.cases.classification import (
    MIRRORED_MAJORS,
    CaseClass,
    ClassificationError,
    ClassificationTable,
    ClassKind,
)
from hub.cases.workflow import TERMINAL_STATUSES, CaseStatus

_DESCRIPTION_MAX = 4000

STATUS_NOTES: Mapping[CaseStatus, str] = {
    CaseStatus.REPORTED: "已上报，等待受理 (reported, awaiting registration)",
    CaseStatus.CHECKING: "核实中 (being checked on site)",
    CaseStatus.REGISTERED: "已立案 (registered)",
    CaseStatus.REJECTED: "不予受理 (not accepted)",
    CaseStatus.VOIDED: "已作废 (voided)",
    CaseStatus.DISPATCHED: "已派遣 (dispatched)",
    CaseStatus.IN_PROGRESS: "处置中 (being handled)",
    CaseStatus.RETURNED: "回退，重新派遣中 (returned for re-dispatch)",
    CaseStatus.EXTENSION_REQUESTED: "处置中，申请延期 (being handled, extension requested)",
    CaseStatus.SUSPENSION_REQUESTED: "处置中，申请挂账 (being handled, suspension requested)",
    CaseStatus.SUSPENDED: "挂账 (suspended)",
    CaseStatus.HANDLED: "已处置，等待核查 (handled, awaiting verification)",
    CaseStatus.VERIFYING: "核查中 (being verified)",
    CaseStatus.VERIFIED: "核查通过，等待结案 (verified, awaiting closure)",
    CaseStatus.REWORK: "核查未通过，返工 (verification failed, rework)",
    CaseStatus.CLOSED: "已结案 (closed)",
    CaseStatus.MERGED: "已合并 (merged into another report of the same problem)",
}


class Open311Error(ValueError):
    """An Open311 request or response is invalid; `code` is the HTTP status to answer with."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True, slots=True)
class AttributeValue:
    """One choice of a list attribute."""

    key: str
    name: str


@dataclass(frozen=True, slots=True)
class ServiceAttribute:
    """One attribute of a service definition."""

    code: str
    datatype: str
    description: str
    datatype_description: str
    order: int
    required: bool = False
    variable: bool = True
    values: tuple[AttributeValue, ...] = ()


HAZARD_ATTRIBUTE = ServiceAttribute(
    code="hazard",
    datatype="singlevaluelist",
    description="是否危及行人或车辆安全 (is anyone at risk?)",
    datatype_description="yes or no",
    order=1,
    values=(AttributeValue("yes", "是 (yes)"), AttributeValue("no", "否 (no)")),
)
ASSET_ID_ATTRIBUTE = ServiceAttribute(
    code="asset_id",
    datatype="string",
    description="部件编码 (component id on the asset's tag)",
    datatype_description="17 digits: county code, class code and serial",
    order=2,
)


def is_open311_status_open(status: CaseStatus) -> bool:
    """Open311 `open` for every status but closed, rejected and voided."""
    return status not in TERMINAL_STATUSES


def open311_status(status: CaseStatus) -> str:
    """`open` or `closed`."""
    return "open" if is_open311_status_open(status) else "closed"


def service_classes(table: ClassificationTable) -> list[CaseClass]:
    """The classes offered as services: every matter, by code."""
    return sorted((c for c in table if c.kind is ClassKind.MATTER), key=lambda c: c.code)


def service_attributes(case_class: CaseClass) -> tuple[ServiceAttribute, ...]:
    """Attributes asked for a service: hazard always, the asset id for a component fault."""
    if case_class.major in MIRRORED_MAJORS:
        return (HAZARD_ATTRIBUTE, ASSET_ID_ATTRIBUTE)
    return (HAZARD_ATTRIBUTE,)


def service_document(table: ClassificationTable, case_class: CaseClass) -> dict[str, object]:
    """One entry of GET services."""
    try:
        group = table.major(case_class.kind, case_class.major).name_zh
    except ClassificationError:
        group = case_class.major
    return {
        "service_code": case_class.code,
        "service_name": case_class.name_zh,
        "description": case_class.name_en,
        "metadata": True,
        "type": "realtime",
        "keywords": case_class.name_en.replace(" ", ","),
        "group": group,
    }


def service_definition_document(case_class: CaseClass) -> dict[str, object]:
    """GET services/{code}: the service's attributes."""
    return {
        "service_code": case_class.code,
        "attributes": [
            {
                "variable": a.variable,
                "code": a.code,
                "datatype": a.datatype,
                "required": a.required,
                "datatype_description": a.datatype_description,
                "order": a.order,
                "description": a.description,
                "values": [{"key": v.key, "name": v.name} for v in a.values],
            }
            for a in service_attributes(case_class)
        ],
    }


def find_service(table: ClassificationTable, service_code: str) -> CaseClass:
    """The matter class behind a service code; Open311Error 404 when there is none."""
    try:
        return table.get(ClassKind.MATTER, service_code)
    except ClassificationError:
        raise Open311Error(404, f"service_code {service_code!r} is not a service") from None


def check_attributes(case_class: CaseClass, given: Mapping[str, str]) -> dict[str, str]:
    """Validate `attribute[CODE]` values against the service definition."""
    known = {a.code: a for a in service_attributes(case_class)}
    checked: dict[str, str] = {}
    for code, value in given.items():
        attribute = known.get(code)
        if attribute is None:
            raise Open311Error(400, f"attribute[{code}] is not an attribute of this service")
        if attribute.values and value not in {v.key for v in attribute.values}:
            allowed = ", ".join(v.key for v in attribute.values)
            raise Open311Error(400, f"attribute[{code}] must be one of: {allowed}")
        checked[code] = value
    missing = [a.code for a in known.values() if a.required and a.code not in checked]
    if missing:
        raise Open311Error(400, f"required attribute(s) missing: {', '.join(missing)}")
    return checked


def hazard_urgency(attributes: Mapping[str, str], table: Mapping[str, Urgency]) -> Urgency:
    """The urgency a report's `attribute[hazard]` answer sets by the policy's table."""
    answer = attributes.get(HAZARD_ATTRIBUTE.code)
    return table.get(answer, Urgency.NORMAL) if answer is not None else Urgency.NORMAL


# --- client: filing our cases into a city's Open311 endpoint ------------------------------


@dataclass(frozen=True, slots=True)
class Open311Receipt:
    """What a city's Open311 server answered to POST requests."""

    service_request_id: str | None
    token: str | None
    service_notice: str | None


def requests_url(base_url: str) -> str:
    """The POST requests.json URL under a GeoReport v2 base URL."""
    return urljoin(base_url if base_url.endswith("/") else base_url + "/", "requests.json")


def build_service_request_form(
    case: Mapping[str, Any],
    *,
    api_key: str,
    jurisdiction_id: str | None = None,
    service_codes: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Form fields of POST requests for one of our cases (a case document of the outbox)."""
    class_code = str(case["class_code"])
    service_code = (service_codes or {}).get(class_code, class_code)
    form: dict[str, str] = {"api_key": api_key, "service_code": service_code}
    if jurisdiction_id:
        form["jurisdiction_id"] = jurisdiction_id
    lat, lon = case.get("lat"), case.get("lon")
    if lat is not None and lon is not None:
        form["lat"] = f"{float(lat):.7f}"
        form["long"] = f"{float(lon):.7f}"
    elif case.get("address"):
        form["address_string"] = str(case["address"])
    else:
        raise Open311Error(400, f"case {case.get('case_number')} has no location to report")
    description = f"[{case.get('case_number')}] {case.get('description') or ''}".strip()
    form["description"] = description[:_DESCRIPTION_MAX]
    if case.get("device_id"):
        form["device_id"] = str(case["device_id"])
    return form


def parse_service_request_response(body: bytes) -> Open311Receipt:
    """Read the JSON answer to POST requests.json; Open311Error for an error list."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise Open311Error(502, f"Open311 answer is not JSON: {err}") from err
    if not isinstance(doc, list) or not doc or not isinstance(doc[0], dict):
        raise Open311Error(502, "Open311 answer is not a non-empty array of objects")
    first = doc[0]
    if "code" in first and "description" in first and "service_request_id" not in first:
        raise Open311Error(int(first["code"]), str(first["description"]))
    request_id = first.get("service_request_id")
    token = first.get("token")
    if request_id is None and token is None:
        raise Open311Error(502, "Open311 answer has neither service_request_id nor token")
    return Open311Receipt(
        service_request_id=None if request_id is None else str(request_id),
        token=None if token is None else str(token),
        service_notice=first.get("service_notice"),
    )
