"""OIML R76 class III maximum permissible errors (controller.weighing_tolerance)."""

from __future__ import annotations

import pytest

from controller.weighing_tolerance import ToleranceError, mpe_kg, within_tolerance


@pytest.mark.parametrize(
    ("load", "initial", "in_service"),
    [
        (0, 10, 20),  # 0e: 0.5e -> 10 kg at e = 20
        (10_000, 10, 20),  # exactly 500e stays in the first band
        (10_001, 20, 40),  # just above 500e
        (40_000, 20, 40),  # exactly 2000e
        (40_020, 30, 60),  # just above 2000e
        (200_000, 30, 60),  # exactly 10000e
    ],
)
def test_mpe_band_edges_class_iii(load: int, initial: int, in_service: int) -> None:
    assert mpe_kg(load, 20, in_service=False) == initial
    assert mpe_kg(load, 20) == in_service


def test_mpe_odd_division_rounds_up() -> None:
    # e = 5 kg, 100 kg (20e): initial 0.5e = 2.5 kg -> 3 kg
    assert mpe_kg(100, 5, in_service=False) == 3
    assert mpe_kg(100, 5) == 5


def test_mpe_over_capacity_raises() -> None:
    with pytest.raises(ToleranceError, match="exceeds class III"):
        mpe_kg(200_001, 20)


@pytest.mark.parametrize("e", [0, -10])
def test_mpe_bad_division_raises(e: int) -> None:
    with pytest.raises(ToleranceError, match="positive"):
        mpe_kg(1000, e)


def test_mpe_negative_load_raises() -> None:
    with pytest.raises(ToleranceError, match=">= 0"):
        mpe_kg(-1, 20)


def test_within_tolerance_edges() -> None:
    assert within_tolerance(30_040, 30_000, 20)
    assert within_tolerance(29_960, 30_000, 20)
    assert not within_tolerance(30_041, 30_000, 20)
    assert not within_tolerance(30_000, 30_000 + 41, 20)
