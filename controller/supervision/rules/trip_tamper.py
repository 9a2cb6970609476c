"""A tracker tampered with or cut from the truck's power during a trip: its own
``case_tamper`` and ``ext_power_lost`` alarms (already alerts of ``device_alarms``)
become trip events and critical trip alerts (``trip_tamper``, ``trip_power_lost``,
subject the trip), cleared with the alarm. Alarms outside the trip (before departure,
after arrival) are left to ``device_alarms``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding
from controller.supervision.trip_events import TripEvent
from controller.supervision.trip_track import (
    TRIP_KINDS,
    closing,
    fixes_of,
    fresh,
    lifecycle,
    note_arrival,
)

NAME = "trip_tamper"
KINDS = (TRIP_KINDS - {"tick"}) | {"alarm"}
DEFAULTS: Mapping[str, Any] = {}
CODES = {"case_tamper": "trip_tamper", "ext_power_lost": "trip_power_lost"}


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    if closing(state, fact):  # cancelled: the tracker's own alarm alert stays
        return {}, [Alert(code, fact.device_id, False, "critical", state["trip"]["id"],
                          {"trip_id": state["trip"]["id"], "closed": True})
                    for code in state.get("on", [])]
    started = lifecycle(state, fact, {})
    if started is not None:
        return started, []
    trip = state.get("trip")
    if not trip:
        return state, []
    if fact.kind == "positions":
        state = fresh(state)
        note_arrival(state["trip"], fixes_of(fact, state["trip"]))
        return state, []
    code = CODES.get(str(fact.body.get("alarm"))) if fact.kind == "alarm" else None
    if code is None or fact.device_ts < trip["departed"]:
        return state, []
    raised = fact.body.get("state") == "raised"
    on = list(state.get("on", []))
    if raised == (code in on) or (raised and trip["arrived"] is not None
                                  and fact.device_ts > trip["arrived"]):
        return state, []  # already so, or after arrival
    state = {**state, "on": [*on, code] if raised else [c for c in on if c != code]}
    detail = {"trip_id": trip["id"], "alarm": fact.body.get("alarm"), "ts": fact.device_ts}
    event = code if raised else f"{code}_cleared"
    return state, [Alert(code, fact.device_id, raised, "critical", trip["id"], detail),
                   TripEvent(trip["id"], event, fact.device_ts, {"alarm": fact.body["alarm"]})]
