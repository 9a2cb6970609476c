"""One weighing per vehicle visit: a second ticket for the same visit is an alert, whatever
caused it (a reboot with the truck on the deck, a resent event under a new seq, a forged
message with a valid signature).

Two checks on each weighbridge's recent weighings (state: the last ``remember`` of them):

- ``second_ticket_for_visit`` (critical): the same ``arrived_ts`` as an earlier weighing
  of this device: the agent itself says it is the same visit.
- ``possible_second_ticket`` (warning): the same plate within ``window_ms`` (device time)
  of an earlier weighing, at a gross within the tolerance of it. A truck that weighs in
  empty and out loaded at one gate is not flagged (its two grosses differ by its load);
  one that stands still through a reboot is.

The tolerance is in scale intervals e (the registered division), from OIML R76: each of
the two weighings may be off by the in-service maximum permissible error at that load
(controller/weighing_tolerance.py), so two honest readings of one load differ by at most
twice it, plus ``allowance_e`` e for a person getting in or out of the cab (80-100 kg,
about 5 e at e = 20 kg). At 45 t and e = 20 kg that is 2 x 60 + 100 = 220 kg; a fixed
0.5 % of the gross (before) said 226 kg there but 50 kg on a 10 t truck, below the scale's
own error.

Both are one-offs (subject: the later seq) that an operator closes once the tickets are
reconciled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding
from controller.supervision.rules.tare_history import division, mpe_at

NAME = "one_ticket_per_visit"
KINDS = ("weighing",)
DEFAULTS: Mapping[str, Any] = {
    "window_ms": 15 * 60_000,  # longer than any stay on a deck, shorter than a round trip
    "allowance_e": 5,  # a person in or out of the cab; also the agent's weight_changed step
    "remember": 20,
}


def scope(fact: Fact) -> str:
    return fact.device_id


def tolerance_kg(gross_kg: int, e: int, config: Mapping[str, Any]) -> int:
    """How far two weighings of one load may differ (module docstring)."""
    return 2 * mpe_at(gross_kg, e) + int(config["allowance_e"]) * e


def _same_load(a: int, b: int, division: int, config: Mapping[str, Any]) -> bool:
    return bool(abs(a - b) <= tolerance_kg(a, division, config))


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    b = fact.body
    this = {"seq": fact.seq, "ts": fact.device_ts, "arrived_ts": b["arrived_ts"],
            "plate": b["plate"], "gross_kg": b["gross_kg"]}
    seen: list[dict[str, Any]] = list(state.get("recent", []))
    findings: list[Finding] = []
    same_visit = [w for w in seen if w["arrived_ts"] == this["arrived_ts"]]
    if same_visit:
        first = same_visit[0]
        findings.append(Alert("second_ticket_for_visit", fact.device_id, True, "critical",
                              f"seq {fact.seq}", {"seq": fact.seq, "first_seq": first["seq"],
                                                  "plate": this["plate"],
                                                  "arrived_ts": this["arrived_ts"]}))
    else:
        twin = next((w for w in reversed(seen)
                     if w["plate"] and w["plate"] == this["plate"]
                     and 0 <= this["ts"] - w["ts"] <= config["window_ms"]
                     and _same_load(w["gross_kg"], this["gross_kg"], division(fact),
                                    config)), None)
        if twin is not None:
            findings.append(Alert("possible_second_ticket", fact.device_id, True, "warning",
                                  f"seq {fact.seq}",
                                  {"seq": fact.seq, "first_seq": twin["seq"],
                                   "plate": this["plate"], "gross_kg": this["gross_kg"],
                                   "first_gross_kg": twin["gross_kg"],
                                   "apart_ms": this["ts"] - twin["ts"]}))
    seen.append(this)
    return {"recent": seen[-int(config["remember"]):]}, findings
