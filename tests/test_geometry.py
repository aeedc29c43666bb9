"""Geometry against reference values: great-circle distances, hand-computed distances, shapes."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.geometry import (
    GridIndex,
    LocalProjection,
    PreparedPolygon,
    PreparedPolyline,
    haversine_m,
    point_in_polygon,
    polygon_distance_m,
    polyline_distance_m,
    simplify_indices,
)
from hub.rules.truck_context import FastPolygon, FastPolyline

SUZHOU = LocalProjection(31.30, 120.62)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(31.30, 120.63), (31.31, 120.62), (31.35, 120.70), (31.20, 120.50), (31.4, 120.62)],
)
def test_projected_distance_matches_great_circle_within_a_city(lat: float, lon: float) -> None:
    x, y = SUZHOU.to_xy(lat, lon)
    reference = haversine_m(31.30, 120.62, lat, lon)
    assert math.hypot(x, y) == pytest.approx(reference, rel=2e-3)


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert haversine_m(31.0, 120.0, 32.0, 120.0) == pytest.approx(111_195, rel=1e-4)
    _, y = SUZHOU.to_xy(32.30, 120.62)
    assert y == pytest.approx(111_195, rel=1e-4)


def test_point_to_polyline_distances_by_hand() -> None:
    line = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0)]
    points = np.array([[50.0, 30.0], [-30.0, -40.0], [130.0, 50.0], [100.0, 150.0], [60.0, 0.0]])
    assert polyline_distance_m(points, line) == pytest.approx([30.0, 50.0, 30.0, 50.0, 0.0])


def test_vectorised_and_single_point_paths_agree() -> None:
    rng = np.random.default_rng(3)
    line = rng.uniform(-1000, 1000, size=(12, 2))
    ring = np.array([[0, 0], [400, 0], [400, 300], [200, 500], [0, 300]], dtype=float)
    points = rng.uniform(-1200, 1200, size=(500, 2))
    prepared = PreparedPolyline.from_xy(line)
    fast = FastPolyline([tuple(p) for p in line])
    polygon = PreparedPolygon.from_xy(ring)
    fast_polygon = FastPolygon([tuple(p) for p in ring])
    assert prepared.distance_m(points) == pytest.approx([fast.distance_m(x, y) for x, y in points])
    assert polygon.distance_m(points) == pytest.approx(
        [fast_polygon.distance_m(x, y) for x, y in points]
    )
    assert list(polygon.contains(points)) == [fast_polygon.contains(x, y) for x, y in points]


def test_point_in_polygon_handles_concave_rings_and_closed_rings() -> None:
    # a U shape: the notch (x 40..60, y 40..100) is outside
    ring = [
        (0, 0),
        (100, 0),
        (100, 100),
        (60, 100),
        (60, 40),
        (40, 40),
        (40, 100),
        (0, 100),
        (0, 0),
    ]
    points = [(20, 50), (50, 70), (80, 90), (50, 20), (150, 50), (-1, -1)]
    assert list(point_in_polygon(points, ring)) == [True, False, True, True, False, False]


def test_distance_to_polygon_is_zero_inside_and_to_the_edge_outside() -> None:
    square = [(0, 0), (100, 0), (100, 100), (0, 100)]
    points = [(50, 50), (150, 50), (130, 140), (50, -20)]
    assert polygon_distance_m(points, square) == pytest.approx([0.0, 50.0, 50.0, 20.0])


def test_simplification_keeps_corners_and_drops_collinear_points() -> None:
    straight = [(float(x), 0.0) for x in range(0, 1000, 10)]
    corner = [(1000.0, float(y)) for y in range(0, 1000, 10)]
    kept = simplify_indices(straight + corner, tolerance_m=1.0)
    assert kept == [0, 100, 199]


def test_grid_index_finds_the_same_boxes_as_a_full_scan() -> None:
    rng = np.random.default_rng(5)
    lows = rng.uniform(-20_000, 20_000, size=(300, 2))
    sizes = rng.uniform(10, 3_000, size=(300, 2))
    boxes = [
        (float(x), float(y), float(x + w), float(y + h))
        for (x, y), (w, h) in zip(lows, sizes, strict=True)
    ]
    boxes.append((-1e6, -1e6, 1e6, 1e6))  # wider than the per-item cell cap: always checked
    grid = GridIndex(boxes, cell_m=1_000.0)
    for x, y in rng.uniform(-22_000, 22_000, size=(500, 2)):
        for within_m in (0.0, 1_000.0):
            near = set(grid.candidates(float(x), float(y), within_m))
            expected = {
                i
                for i, (x0, y0, x1, y1) in enumerate(boxes)
                if x0 - within_m <= x <= x1 + within_m and y0 - within_m <= y <= y1 + within_m
            }
            assert expected <= near
    assert grid.candidates(0.0, 0.0) == sorted(set(grid.candidates(0.0, 0.0)))


def _box_gap_m(box: tuple[float, float, float, float], x: float, y: float) -> float:
    x0, y0, x1, y1 = box
    return math.hypot(max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1))


_coordinate = st.floats(-5_000.0, 5_000.0)


@settings(max_examples=300, deadline=None)
@given(
    corners=st.lists(
        st.tuples(_coordinate, _coordinate, st.floats(0.0, 3_000.0), st.floats(0.0, 3_000.0)),
        max_size=25,
    ),
    x=_coordinate,
    y=_coordinate,
    within_m=st.one_of(st.just(0.0), st.just(1_000.0), st.floats(0.0, 2_500.0)),
    cell_m=st.sampled_from([250.0, 1_000.0]),
)
def test_grid_candidates_hold_every_box_within_reach_once_and_in_order(
    corners: list[tuple[float, float, float, float]],
    x: float,
    y: float,
    within_m: float,
    cell_m: float,
) -> None:
    boxes = [(x0, y0, x0 + w, y0 + h) for x0, y0, w, h in corners]
    grid = GridIndex(boxes, cell_m)
    found = grid.candidates(x, y, within_m)
    assert found == sorted(set(found))
    reachable = {i for i, box in enumerate(boxes) if _box_gap_m(box, x, y) <= within_m}
    assert reachable <= set(found)
