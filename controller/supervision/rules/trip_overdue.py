"""A trip that takes too long: ``trip_overdue`` (warning) once the time passes the trip's
deadline (the order's window end, or departure plus the corridor's ``max_minutes``,
whichever comes first) with no arrival. Timed by fixes (device time) and, while none
arrive, by the controller's ticks. Cleared at arrival, with how late it was; an arrival
found late in a backlog raises and clears it at once, so a late trip is always on record.
"""

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

NAME = "trip_overdue"
KINDS = TRIP_KINDS
DEFAULTS: Mapping[str, Any] = {}
CODE = "trip_overdue"


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    if closing(state, fact) and state["raised"] and state["trip"]["arrived"] is None:
        return {}, [Alert(CODE, fact.device_id, False, "warning", state["trip"]["id"],
                          {"trip_id": state["trip"]["id"], "closed": True})]
    started = lifecycle(state, fact, {"raised": False})
    if started is not None:
        return started, []
    trip = state.get("trip")
    if not trip or trip["arrived"] is not None or fact.kind not in ("positions", "tick"):
        return state, []
    state = fresh(state)
    trip = state["trip"]
    fixes = fixes_of(fact, trip)
    deadline = int(trip["deadline"])
    out: list[Finding] = []
    detail = {"trip_id": trip["id"], "deadline_ms": deadline}
    if note_arrival(trip, fixes):
        late = trip["arrived"] - deadline
        if late > 0 and not state["raised"]:
            out += [Alert(CODE, fact.device_id, True, "warning", trip["id"], detail),
                    TripEvent(trip["id"], CODE, deadline, {"deadline_ms": deadline})]
        if late > 0 or state["raised"]:
            out.append(Alert(CODE, fact.device_id, False, "warning", trip["id"],
                             {**detail, "arrived_ts": trip["arrived"], "late_ms": max(late, 0)}))
        return state, out
    now = fact.device_ts if fact.kind == "tick" else max((f[0] for f in fixes), default=0)
    if now > deadline and not state["raised"]:
        state["raised"] = True
        out += [Alert(CODE, fact.device_id, True, "warning", trip["id"], detail),
                TripEvent(trip["id"], CODE, deadline, {"deadline_ms": deadline})]
    return state, out
