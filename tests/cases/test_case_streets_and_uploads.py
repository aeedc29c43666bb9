"""Pure pieces of issue 18 and 24: the nearest street of a point (truck cases name the road
where they happened), and what an attachment must be."""

import math

import pytest

from hub.cases.attachments import AttachmentError, AttachmentKind, check_upload
from hub.cases.intake import draft_alarm_case
from hub.cases.routing import decide_filing
from hub.cases.streets import StreetIndex
from hub.rules.alarm_types import AlarmType, Severity
from tests.cases.test_case_intake import DUMPING, HOME, SETUP, T0

M_PER_DEG_LAT = math.radians(1.0) * 6_371_008.8

STREETS = {
    "type": "FeatureCollection",
    "features": [
        {  # east-west along lat 32.300, from lon 118.70 to 118.90
            "type": "Feature",
            "properties": {"id": "ST-EW-001", "name": "北京东路"},
            "geometry": {"type": "LineString", "coordinates": [[118.70, 32.300], [118.90, 32.300]]},
        },
        {  # north-south along lon 118.802
            "type": "Feature",
            "properties": {"id": "ST-NS-001", "name": "中山路"},
            "geometry": {
                "type": "MultiLineString",
                "coordinates": [[[118.802, 32.20], [118.802, 32.40]]],
            },
        },
        {"type": "Feature", "properties": {}, "geometry": None},  # unnamed: skipped
    ],
}


def test_the_nearest_street_and_its_distance() -> None:
    index = StreetIndex.from_geojson(STREETS)
    assert len(index) == 2
    near = index.nearest(32.3005, 118.75)  # 0.0005° north of 北京东路: about 55.6 m
    assert near is not None
    assert (near.name, near.street_id) == ("北京东路", "ST-EW-001")
    assert near.distance_m == pytest.approx(0.0005 * M_PER_DEG_LAT, abs=0.5)
    crossing = index.nearest(32.35, 118.8021)  # far from 北京东路, next to 中山路
    assert crossing is not None
    assert crossing.name == "中山路"
    assert index.nearest(32.0, 118.0) is None  # farther than 200 m from every street


def test_a_dumping_case_names_the_road_where_it_happened() -> None:
    decision = decide_filing(
        SETUP.policy,
        SETUP.classes,
        alarm_type=AlarmType.ILLEGAL_DUMPING,
        severity=Severity.MAJOR,
        active_since_at=T0,
        now_at=T0,
    )
    draft = draft_alarm_case(SETUP, decision, DUMPING, HOME, StreetIndex.from_geojson(STREETS))
    # the stop (32.3, 118.8) lies on 北京东路 and 0.002° of longitude from 中山路
    assert draft.address == "北京东路（约 0 m）"
    assert draft.evidence["road"] == {
        "name": "北京东路",
        "street_id": "ST-EW-001",
        "distance_m": 0.0,
    }
    assert draft.grid_code is not None  # beside the grid, not instead of it
    without = draft_alarm_case(SETUP, decision, DUMPING, HOME)
    assert without.address is None
    assert "road" not in without.evidence


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def test_an_upload_is_checked_by_its_bytes_size_and_kind() -> None:
    checked = check_upload(JPEG, "image/jpeg; charset=binary", "after", "a.jpg", 1024)
    assert (checked.kind, checked.content_type, checked.size) == (
        AttachmentKind.AFTER,
        "image/jpeg",
        len(JPEG),
    )
    assert len(checked.sha256) == 64
    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8
    assert check_upload(webp, "image/webp", "before", "", 1024).content_type == "image/webp"
    cases = [
        (JPEG, "image/jpeg", "after", "a.jpg", 10, 413),
        (JPEG, "image/gif", "after", "a.gif", 1024, 415),
        (b"GIF89a", "image/jpeg", "after", "a.jpg", 1024, 415),
        (b"RIFF\x00\x00\x00\x00WAVE", "image/webp", "after", "a", 1024, 415),
        (b"", "image/jpeg", "after", "a.jpg", 1024, 422),
        (JPEG, "image/jpeg", "selfie", "a.jpg", 1024, 422),
        (JPEG, "image/jpeg", "after", "../etc/passwd", 1024, 422),
    ]
    for data, content_type, kind, name, limit, status in cases:
        with pytest.raises(AttachmentError) as refused:
            check_upload(data, content_type, kind, name, limit)
        assert refused.value.status == status, (content_type, kind, name)
