"""A weighing taken with a deck position sensor blocked: ``wheels_off_deck`` (critical).

The infrared gratings at the deck's ends and sides must be clear at the stable reading: a
blocked one means a wheel group rests off the deck (the weight shown is short) or
something hides the grating. The portwatch agent never weighs then (edge/drivers/
weighing.py); an agent of another make, or one whose checks were changed, may: its
weighing's ``blocked`` lists the sensors blocked at the weighed reading. One alert per
weighing (subject: its seq); weighings without the field are not judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding

NAME = "wheels_off_deck"
KINDS = ("weighing",)
DEFAULTS: Mapping[str, Any] = {}


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    blocked = fact.body.get("blocked")
    if not isinstance(blocked, list) or not blocked:
        return state, ()
    return state, (Alert("wheels_off_deck", fact.device_id, True, "critical",
                         f"seq {fact.seq}", {"seq": fact.seq,
                                             "plate": fact.body.get("plate", ""),
                                             "gross_kg": fact.body.get("gross_kg"),
                                             "blocked": [str(b) for b in blocked]}),)
