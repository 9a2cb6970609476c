"""A device whose custody events carry impossible times gets one alert until they are sane.

Every custody event's device time is judged at its receipt (controller/plausibility.py):
later than the receipt (a clock ahead: the year 3000), long before it (a clock behind, or
an outbox held for longer than a normal outage), or sent while the device's latest health
put its clock off. Each flagged weighing carries its own flags; this rule keeps one
``device_clock_wrong`` warning per device, raised by the first flagged event and cleared
by the next event whose time is sane. State: the seq that raised it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.plausibility import event_time_flags
from controller.supervision.findings import Alert, Finding

NAME = "device_time"
KINDS = ("weighing", "alarm", "gap", "refused")
DEFAULTS: Mapping[str, Any] = {}
CODE = "device_clock_wrong"


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    found = event_time_flags(fact)
    if found and not state:
        return {"since_seq": fact.seq}, [Alert(
            CODE, fact.device_id, True, "warning", "",
            {"seq": fact.seq, "kind": fact.kind, "flags": list(found),
             "problems": list(found.values()), "device_ts": fact.device_ts,
             "received_ms": fact.received_ms})]
    if not found and state:
        return {}, [Alert(CODE, fact.device_id, False, "warning", "",
                          {"seq": fact.seq, "since_seq": state["since_seq"]})]
    return state, []
