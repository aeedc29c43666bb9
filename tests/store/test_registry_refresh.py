"""Incremental registry refreshes read each change once, not the newest bulk import forever."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub.devices.registry import REGISTRY_SLACK, resume_point
from hub.store import registry
from hub.store.database import Database

pytestmark = pytest.mark.integration


def test_a_bulk_import_is_read_once_then_only_new_changes(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon)"
            " SELECT 'L-' || g, 'lighting', 31.3, 120.6 FROM generate_series(1, 500) g"
        )
        conn.commit()
        records, newest = registry.fetch_devices_changed_since(conn, None)
        kinds, newest_kinds = registry.fetch_kind_index(conn, None)
        assert len(records) == len(kinds) == 500
        # A minute on, the import (one updated_at for all) is not read again.
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert registry.fetch_devices_changed_since(conn, resume_point(newest, later))[0] == []
        assert registry.fetch_kind_index(conn, resume_point(newest_kinds, later))[0] == {}
        # Right after it, the slack re-reads recent changes: a late commit is not missed.
        soon = datetime.now(UTC)
        again, _ = registry.fetch_devices_changed_since(conn, resume_point(newest, soon))
        assert len(again) == 500
        conn.execute(
            "UPDATE devices SET name = 'moved', updated_at = now() WHERE device_id = 'L-7'"
        )
        conn.commit()
        changed, _ = registry.fetch_devices_changed_since(conn, resume_point(newest, later))
    assert [r.device_id for r in changed] == ["L-7"]
    assert timedelta(seconds=1) < REGISTRY_SLACK < timedelta(minutes=1)


def test_the_registry_is_read_a_page_at_a_time(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon)"
            " SELECT 'P-' || g, 'parking', 31.3, 120.6 FROM generate_series(1, 450) g"
        )
    db = Database(database_url, max_size=1)
    db.open()
    try:
        pages = [records for records, _ in db.device_pages(None, page=200)]
    finally:
        db.close()
    assert [len(p) for p in pages] == [200, 200, 50]
    ids = [r.device_id for p in pages for r in p]
    assert len(set(ids)) == 450
    assert ids == sorted(ids)


def test_every_read_of_an_id_gives_the_same_string(database_url: str) -> None:
    # The ingest index, the rules and the full-reload check each hold every id: one string
    # per id, not one per holder (~60 bytes per device each).
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, kind, lat, lon, parent_id)"
            " SELECT 'S-' || g, 'lighting', 31.3, 120.6, 'CAB-' || (g % 2)"
            " FROM generate_series(1, 20) g"
        )
        records, _ = registry.fetch_devices_changed_since(conn, None)
        kinds, _ = registry.fetch_kind_index(conn, None)
        ids = registry.fetch_all_ids(conn)
    by_id = {r.device_id: r for r in records}
    for device_id in kinds:
        assert by_id[device_id].device_id is device_id
        assert next(i for i in ids if i == device_id) is device_id
    parents = {id(r.parent_id) for r in records}
    assert len(parents) == 2
