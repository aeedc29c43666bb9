"""Open311 as data: services from the classification, statuses, client requests and answers."""

import orjson
import pytest

from hub.cases.classification import CaseClass, ClassKind, load_classification
from hub.cases.open311 import (
    Open311Error,
    build_service_request_form,
    check_attributes,
    find_service,
    open311_status,
    parse_service_request_response,
    requests_url,
    service_classes,
    service_definition_document,
)
from hub.cases.workflow import CaseStatus

TABLE = load_classification()


def test_services_are_the_matters() -> None:
    services = service_classes(TABLE)
    assert all(c.kind is ClassKind.MATTER for c in services)
    assert [c.code for c in services] == sorted(c.code for c in services)
    assert {"01003", "01037", "06011"} <= {c.code for c in services}


def attribute_codes(case_class: CaseClass) -> list[object]:
    attributes = service_definition_document(case_class)["attributes"]
    assert isinstance(attributes, list)
    return [a["code"] for a in attributes]


def test_definitions_and_attribute_checks() -> None:
    lamp = find_service(TABLE, "01037")
    codes = attribute_codes(lamp)
    assert codes == ["hazard", "asset_id"]
    dumping = find_service(TABLE, "06011")
    assert attribute_codes(dumping) == ["hazard"]
    assert check_attributes(lamp, {"hazard": "no", "asset_id": "32010201037000001"}) == {
        "hazard": "no",
        "asset_id": "32010201037000001",
    }
    with pytest.raises(Open311Error, match="asset_id"):
        check_attributes(dumping, {"asset_id": "1"})
    with pytest.raises(Open311Error) as err:
        find_service(TABLE, "00000")
    assert err.value.code == 404


def test_status_is_open_or_closed() -> None:
    assert {open311_status(s) for s in CaseStatus} == {"open", "closed"}
    assert open311_status(CaseStatus.REWORK) == "open"
    assert open311_status(CaseStatus.VOIDED) == "closed"


CASE = {
    "case_number": "CG202603160007",
    "class_code": "01037",
    "lat": 32.05,
    "lon": 118.78,
    "address": None,
    "description": "路灯不亮（lamp-7）",
    "device_id": "lamp-7",
}


def test_client_request_form() -> None:
    form = build_service_request_form(CASE, api_key="k", jurisdiction_id="nanjing.gov.cn")
    assert form == {
        "api_key": "k",
        "service_code": "01037",
        "jurisdiction_id": "nanjing.gov.cn",
        "lat": "32.0500000",
        "long": "118.7800000",
        "description": "[CG202603160007] 路灯不亮（lamp-7）",
        "device_id": "lamp-7",
    }
    mapped = build_service_request_form(CASE, api_key="k", service_codes={"01037": "STLT"})
    assert mapped["service_code"] == "STLT"
    by_address = build_service_request_form(
        {**CASE, "lat": None, "lon": None, "address": "中山路 1 号"}, api_key="k"
    )
    assert by_address["address_string"] == "中山路 1 号"
    with pytest.raises(Open311Error, match="no location"):
        build_service_request_form({**CASE, "lat": None, "lon": None}, api_key="k")
    assert requests_url("https://city.example/open311/v2") == (
        "https://city.example/open311/v2/requests.json"
    )


def test_client_reads_answers() -> None:
    # The spec's example answers: an id at once, or a token to look up later.
    receipt = parse_service_request_response(
        orjson.dumps(
            [
                {
                    "service_request_id": 293944,
                    "service_notice": "The City will inspect"
                    " and require the responsible party to correct within 24 hours",
                    "account_id": None,
                }
            ]
        )
    )
    assert receipt.service_request_id == "293944"
    token = parse_service_request_response(b'[{"token": "12345"}]').token
    assert token == "12345"  # noqa: S105 - a request token of the spec, not a secret
    with pytest.raises(Open311Error) as err:
        parse_service_request_response(b'[{"code": 403, "description": "Invalid api_key"}]')
    assert err.value.code == 403
    with pytest.raises(Open311Error):
        parse_service_request_response(b"<html>")
    with pytest.raises(Open311Error):
        parse_service_request_response(b"[{}]")
