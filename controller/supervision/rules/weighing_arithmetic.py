"""A weighing's figures checked again by the controller, independently of the device.

The agent computes net = gross - tare and rounds to the indicator's division; a firmware
bug, a wrong register map or a forged-but-signed message would break that. The rule
raises a one-off ``weighing_inconsistent`` alert (subject: the seq) naming each failed
check: net is not gross - tare, a figure is not a whole number of divisions, the gross is
above the deck's capacity, the net is not positive. It keeps no state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding

NAME = "weighing_arithmetic"
KINDS = ("weighing",)
DEFAULTS: Mapping[str, Any] = {"capacity_kg": 150_000}  # a 3-deck truck scale's usual max


def scope(fact: Fact) -> str:
    return fact.device_id


def problems(body: Mapping[str, Any], capacity_kg: int) -> list[str]:
    """Every check the figures fail, in words."""
    gross, tare, net, div = (int(body[k]) for k in ("gross_kg", "tare_kg", "net_kg",
                                                     "division_kg"))
    out = []
    if gross - tare != net:
        out.append(f"net {net} kg is not gross {gross} - tare {tare} kg")
    if div > 0:
        out += [f"{name} {value} kg is not a multiple of the {div} kg division"
                for name, value in (("gross", gross), ("tare", tare), ("net", net))
                if value % div]
    if gross > capacity_kg:
        out.append(f"gross {gross} kg is above the capacity of {capacity_kg} kg")
    if net <= 0:
        out.append(f"net {net} kg is not positive")
    return out


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    found = problems(fact.body, int(config["capacity_kg"]))
    if not found:
        return state, []
    return state, [Alert("weighing_inconsistent", fact.device_id, True, "critical",
                         f"seq {fact.seq}", {"seq": fact.seq, "plate": fact.body["plate"],
                                             "problems": found})]
