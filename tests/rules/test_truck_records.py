"""Record rules a file import and the API share: what the tables' CHECK constraints demand."""

import orjson
import pytest

from hub.rules.truck_records import RecordImportError, parse_permits, parse_zones

ROUTE = [[120.60, 31.30], [120.61, 31.31]]
RING = [[120.60, 31.30], [120.61, 31.30], [120.61, 31.31], [120.60, 31.30]]


def test_a_permit_that_ends_before_it_starts_is_refused() -> None:
    permit = {"permit_id": "P-1", "truck_id": "T-1", "route": ROUTE}
    good = {**permit, "valid_from": "2026-11-01", "valid_to": "2026-11-30"}
    assert parse_permits(orjson.dumps([good]))[0].permit_id == "P-1"
    bad = {**permit, "valid_from": "2026-12-01", "valid_to": "2026-11-30"}
    with pytest.raises(RecordImportError, match="valid_from"):
        parse_permits(orjson.dumps([bad]))


def test_a_speed_zone_needs_a_limit() -> None:
    feature = {
        "type": "Feature",
        "properties": {"id": "Z-1", "zone_type": "speed"},
        "geometry": {"type": "Polygon", "coordinates": [RING]},
    }
    with pytest.raises(RecordImportError, match="speed_limit_kmh"):
        parse_zones(orjson.dumps({"type": "FeatureCollection", "features": [feature]}))
