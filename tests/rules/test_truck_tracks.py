"""The track view's simplification: the level-at-a-time Douglas-Peucker keeps what the
recursive one it replaced kept, and `/trucks/{id}/track` answers what it answered when it
simplified a TrackPoint list per request (real PostgreSQL, long tracks)."""

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hub.api.app import create_app
from hub.api.trucks import _simplified
from hub.api.trucks import router as trucks_router
from hub.geometry import douglas_peucker_tolerances, projection_around, simplify_indices
from hub.rules.truck_tracks import TrackPoint
from hub.store.database import Database
from hub.store.trucks import TruckStore
from tests.truck_fixtures import TRUCK, lonlat

T0 = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def _recursive_simplify(points_xy: npt.ArrayLike, tolerance_m: float) -> list[int]:
    """The recursive Douglas-Peucker the hub used before: the reference."""
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if n <= 2:
        return list(range(n))
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        inner = pts[first + 1 : last]
        a, b = pts[first], pts[last]
        d = b - a
        length_sq = float(d @ d)
        rel = inner - a
        if length_sq == 0.0:
            dist = np.hypot(rel[:, 0], rel[:, 1])
        else:
            t = np.clip(rel @ d / length_sq, 0.0, 1.0)
            off = rel - t[:, None] * d
            dist = np.hypot(off[:, 0], off[:, 1])
        worst = int(np.argmax(dist))
        if dist[worst] > tolerance_m:
            index = first + 1 + worst
            keep[index] = True
            stack.append((first, index))
            stack.append((index, last))
    return [int(i) for i in np.flatnonzero(keep)]


def _shapes(rng: np.random.Generator) -> Iterator[npt.NDArray[np.float64]]:
    """Random walks, scattered points, a lattice (exact ties), repeated points (a parked
    truck), closed segments (a loop back to its start), and the smallest inputs."""
    for n in (0, 1, 2, 3, 4):
        yield rng.normal(0, 50, (n, 2))
    for _ in range(60):
        n = int(rng.integers(5, 600))
        yield np.cumsum(rng.normal(0, 10, (n, 2)), axis=0)
        yield rng.normal(0, 50, (n, 2))
        yield np.cumsum(rng.integers(-2, 3, (n, 2)), axis=0).astype(np.float64) * 5.0
        parked = np.zeros((n, 2))
        parked[::7] = rng.normal(0, 30, parked[::7].shape)
        yield parked
        loop = np.cumsum(rng.normal(0, 10, (n, 2)), axis=0)
        loop[-1] = loop[0]
        yield loop


def test_level_at_a_time_douglas_peucker_keeps_what_the_recursive_one_keeps() -> None:
    rng = np.random.default_rng(3)
    for xy in _shapes(rng):
        kept_below = douglas_peucker_tolerances(xy, 0.5)
        # Tolerances well above float rounding: the two sum the dot products in another order.
        for tolerance in (0.5, 1.0, 5.0, 10.0, 40.0, 640.0):
            want = _recursive_simplify(xy, tolerance)
            assert [int(i) for i in np.flatnonzero(kept_below > tolerance)] == want
            assert simplify_indices(xy, tolerance) == want, (len(xy), tolerance)


def _old_simplified(points: list[TrackPoint], max_points: int) -> tuple[list[TrackPoint], float]:
    """What the track view did before: the recursive simplification at 5 m, 10 m, ..."""
    if len(points) <= max_points:
        return points, 0.0
    projection = projection_around([(p.lon, p.lat) for p in points])
    xy = projection.to_xy_array([p.lat for p in points], [p.lon for p in points])
    tolerance = 5.0
    while True:
        keep = _recursive_simplify(xy, tolerance)
        if len(keep) <= max_points:
            return [points[i] for i in keep], tolerance
        tolerance *= 2


def test_simplified_picks_the_same_tolerance_and_points_as_before() -> None:
    rng = np.random.default_rng(4)
    for n in (10, 400, 3000):
        xy = np.cumsum(rng.normal(0, 8, (n, 2)), axis=0)
        lon = [120.62 + x / 95_000 for x in xy[:, 0]]
        lat = [31.30 + y / 111_000 for y in xy[:, 1]]
        points = [
            TrackPoint(T0 + timedelta(seconds=10 * i), la, lo, 30.0)
            for i, (la, lo) in enumerate(zip(lat, lon, strict=True))
        ]
        for max_points in (2, 5, 50, 300, 2000, 5000):
            want, want_tolerance = _old_simplified(points, max_points)
            kept, tolerance = _simplified(lat, lon, max_points)
            assert [points[i] for i in kept] == want
            assert tolerance == want_tolerance


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        assert name is not None
        # Timestamps come back in the session's zone: read in binary and in text alike.
        conn.execute(f"ALTER DATABASE \"{name[0]}\" SET TimeZone = 'Asia/Shanghai'")
    db = Database(database_url, max_size=2)
    db.open()
    try:
        with TestClient(create_app(db, CollectorRegistry(), routers=[trucks_router])) as test:
            yield test
    finally:
        db.close()


def _store_long_track(database_url: str) -> None:
    """4,500 fixes over 20 h: driving with GPS noise, parked stretches of repeated
    positions, speeds a float4 cannot hold exactly, microsecond timestamps."""
    rng = random.Random(8)
    rows = []
    x = y = 0.0
    t = T0
    speeds = (0.0, 0.1, 1e-05, 23.4, 33.333, 47.19, 299.99)
    for k in range(4500):
        parked = (k // 300) % 4 == 3
        if not parked:
            x += rng.uniform(-20, 120)
            y += rng.gauss(0, 15)
        lon, lat = lonlat(x, y)
        speed = 0.0 if parked else rng.choice(speeds)
        rows.append((TRUCK, t, t, lat, lon, speed, 90.0, not parked, False, True, "empty"))
        t += timedelta(seconds=16, microseconds=rng.randrange(1_000_000))
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO telemetry_truck (device_id, ts, received_at, lat, lon, speed_kmh,"
            " heading_deg, acc_on, body_lifted, cover_closed, load)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def _old_track(
    store: TruckStore, start: datetime, end: datetime, max_points: int
) -> dict[str, Any]:
    points = store.track(TRUCK, start, end)
    kept, tolerance = _old_simplified(points, max_points)
    return {
        "type": "Feature",
        "id": TRUCK,
        "geometry": {"type": "LineString", "coordinates": [[p.lon, p.lat] for p in kept]},
        "properties": {
            "device_id": TRUCK,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "fixes": len(points),
            "points": len(kept),
            "simplified_tolerance_m": tolerance,
            "times": [p.ts.isoformat() for p in kept],
            "speeds_kmh": [p.speed_kmh for p in kept],
        },
    }


def test_track_view_answers_as_before(client: TestClient, database_url: str) -> None:
    _store_long_track(database_url)
    db = Database(database_url, max_size=1)
    db.open()
    try:
        store = TruckStore(db)
        for hours, max_points in ((24, 2000), (24, 300), (24, 2), (24, 5000), (6, 2000)):
            start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=1 + hours)
            answer = client.get(
                f"/trucks/{TRUCK}/track",
                params={
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "max_points": max_points,
                },
            )
            assert answer.status_code == 200
            assert answer.json() == _old_track(store, start, end, max_points)
    finally:
        db.close()
    assert answer.json()["properties"]["times"][0].endswith("+08:00")
