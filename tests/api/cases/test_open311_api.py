"""Open311 GeoReport v2 server requests as in the spec's examples, JSON and XML."""

import xml.etree.ElementTree as ET
from typing import cast

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hub.api.access import AccessConfig
from tests.api.cases.conftest import OPEN311_KEY

pytestmark = pytest.mark.integration

BASE = "/open311/v2"

# The spec's POST example, with our service code and a location in Nanjing.
SPEC_POST = {
    "api_key": OPEN311_KEY,
    "service_code": "01003",
    "lat": "32.0500000",
    "long": "118.7800000",
    "address_string": "北京东路 41 号",
    "email": "smit222@sfgov.edu",
    "device_id": "tt222111",
    "account_id": "123456",
    "first_name": "john",
    "last_name": "smith",
    "phone": "111111111",
    "description": "雨水井盖破损，有行人绊倒的危险",
    "media_url": "http://example.org/cover.jpg",
    "attribute[hazard]": "yes",
}


def xml_root(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own server's answer, in a test


def test_services_and_definitions(client: TestClient) -> None:
    services = client.get(f"{BASE}/services.json")
    assert services.status_code == 200
    body = services.json()
    assert isinstance(body, list)
    storm = next(s for s in body if s["service_code"] == "01003")
    assert storm["service_name"] == "雨水井盖异常"
    assert storm["metadata"] is True
    assert storm["type"] == "realtime"
    assert storm["group"]
    assert {s["service_code"] for s in body} >= {"06011", "01037"}

    xml = client.get(f"{BASE}/services.xml")
    assert xml.headers["content-type"].startswith("text/xml")
    root = xml_root(xml.text)
    assert root.tag == "services"
    codes = [s.findtext("service_code") for s in root.findall("service")]
    assert "01003" in codes
    assert len(codes) == len(body)

    definition = client.get(f"{BASE}/services/01003.json").json()
    assert definition["service_code"] == "01003"
    hazard = definition["attributes"][0]
    assert hazard["code"] == "hazard"
    assert hazard["datatype"] == "singlevaluelist"
    assert hazard["values"] == [
        {"key": "yes", "name": "是 (yes)"},
        {"key": "no", "name": "否 (no)"},
    ]
    xml_definition = xml_root(client.get(f"{BASE}/services/01003.xml").text)
    assert xml_definition.tag == "service_definition"
    assert xml_definition.findtext("attributes/attribute/code") == "hazard"
    assert xml_definition.findtext("attributes/attribute/values/value/key") == "yes"

    missing = client.get(f"{BASE}/services/99999.json")
    assert missing.status_code == 404
    assert missing.json() == [{"code": 404, "description": "service_code '99999' is not a service"}]
    assert client.get(f"{BASE}/services.yaml").status_code == 404


def test_post_and_get_requests(client: TestClient, database_url: str) -> None:
    posted = client.post(f"{BASE}/requests.json", data=SPEC_POST)
    assert posted.status_code == 200, posted.text
    (receipt,) = posted.json()
    request_id = receipt["service_request_id"]
    assert receipt["account_id"] is None
    assert request_id in receipt["service_notice"]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT source, status, class_code, department, evidence FROM cases"
            " WHERE case_number = %s",
            (request_id,),
        ).fetchone()
    assert row is not None
    assert row[:4] == ("open311", "reported", "01003", "drainage")
    assert row[4]["attributes"] == {"hazard": "yes"}
    assert row[4]["reporter"]["email"] == "smit222@sfgov.edu"

    keyed = {"api_key": OPEN311_KEY}  # a valid key shows the reporter's words and address
    (one,) = client.get(f"{BASE}/requests/{request_id}.json", params=keyed).json()
    assert one["service_request_id"] == request_id
    assert one["status"] == "open"
    assert "reported" in one["status_notes"]
    assert one["service_code"] == "01003"
    assert one["service_name"] == "雨水井盖异常"
    assert one["agency_responsible"] == "排水管理处"
    assert one["lat"] == 32.05
    assert one["long"] == 118.78
    assert one["address"] == "北京东路 41 号"
    assert one["media_url"] == "http://example.org/cover.jpg"
    assert one["requested_datetime"].endswith("+08:00")
    assert "email" not in one
    assert "phone" not in one

    xml = xml_root(client.get(f"{BASE}/requests/{request_id}.xml").text)
    assert xml.tag == "service_requests"
    assert xml.findtext("request/service_request_id") == request_id
    assert xml.findtext("request/status") == "open"
    assert xml.findtext("request/zipcode") == ""

    by_id = client.get(f"{BASE}/requests.json", params={"service_request_id": request_id})
    assert [r["service_request_id"] for r in by_id.json()] == [request_id]
    assert (
        client.get(
            f"{BASE}/requests.json", params={"service_code": "01003,01037", "status": "open"}
        ).json()[0]["service_request_id"]
        == request_id
    )
    assert client.get(f"{BASE}/requests.json", params={"status": "closed"}).json() == []
    assert client.get(f"{BASE}/requests.json", params={"service_code": "01037"}).json() == []
    assert (
        client.get(f"{BASE}/requests.json", params={"end_date": "2000-01-01T00:00:00Z"}).json()
        == []
    )
    bad_date = client.get(f"{BASE}/requests.json", params={"start_date": "yesterday"})
    assert bad_date.status_code == 400
    bad_status = client.get(f"{BASE}/requests.json", params={"status": "pending"})
    assert bad_status.json() == [
        {"code": 400, "description": "status must be open or closed, not pending"}
    ]
    missing = client.get(f"{BASE}/requests/20000101{9999}.json")
    assert missing.status_code == 404

    xml_post = client.post(
        f"{BASE}/requests.xml",
        data={"api_key": OPEN311_KEY, "service_code": "01037", "address_string": "中山路路灯"},
    )
    assert xml_post.status_code == 200
    assert xml_root(xml_post.text).findtext("request/service_request_id")

    by_address_id = client.post(
        f"{BASE}/requests.json",
        data={"api_key": OPEN311_KEY, "service_code": "06011", "address_id": "A-4471"},
    )
    dumping_id = by_address_id.json()[0]["service_request_id"]
    (dumping,) = client.get(f"{BASE}/requests/{dumping_id}.json", params=keyed).json()
    assert dumping["address_id"] == "A-4471"
    assert dumping["agency_responsible"] == "环境卫生管理处"


ERRORS: list[tuple[dict[str, str], int, str]] = [
    ({"api_key": ""}, 403, "api_key"),
    ({"api_key": "wrong"}, 403, "api_key"),
    ({"service_code": ""}, 400, "service_code is required"),
    ({"service_code": "77777"}, 404, "not a service"),
    ({"lat": "", "long": "", "address_string": ""}, 400, "a location is required"),
    ({"long": ""}, 400, "both lat and long"),
    ({"lat": "north"}, 400, "lat must be a number"),
    ({"lat": "95"}, 400, "within ±90"),
    ({"attribute[hazard]": "maybe"}, 400, "must be one of: yes, no"),
    ({"attribute[colour]": "red"}, 400, "not an attribute"),
]


def test_post_errors(client: TestClient, database_url: str) -> None:
    for changes, code, says in ERRORS:
        form = {**SPEC_POST, **changes}
        response = client.post(f"{BASE}/requests.json", data=form)
        assert response.status_code == code, changes
        (error,) = response.json()
        assert error["code"] == code
        assert says in error["description"], (changes, error)
        xml = client.post(f"{BASE}/requests.xml", data=form)
        root = xml_root(xml.text)
        assert root.tag == "errors"
        assert root.findtext("error/code") == str(code)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM cases").fetchone() == (0,)


PRIVATE = ("description", "address", "address_id", "media_url")


def test_reads_without_a_key_show_only_public_fields(client: TestClient) -> None:
    posted = client.post(f"{BASE}/requests.json", data=SPEC_POST)
    request_id = posted.json()[0]["service_request_id"]
    for params in ({}, {"api_key": "wrong"}):
        (one,) = client.get(f"{BASE}/requests/{request_id}.json", params=params).json()
        listed = client.get(f"{BASE}/requests.json", params=params).json()
        for document in (one, *listed):
            assert [document[f] for f in PRIVATE] == [None] * len(PRIVATE), params
            assert "email" not in document
            assert "phone" not in document
            assert "reporter" not in document
        assert (one["service_code"], one["status"]) == ("01003", "open")
        assert (one["lat"], one["long"]) == (32.05, 118.78)  # where the problem is stays public
        xml = xml_root(client.get(f"{BASE}/requests/{request_id}.xml", params=params).text)
        assert xml.findtext("request/description") == ""
        assert xml.findtext("request/address") == ""
    (keyed,) = client.get(
        f"{BASE}/requests/{request_id}.json", params={"api_key": OPEN311_KEY}
    ).json()
    assert keyed["description"] == SPEC_POST["description"]
    assert keyed["address"] == "北京东路 41 号"


def test_the_setting_shows_details_to_everyone(client: TestClient) -> None:
    posted = client.post(f"{BASE}/requests.json", data=SPEC_POST)
    request_id = posted.json()[0]["service_request_id"]
    app = cast(FastAPI, client.app)
    app.state.access_config = AccessConfig(open311_public_details=True)
    (one,) = client.get(f"{BASE}/requests/{request_id}.json").json()
    assert one["address"] == "北京东路 41 号"
    assert one["description"] == SPEC_POST["description"]
