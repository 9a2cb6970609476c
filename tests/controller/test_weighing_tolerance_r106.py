"""OIML R106 in-motion rail weighing MPE (controller.weighing_tolerance r106_*)."""

from __future__ import annotations

import pytest

from controller.weighing_tolerance import (
    ToleranceError,
    r106_train_mpe_kg,
    r106_wagon_mpe_kg,
)


@pytest.mark.parametrize(
    ("cls", "in_service", "initial"),
    [("0.2", 120, 60), ("0.5", 300, 150), ("1", 600, 300), ("2", 1200, 600)],
)
def test_r106_wagon_class_percent_in_service_and_half_initial(
        cls: str, in_service: int, initial: int) -> None:
    # a 60 t wagon: the class's percent in service, half of it at initial verification
    assert r106_wagon_mpe_kg(60_000, cls) == in_service
    assert r106_wagon_mpe_kg(60_000, cls, in_service=False) == initial


def test_r106_wagon_float_class_names_accepted() -> None:
    assert r106_wagon_mpe_kg(60_000, 0.5) == 300
    assert r106_wagon_mpe_kg(60_000, 1) == 600


def test_r106_wagon_rounds_to_nearest_d_half_up() -> None:
    # class 0.5, 62 500 kg -> 312.5 kg; d = 25: 12.5 d -> 13 d = 325 kg (half up)
    assert r106_wagon_mpe_kg(62_500, "0.5", d_kg=25) == 325
    # 62 400 kg -> 312 kg = 12.48 d -> 12 d = 300 kg (nearest, down)
    assert r106_wagon_mpe_kg(62_400, "0.5", d_kg=25) == 300
    # without d: up to the next whole kg (62 500 kg * 0.2 % = 125 kg exactly; 62 501 -> 126)
    assert r106_wagon_mpe_kg(62_500, "0.2") == 125
    assert r106_wagon_mpe_kg(62_501, "0.2") == 126


def test_r106_wagon_floor_of_35_percent_max_wagon_and_one_d() -> None:
    # an empty-ish 10 t wagon on a bridge for 100 t wagons, class 1: 1 % of 35 t = 350 kg
    assert r106_wagon_mpe_kg(10_000, "1", max_wagon_kg=100_000) == 350
    # a 40 t wagon: 400 kg beats the 350 kg floor
    assert r106_wagon_mpe_kg(40_000, "1", max_wagon_kg=100_000) == 400
    # 1 d beats both: class 0.2, 5 t wagon -> 10 kg, d = 50 kg
    assert r106_wagon_mpe_kg(5_000, "0.2", d_kg=50) == 50


def test_r106_train_total_with_per_wagon_floors_capped_at_ten() -> None:
    assert r106_train_mpe_kg(2_000_000, 40, "1", d_kg=100) == 20_000
    # 35 % of 100 t x min(40, 10) wagons = 350 t -> 0.2 % = 700 kg > 0.2 % of 300 t
    assert r106_train_mpe_kg(300_000, 40, "0.2", max_wagon_kg=100_000) == 700
    # 1 d per wagon up to 10 d: 3 wagons, d = 200 -> 600 kg beats 0.2 % of 60 t = 120 kg
    assert r106_train_mpe_kg(60_000, 3, "0.2", d_kg=200) == 600
    assert r106_train_mpe_kg(60_000, 30, "0.2", d_kg=200) == 2_000


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((60_000, "0.3"), {}, "accuracy class"),
        ((-1, "1"), {}, "mass"),
        ((60_000, "1"), {"d_kg": 0}, "scale interval"),
        ((60_000, "1"), {"max_wagon_kg": 0}, "maximum wagon"),
    ],
)
def test_r106_wagon_bad_input_clear_error(args: tuple[float, str], kwargs: dict[str, int],
                                          message: str) -> None:
    with pytest.raises(ToleranceError, match=message):
        r106_wagon_mpe_kg(*args, **kwargs)  # type: ignore[arg-type]


def test_r106_train_without_wagons_refused() -> None:
    with pytest.raises(ToleranceError, match="at least one wagon"):
        r106_train_mpe_kg(1000, 0, "1")
