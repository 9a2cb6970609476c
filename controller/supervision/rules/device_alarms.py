"""The device's own alarms as alerts: a ``raised`` opens one, its ``cleared`` closes it.

Agents send a raised/cleared pair for conditions that last (overload, setup mode, an
unreachable indicator) and a lone ``raised`` for one-shot events (a vehicle that left
unweighed, a weight that changed after weighing, a reading gap long enough for a vehicle
to have crossed unseen). A lasting alarm is one alert per device
and code; a one-shot alarm is an alert of its own (subject: the event's seq) that stays
active until an operator acknowledges it.

State per device: ``{"active": {code: seq of the raise}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding

NAME = "device_alarms"
KINDS = ("alarm",)
DEFAULTS: Mapping[str, Any] = {
    "one_shot": ("left_unweighed", "weight_changed", "possible_unweighed_crossing"),
    # conditions that make the weight itself untrustworthy
    "critical": ("overload", "setup_mode", "remote_calibration", "indicator_frozen",
                 "left_unweighed", "possible_unweighed_crossing", "weighing_not_stored",
                 # the controller acknowledged seqs the device never made
                 "ack_beyond_next_seq"),
}


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    code, raised = str(fact.body["alarm"]), fact.body["state"] == "raised"
    severity = "critical" if code in config["critical"] else "warning"
    detail = {"seq": fact.seq, "device_ts": fact.device_ts, **dict(fact.body.get("detail", {}))}
    if code in config["one_shot"]:
        if not raised:
            return state, []
        return state, [Alert(code, fact.device_id, True, severity, f"seq {fact.seq}", detail)]
    active = dict(state.get("active", {}))
    if raised == (code in active):
        return state, []  # a repeat (resent after a reboot, say): nothing new
    if raised:
        active[code] = fact.seq
    else:
        del active[code]
    return {**state, "active": active}, [Alert(code, fact.device_id, raised, severity,
                                                "", detail)]
