"""A quarantine pest in a lab sample puts its lot on hold at once.

Any finding of the analyzer (a weed seed such as *Ambrosia artemisiifolia* or *Avena
sterilis*: the analyzer reports only species on the quarantine list) with a count over
zero: a ``Hold`` of kind ``quarantine`` on the sample's lot (the runner places it in the
transaction that stores the sample, so no truck of the lot leaves after it) and a
critical ``quarantine_finding`` alert naming the species, subject the lot (the sample id
without a lot, when ``sample_without_lot`` is raised too). A re-sent result holds
nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding, Hold

NAME = "quarantine"
KINDS = ("sample",)
DEFAULTS: Mapping[str, Any] = {}


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    b = fact.body
    found = [f for f in b["findings"] if f[1] > 0]
    if not found or b.get("duplicate"):
        return state, []
    sid, lot = b["sample_id"], b.get("lot_id")
    species = sorted({f[0] for f in found})
    detail = {"sample_id": sid, "lot_id": lot, "sampled_ts": b["sampled_ts"],
              "species": species,
              "findings": [{"species": f[0], "count": f[1], "sample_mass_g": f[2]}
                           for f in found]}
    out: list[Finding] = [Alert("quarantine_finding", fact.device_id, True, "critical",
                                lot or sid, detail)]
    if lot:
        out.append(Hold(lot, "quarantine", f"quarantine pest {', '.join(species)} in "
                                           f"sample {sid}", detail))
    return state, out
