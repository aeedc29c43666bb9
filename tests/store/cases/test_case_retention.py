"""Retention removes old finished rows of alarms, outbox and cases, never open ones."""

import psycopg
import pytest

from hub.store.database import Database
from hub.store.storage import StorageMode

pytestmark = pytest.mark.integration


def test_retention_keeps_what_is_open(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO alarms (source_kind, source_id, alarm_type, severity, state, raised_at,"
            " last_seen_at, cleared_at) VALUES"
            " ('device', 'a', 'tilt', 'major', 'cleared', now() - interval '3 years',"
            "  now() - interval '3 years', now() - interval '2 years'),"
            " ('device', 'b', 'tilt', 'major', 'active', now() - interval '3 years',"
            "  now() - interval '3 years', NULL),"
            " ('device', 'c', 'tilt', 'major', 'cleared', now() - interval '2 days',"
            "  now() - interval '2 days', now() - interval '1 day')"
        )
        conn.execute(
            "INSERT INTO case_number_seq (local_date, last_seq) VALUES"
            " (current_date - 500, 3), (current_date, 1)"
        )
    db = Database(database_url, max_size=2)
    db.open()
    try:
        deleted = db.enforce_retention(StorageMode.PLAIN)
    finally:
        db.close()
    assert deleted["alarms"] == 1
    assert deleted["case_number_seq"] == 1
    assert deleted["outbox"] == 0
    assert deleted["cases"] == 0
    with psycopg.connect(database_url) as conn:
        left = conn.execute("SELECT source_id FROM alarms ORDER BY source_id").fetchall()
    assert left == [("b",), ("c",)]
