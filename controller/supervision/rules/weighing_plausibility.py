"""A weighing a scale could not have shown, or with a plate no vehicle carries, is alerted.

The controller checks every weighing again, independently of the device, against the
device's registration (controller/plausibility.py): a firmware bug, a wrong register map,
a faulty indicator or a compromised device signing what it likes. The weighing is stored
all the same (it is signed evidence) with its flags; this rule raises one-off alerts
(subject: the seq) that stay active until an operator acknowledges them:

- ``weighing_inconsistent`` (critical): the figures: negative weights, tare above gross,
  net not gross - tare or not positive, gross above capacity, weights not whole divisions
  of the registered division, a division other than the registered one;
- ``plate_suspect``: the plate is empty or not in the site's format (warning), or holds
  control characters, bidi overrides or HTML metacharacters (critical: someone is trying
  something on whoever reads it).

Device times are the ``device_time`` rule's. It keeps no state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.plausibility import FIGURE_FLAGS, PLATE_FLAGS, weighing_flags
from controller.supervision.findings import Alert, Finding

NAME = "weighing_plausibility"
KINDS = ("weighing",)
DEFAULTS: Mapping[str, Any] = {}


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    found = weighing_flags(fact)
    out: list[Finding] = []
    for code, group in (("weighing_inconsistent", FIGURE_FLAGS), ("plate_suspect", PLATE_FLAGS)):
        mine = {flag: why for flag, why in found.items() if flag in group}
        if not mine:
            continue
        severity = "critical" if code == "weighing_inconsistent" or "plate_unsafe" in mine \
            else "warning"
        out.append(Alert(code, fact.device_id, True, severity, f"seq {fact.seq}",
                         {"seq": fact.seq, "plate": fact.body["plate"], "flags": list(mine),
                          "problems": list(mine.values())}))
    return state, out
