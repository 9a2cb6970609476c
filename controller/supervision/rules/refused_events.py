"""A device's notice that it refused custody events becomes a critical alert.

Each refused event is evidence that never existed: a vehicle weighed but not recorded
(the agent kept its barrier closed), an alarm not kept. The alert names how many, of which
kinds, over which device-time span, and why; it stays active until an operator
acknowledges it. A notice the device sends again after a power cut (it stores the notice,
then clears its counter: a cut between the two repeats it with the same span and count) is
not a second alert; state: the span of the last notice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding

NAME = "refused_events"
KINDS = ("refused",)
DEFAULTS: Mapping[str, Any] = {}


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    b = fact.body
    span = [b["since_ts"], b["until_ts"], b["count"]]
    if state.get("last") == span:
        return state, []
    return {"last": span}, [Alert(
        "events_refused", fact.device_id, True, "critical", f"seq {fact.seq}",
        {"seq": fact.seq, "count": b["count"], "kinds": dict(b.get("kinds", {})),
         "since_ts": b["since_ts"], "until_ts": b["until_ts"], "reason": b["reason"]})]
