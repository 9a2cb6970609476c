"""A vehicle's tare against its own history: ``tare_deviation``.

The tare a weighing carries for a plate is compared with the median of the last
``history`` tares of that plate (on any weighbridge of the site: the scope is the plate).
The difference is judged in scale intervals e (the weighing's registered division): more
than the OIML R76 in-service maximum permissible error for the tare's load
(controller/weighing_tolerance.py) plus an allowance of ``allowance_e`` e (fuel, a driver,
a spare wheel) raises ``tare_deviation`` (warning; a one-off per weighing, subject the
seq). A truck whose tare grew has something on board that will be counted as cargo out of
the port (or, lower, cargo counted as its tare); a swapped plate shows here too.

The median of the last few, not the last one: one wrong tare neither hides the next
honest one nor becomes the reference. Nothing is judged until ``min_history`` tares are
known; weighings without a plate or without a tare (0) are skipped. Every tare joins the
history, deviating ones included (the median keeps one outlier out of the reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller import weighing_tolerance
from controller.facts import Fact
from controller.supervision.findings import Alert, Finding

NAME = "tare_history"
KINDS = ("weighing",)
DEFAULTS: Mapping[str, Any] = {
    "history": 5,       # tares kept per plate; the median of these is the reference
    "min_history": 3,   # fewer known tares: nothing judged yet
    "allowance_e": 10,  # fuel and a driver: 200 kg at e = 20 kg
}


def scope(fact: Fact) -> str:
    return str(fact.body.get("plate") or "")


def division(fact: Fact) -> int:
    """The scale interval e the weighing is judged in: the registered division, else the
    one the weighing states."""
    registered = fact.limits.division_kg if fact.limits is not None else None
    e = registered if registered else fact.body.get("division_kg")
    return int(e) if isinstance(e, int | float) and e >= 1 else 1


def _median(values: Sequence[int]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def mpe_at(load_kg: float, e: int) -> int:
    """The in-service MPE at a load, the top band's beyond class III's 10000 e."""
    capped = min(max(0.0, load_kg), weighing_tolerance.MAX_INTERVALS * e)
    return weighing_tolerance.mpe_kg(capped, e, in_service=True)


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    plate, tare = scope(fact), fact.body.get("tare_kg")
    if not plate or not isinstance(tare, int) or tare <= 0:
        return state, ()
    history: list[int] = [int(t) for t in state.get("tares", [])]
    findings: list[Finding] = []
    if len(history) >= int(config["min_history"]):
        e = division(fact)
        reference = _median(history)
        diff = tare - reference
        allowed = mpe_at(reference, e) + int(config["allowance_e"]) * e
        if abs(diff) > allowed:
            findings.append(Alert("tare_deviation", fact.device_id, True, "warning",
                                  f"seq {fact.seq}", {
                                      "seq": fact.seq, "plate": plate, "tare_kg": tare,
                                      "median_kg": reference, "diff_kg": diff,
                                      "diff_e": round(diff / e, 1), "allowed_kg": allowed,
                                      "e_kg": e, "history": len(history)}))
    history.append(tare)
    return {"tares": history[-int(config["history"]):]}, findings
