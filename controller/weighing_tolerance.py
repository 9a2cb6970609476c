"""Maximum permissible errors: non-automatic weighing instruments (OIML R76-1) and
automatic rail-weighbridges weighing in motion (OIML R106-1, at the end of this module).

Pure arithmetic, no I/O: the gate decision and the weighbridge fraud controls
both compare a weighed net mass against an expected one and need the same
tolerance. Only accuracy class III (the class of road weighbridges) is modelled.

R76-1 table 6, class III, load ``m`` expressed in verification scale intervals
``e``: initial verification MPE is 0.5e for 0 <= m <= 500e, 1e for
500e < m <= 2000e and 1.5e for 2000e < m <= 10000e. In service the MPE is twice
the initial one (R76-1 3.5.2).
"""

from __future__ import annotations

import math
from fractions import Fraction

#: (upper bound of the load band in e, MPE at initial verification in half-e units)
#: Half-e units keep the table in integers so no float rounding decides a band edge.
_CLASS_III_BANDS: tuple[tuple[int, int], ...] = ((500, 1), (2000, 2), (10000, 3))

#: Largest load class III covers: R76 limits class III to 10000e.
MAX_INTERVALS = 10000


class ToleranceError(ValueError):
    """A load or division outside what class III covers."""


def mpe_kg(load_kg: float, e_kg: int, in_service: bool = True) -> int:
    """Maximum permissible error in kg for ``load_kg`` on a class III scale of division ``e_kg``.

    ``in_service`` (the default) doubles the initial-verification MPE, as R76
    prescribes for instruments in use. The result is rounded up to a whole kg.

    Example: a 60 t weighbridge with e = 20 kg weighing 30 000 kg (1500e):
    initial 1e = 20 kg, in service 40 kg -> ``mpe_kg(30000, 20) == 40``.

    Raises ToleranceError when ``e_kg`` is not positive, the load is negative,
    or the load exceeds 10000e (beyond class III: check the scale's e).
    """
    if e_kg <= 0:
        raise ToleranceError(f"division e must be a positive number of kg, got {e_kg}")
    if load_kg < 0 or math.isnan(load_kg):
        raise ToleranceError(f"load must be >= 0 kg, got {load_kg}")
    # Compare in e without float division: load <= bound*e  <=>  band applies.
    for bound_e, half_e in _CLASS_III_BANDS:
        if load_kg <= bound_e * e_kg:
            half_units = half_e * (2 if in_service else 1)
            return math.ceil(half_units * e_kg / 2)
    raise ToleranceError(
        f"load {load_kg} kg exceeds class III maximum of {MAX_INTERVALS}e = "
        f"{MAX_INTERVALS * e_kg} kg; check the scale's division e"
    )


def within_tolerance(
    measured_kg: float, expected_kg: float, e_kg: int, in_service: bool = True
) -> bool:
    """True when ``measured_kg`` is within the MPE at ``expected_kg`` of ``expected_kg``."""
    return abs(measured_kg - expected_kg) <= mpe_kg(expected_kg, e_kg, in_service)


# --- OIML R106-1 (automatic rail-weighbridges), weighing-in-motion ---------------------
#
# R106-1 2.8.1 table (also UK SI 2003/2454 schedule 6, which quotes it): the MPE is a
# percentage of the mass of the single wagon or of the total train, by accuracy class:
# class 0.2: 0.10 % initial, 0.2 % in service; 0.5: 0.25 / 0.5 %; 1: 0.5 / 1 %;
# 2: 1 / 2 %. R106-1 2.8.2 applies it as the greatest of
#   wagon weighing: (a) the table value for the wagon's mass, (b) the table value for a
#     wagon of 35 % of the maximum wagon weight, (c) 1 d;
#   train weighing: (a) the table value for the train's mass, (b) the table value for
#     35 % of the maximum wagon weight times the number of wagons (at most 10),
#     (c) 1 d per wagon, at most 10 d;
# each rounded to the nearest scale interval d.

#: class name -> in-service MPE in thousandths of a percent (integers: no float decides)
_R106_CLASSES: dict[str, int] = {"0.2": 200, "0.5": 500, "1": 1000, "2": 2000}
R106_CLASSES = tuple(_R106_CLASSES)
_REFERENCE_SHARE = (35, 100)  # 35 % of the maximum wagon weight (R106-1 2.8.2 b)
_MAX_REFERENCE_WAGONS = 10


def _r106_class(accuracy_class: str | float) -> int:
    name = accuracy_class if isinstance(accuracy_class, str) else f"{accuracy_class:g}"
    try:
        return _R106_CLASSES[name]
    except KeyError:
        raise ToleranceError(f"R106 accuracy class {accuracy_class!r} is not one of "
                             f"{', '.join(R106_CLASSES)}: check the rail scale's "
                             "certificate") from None


def _table_value(mass_kg: float | Fraction, milli_pct: int, in_service: bool) -> Fraction:
    """The R106 table's percentage of ``mass_kg``, exact."""
    share = Fraction(milli_pct, 100_000) * (1 if in_service else Fraction(1, 2))
    return Fraction(mass_kg) * share


def _round_to_d(value: Fraction, d_kg: int | None) -> int:
    """Nearest multiple of ``d_kg`` (half up); without a d, up to the next whole kg."""
    if d_kg is None:
        return math.ceil(value)
    return math.floor(value / d_kg + Fraction(1, 2)) * d_kg


def _check_r106(mass_kg: float, d_kg: int | None, max_wagon_kg: float | None) -> None:
    if mass_kg < 0 or math.isnan(mass_kg):
        raise ToleranceError(f"mass must be >= 0 kg, got {mass_kg}")
    if d_kg is not None and d_kg <= 0:
        raise ToleranceError(f"scale interval d must be a positive number of kg, got {d_kg}")
    if max_wagon_kg is not None and (max_wagon_kg <= 0 or math.isnan(max_wagon_kg)):
        raise ToleranceError(f"maximum wagon weight must be > 0 kg, got {max_wagon_kg}")


def r106_wagon_mpe_kg(wagon_kg: float, accuracy_class: str | float, *,
                      in_service: bool = True, d_kg: int | None = None,
                      max_wagon_kg: float | None = None) -> int:
    """MPE in kg of one wagon weighed in motion on an R106 rail-weighbridge.

    The class's percentage of the wagon's mass (half of it at initial verification),
    raised to the same percentage of 35 % of ``max_wagon_kg`` and to 1 d when those are
    given, rounded to the nearest d (to the next whole kg without a d).

    Example: a class 0.5 bridge, d = 50 kg, a wagon of 60 000 kg: 0.5 % = 300 kg ->
    ``r106_wagon_mpe_kg(60000, "0.5", d_kg=50) == 300``.

    Raises ToleranceError for an unknown class, a negative mass or a d that is not positive.
    """
    milli_pct = _r106_class(accuracy_class)
    _check_r106(wagon_kg, d_kg, max_wagon_kg)
    candidates = [_table_value(wagon_kg, milli_pct, in_service)]
    if max_wagon_kg is not None:
        reference = Fraction(max_wagon_kg) * Fraction(*_REFERENCE_SHARE)
        candidates.append(_table_value(reference, milli_pct, in_service))
    mpe = _round_to_d(max(candidates), d_kg)
    return max(mpe, d_kg or 0)


def r106_train_mpe_kg(train_kg: float, wagons: int, accuracy_class: str | float, *,
                      in_service: bool = True, d_kg: int | None = None,
                      max_wagon_kg: float | None = None) -> int:
    """MPE in kg of a whole train's mass weighed in motion (R106-1 2.8.2, train weighing).

    The class's percentage of the train's mass, raised to the percentage of 35 % of
    ``max_wagon_kg`` times ``wagons`` (at most 10) and to 1 d per wagon (at most 10 d)
    when those are given; rounded to the nearest d.

    Example: class 1, d = 100 kg, 40 wagons of 50 t: 1 % of 2 000 000 kg ->
    ``r106_train_mpe_kg(2_000_000, 40, "1", d_kg=100) == 20000``.
    """
    milli_pct = _r106_class(accuracy_class)
    _check_r106(train_kg, d_kg, max_wagon_kg)
    if wagons < 1:
        raise ToleranceError(f"a train has at least one wagon, got {wagons}")
    reference_wagons = min(wagons, _MAX_REFERENCE_WAGONS)
    candidates = [_table_value(train_kg, milli_pct, in_service)]
    if max_wagon_kg is not None:
        reference = Fraction(max_wagon_kg) * Fraction(*_REFERENCE_SHARE) * reference_wagons
        candidates.append(_table_value(reference, milli_pct, in_service))
    mpe = _round_to_d(max(candidates), d_kg)
    return max(mpe, (d_kg or 0) * reference_wagons)
