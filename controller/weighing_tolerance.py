"""Maximum permissible errors of a non-automatic weighing instrument (OIML R76-1).

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
