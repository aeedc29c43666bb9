"""Tests of the unit-grid point lookup."""

import pytest

from hub.cases.classification import ClassificationError
from hub.cases.grid import GridError, UnitGridIndex

WEST = "320102001001001"
EAST = "320102001001002"
ELL = "320102001001003"

INDEX = UnitGridIndex(
    [
        (WEST, [(118.780, 32.040), (118.781, 32.040), (118.781, 32.041), (118.780, 32.041)]),
        (
            EAST,
            [
                (118.781, 32.040),
                (118.782, 32.040),
                (118.782, 32.041),
                (118.781, 32.041),
                (118.781, 32.040),
            ],
        ),
        # an L shape: the notch (upper right) is outside
        (
            ELL,
            [
                (118.790, 32.050),
                (118.792, 32.050),
                (118.792, 32.051),
                (118.791, 32.051),
                (118.791, 32.052),
                (118.790, 32.052),
            ],
        ),
    ]
)


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (32.0405, 118.7805, WEST),
        (32.0405, 118.7815, EAST),
        (32.0505, 118.7915, ELL),
        (32.0515, 118.7905, ELL),
        (32.0515, 118.7915, None),  # in the notch, inside the bounding box
        (32.0300, 118.7805, None),
        (0.0, 0.0, None),
    ],
)
def test_locate(lat: float, lon: float, expected: str | None) -> None:
    assert INDEX.locate(lat=lat, lon=lon) == expected


def test_empty_index_finds_nothing() -> None:
    assert UnitGridIndex([]).locate(lat=32.0, lon=118.0) is None


@pytest.mark.parametrize(
    ("grids", "error", "message"),
    [
        ([("320102001001001", [(0.0, 0.0), (1.0, 0.0)])], GridError, "at least 3"),
        ([("32010200100100", [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)])], ClassificationError, "15"),
        (
            [
                ("320102001001001", [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]),
                ("320102001001001", [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]),
            ],
            GridError,
            "given twice",
        ),
        (
            [("320102001001001", [(0.0, 0.0), (float("nan"), 0.0), (1.0, 1.0)])],
            GridError,
            "non-finite",
        ),
    ],
)
def test_bad_grids(
    grids: list[tuple[str, list[tuple[float, float]]]], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        UnitGridIndex(grids)
