"""Occupancy now from each spot's newest report (parking_spot_latest) on a real database:
the telemetry writer keeps the table, the migration and the rebuild fill it, and the counts
agree with debouncing every spot's reports of the look-back window, the old derivation."""

import random
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest

from hub.api.parking import LOOKBACK, UNKNOWN_ALARMS, _occupancy_now, _status
from hub.rules.parking import debounce_spot_states
from hub.rules.parking_params import DEFAULT_CONFIRM_S
from hub.store import parking as store
from hub.store.database import Database
from hub.store.migrations import apply_migrations
from hub.store.parking import AreaKind, Conn, ParkingArea
from hub.store.telemetry import TelemetryWriter
from tests.spot_reports import Report, spot_report_batch

pytestmark = pytest.mark.integration

BASE = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
CONFIRM = timedelta(seconds=DEFAULT_CONFIRM_S)
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[120.6, 31.3], [120.601, 31.3], [120.601, 31.301], [120.6, 31.3]]],
}


def _write(conn: Conn, reports: list[Report]) -> None:
    """One batch through the hub's writer, decoded the way the ingest decodes messages."""
    TelemetryWriter(conn).write_batch(spot_report_batch(reports, BASE + timedelta(minutes=1)))


def _latest(conn: Conn) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT device_id, ts, received_at, occupied, battery_pct FROM parking_spot_latest"
        " ORDER BY device_id"
    ).fetchall()


def _newest_stored(conn: Conn) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT DISTINCT ON (device_id) device_id, ts, received_at, occupied, battery_pct"
        " FROM telemetry_parking ORDER BY device_id, ts DESC"
    ).fetchall()


def test_writer_keeps_each_spots_newest_stored_report(database_url: str) -> None:
    t = BASE - timedelta(hours=1)
    with psycopg.connect(database_url, autocommit=True) as conn:
        _write(conn, [("PS-1", t, True), ("PS-1", t + timedelta(minutes=5), False)])
        _write(conn, [("PS-1", t + timedelta(minutes=2), True), ("PS-2", t, True)])  # late
        assert [(r[0], r[1], r[3]) for r in _latest(conn)] == [
            ("PS-1", t + timedelta(minutes=5), False),
            ("PS-2", t, True),
        ]
        # A redelivery of the newest report with another value: the stored one stays.
        _write(conn, [("PS-1", t + timedelta(minutes=5), True)])
        # Two values for one ts in one batch: the row follows whichever the table kept.
        _write(conn, [("PS-2", t + timedelta(minutes=9), False)])
        _write(conn, [("PS-3", t, True), ("PS-3", t, False), ("PS-2", t, False)])
        assert _latest(conn) == _newest_stored(conn)
        assert [(r[0], r[1], r[3]) for r in _latest(conn)][:2] == [
            ("PS-1", t + timedelta(minutes=5), False),
            ("PS-2", t + timedelta(minutes=9), False),
        ]


def test_migration_and_rebuild_fill_the_table_from_stored_reports(
    empty_database_url: str,
) -> None:
    apply_migrations(empty_database_url, "plain")
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        # Reports stored before the table existed (or by a bulk load past the writer).
        conn.execute(
            "INSERT INTO telemetry_parking (device_id, ts, received_at, occupied, battery_pct)"
            " SELECT 'PS-' || (g %% 7), %s + g * interval '1 minute', now(), g %% 3 = 0, g"
            " FROM generate_series(0, 99) g",
            (BASE,),
        )
        conn.execute("DROP TABLE parking_spot_latest")
        conn.execute("DELETE FROM schema_migrations WHERE version = 12")
    report = apply_migrations(empty_database_url, "plain")
    assert report.applied == ["012_parking_spot_latest"]
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        expected = _newest_stored(conn)
        assert len(expected) == 7
        assert _latest(conn) == expected
        conn.execute("UPDATE parking_spot_latest SET occupied = NOT occupied")
        assert store.rebuild_latest_reports(conn) == 7
        assert _latest(conn) == expected


def _spot_history(rng: random.Random, device_id: str) -> list[Report]:
    """Reports around BASE: long stays, flickers shorter than the confirmation time,
    changes in the last minute, spots silent for hours, and reports after BASE."""
    style = rng.randrange(6)
    if style == 0:  # silent since before the look-back of every `now` asked
        return [(device_id, BASE - timedelta(hours=7, minutes=rng.randrange(60)), True)]
    reports: list[Report] = []
    t = BASE - timedelta(hours=rng.uniform(6.5, 8))
    occupied = rng.random() < 0.5
    end = BASE + timedelta(minutes=3)
    while t < end:
        reports.append((device_id, t, occupied))
        roll = rng.random()
        if roll < 0.3:  # a flicker or a quick change
            t += timedelta(seconds=rng.choice((5, 20, 59, 60, 61, 90)))
            occupied = not occupied
        elif roll < 0.55:  # a heartbeat restating the state
            t += timedelta(minutes=rng.choice((1, 10, 30)))
        else:
            t += timedelta(minutes=rng.uniform(1, 90))
            occupied = not occupied
        if style == 1 and t > BASE - timedelta(minutes=40):  # stops reporting
            break
    return reports


def _old_counts(db: Database, now: datetime) -> dict[str, tuple[int, int, int, int]]:
    """(sensors, occupied, free, unknown) per lot the way `/parking/lots` counted them
    before: every spot's reports since now - LOOKBACK, debounced at now, open alarms."""
    with db.connection() as conn:
        areas = store.list_areas(conn, AreaKind.LOT)
        spots = store.list_spots(conn, AreaKind.LOT, [a.area_id for a in areas])
        ids = [s.device_id for s in spots]
        reports = store.fetch_spot_reports(conn, ids, now - LOOKBACK, now)
        alarms = {h.device_id: h.open_alarms for h in store.fetch_spot_health(conn, ids)}
    counts = {a.area_id: [0, 0, 0, 0] for a in areas}
    for spot in spots:
        changes = debounce_spot_states(reports.get(spot.device_id, []), now, DEFAULT_CONFIRM_S)
        status = _status(changes, now, alarms.get(spot.device_id, ()))
        row = counts[spot.area_id]
        row[0] += 1
        row[{"occupied": 1, "free": 2, "unknown": 3}[status]] += 1
    return {area_id: (c[0], c[1], c[2], c[3]) for area_id, c in counts.items()}


def test_counts_from_newest_reports_agree_with_debouncing_every_report(
    db: Database, database_url: str
) -> None:
    rng = random.Random(11)
    lots = [f"LOT-{n}" for n in range(4)]
    spots = {f"PS-{n:03d}": lots[n % 3] for n in range(90)}  # LOT-3 has no spots
    with psycopg.connect(database_url, autocommit=True) as conn:
        store.upsert_areas(
            conn, [ParkingArea(lot, AreaKind.LOT, lot, 30, 31.3, 120.6, SQUARE) for lot in lots]
        )
        for device_id, lot in spots.items():
            conn.execute(
                "INSERT INTO devices (device_id, kind, lat, lon, attributes)"
                " VALUES (%s, 'parking', 31.3, 120.6, %s)",
                (device_id, orjson.dumps({"lot_id": lot}).decode()),
            )
        reports = [r for device_id in list(spots)[:-3] for r in _spot_history(rng, device_id)]
        rng.shuffle(reports)  # late and out-of-order arrival, in batches of any size
        while reports:
            size = rng.randint(1, 40)
            _write(conn, reports[:size])
            reports = reports[size:]
        for device_id, alarm_type in (("PS-004", "offline"), ("PS-005", "stuck_sensor")):
            conn.execute(
                "INSERT INTO alarms (source_kind, source_id, alarm_type, severity, raised_at,"
                " last_seen_at) VALUES ('device', %s, %s, 'minor', %s, %s)",
                (device_id, alarm_type, BASE, BASE),
            )
        conn.execute(  # not a reason for unknown
            "INSERT INTO alarms (source_kind, source_id, alarm_type, severity, raised_at,"
            " last_seen_at) VALUES ('device', 'PS-006', 'overstay', 'minor', %s, %s)",
            (BASE, BASE),
        )
        rows = conn.execute("SELECT ts FROM parking_spot_latest ORDER BY device_id").fetchall()
    latest = [ts for (ts,) in rows if isinstance(ts, datetime)]
    assert {"offline", "stuck_sensor"} == UNKNOWN_ALARMS
    # Times around the settled boundary (a newest report exactly CONFIRM or LOOKBACK old)
    # and ones with reports still to come, besides a spread over the hour around BASE.
    nows = [BASE + timedelta(seconds=s) for s in range(-1800, 1800, 97)]
    nows += [ts + CONFIRM for ts in latest[:15]] + [ts + LOOKBACK for ts in latest[:15]]
    nows += [ts + CONFIRM - timedelta(microseconds=1) for ts in latest[15:25]]
    pending_seen = 0
    for now in nows:
        with db.connection() as conn:
            counts = store.fetch_occupancy_now(
                conn,
                AreaKind.LOT,
                lots,
                now=now,
                lookback=LOOKBACK,
                confirm=CONFIRM,
                unknown_alarms=UNKNOWN_ALARMS,
            )
        pending_seen += sum(len(c.pending) for c in counts.values())
        new = {
            o.id: (o.sensors, o.occupied, o.free, o.unknown)
            for o in _occupancy_now(db, AreaKind.LOT, now)
        }
        assert new == _old_counts(db, now), now
    assert pending_seen > 50  # the fallback to the reports did run
    assert new["LOT-3"] == (0, 0, 0, 0)
