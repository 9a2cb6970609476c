"""The weight curve of a weighing betrays interference: ``weight_curve_interference``.

The agent sends, with each weighing, a summary of the readings from the vehicle's arrival
to the weighing (protocols/PROTOCOL.md, ``curve``: samples, settle_ms, max_step_kg,
reversals, restarts). A load at rest on a deck moves by a division or two between
readings; what does not happen to a load at rest:

- a step of more than ``step_e`` scale intervals between two consecutive readings the
  indicator called stable and motionless: a resistor switched into the load cell cable
  by remote control (or a cell shorted) changes the reading at once, without the motion
  a real change of load makes (critical);
- more than ``max_restarts`` stable runs broken by a weight change while the indicator
  still said stable, or more than ``max_reversals`` changes of direction between stable
  readings: a reading nudged up and down until it suits (warning).

One alert per weighing (subject: its seq), with every reason. Weighings without a curve
(older agents) are not judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding
from controller.supervision.rules.tare_history import division
from protocols.bodies import CURVE_FIELDS

NAME = "weight_curve"
KINDS = ("weighing",)
DEFAULTS: Mapping[str, Any] = {
    "step_e": 5,         # a person stepping off a cab is ~5 e at e = 20 kg, with motion
    "max_restarts": 2,   # an indicator calling "stable" a little early, twice at most
    "max_reversals": 6,  # a rocking load settles within a few swings
}


def scope(fact: Fact) -> str:
    return fact.device_id


def curve(body: Mapping[str, Any]) -> dict[str, int] | None:
    """The curve summary as a dict by field name, or None when absent or malformed."""
    raw = body.get("curve")
    if not isinstance(raw, list) or len(raw) != len(CURVE_FIELDS):
        return None
    return {k: int(v) for k, v in zip(CURVE_FIELDS, raw, strict=True)}


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    c = curve(fact.body)
    if c is None:
        return state, ()
    e = division(fact)
    reasons: list[str] = []
    severity = "warning"
    if c["max_step_kg"] > int(config["step_e"]) * e:
        reasons.append(f"a step of {c['max_step_kg']} kg ({c['max_step_kg'] / e:.0f} e) "
                       f"between two stable readings (at most {config['step_e']} e)")
        severity = "critical"
    if c["restarts"] > int(config["max_restarts"]):
        reasons.append(f"the stable reading moved {c['restarts']} times while the indicator "
                       f"said stable (at most {config['max_restarts']})")
    if c["reversals"] > int(config["max_reversals"]):
        reasons.append(f"{c['reversals']} changes of direction between stable readings (at "
                       f"most {config['max_reversals']})")
    if not reasons:
        return state, ()
    return state, (Alert("weight_curve_interference", fact.device_id, True, severity,
                         f"seq {fact.seq}", {"seq": fact.seq,
                                             "plate": fact.body.get("plate", ""),
                                             "gross_kg": fact.body.get("gross_kg"),
                                             "e_kg": e, "curve": c, "reasons": reasons}),)
