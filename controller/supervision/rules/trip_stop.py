"""A truck standing still where it has no business: ``unplanned_stop`` (warning) when its
speed stays under ``speed_kmh`` for longer than ``minutes`` outside the port's zones,
parking zones and its destination.

Fixes are judged in device-time order over a bounded sorted window (a stop made during a
coverage gap is found when the backlog lands). A stop ends at ``k_end`` consecutive
moving (or allowed) fixes, so a truck creeping in a queue is one stop, not many. While
the tracker is silent, the controller's ticks let an open stop reach its duration.
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
    end_at_arrival,
    fixes_of,
    fresh,
    inside,
    lifecycle,
    merge,
    note_arrival,
    open_reports,
    pack,
    reconcile,
    runs,
    unpack,
)

NAME = "trip_stop"
KINDS = TRIP_KINDS
DEFAULTS: Mapping[str, Any] = {"minutes": 10, "speed_kmh": 3.0, "k_end": 2}
CODE = "unplanned_stop"


def scope(fact: Fact) -> str:
    return fact.device_id


def _stopped_outside(trip: Mapping[str, Any], fix: Sequence[int], speed_dkmh: float) -> bool:
    if fix[3] >= speed_dkmh:
        return False
    zones = [trip["destination"], *trip["allowed"]]
    return not any(inside(z["polygon"], fix) for z in zones)


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    if closing(state, fact):  # the trip was cancelled: a stop is no longer watched
        return {}, [Alert(CODE, fact.device_id, False, "warning", f"{state['trip']['id']}/{r[2]}",
                          {"trip_id": state["trip"]["id"], "closed": True})
                    for r in open_reports(state)]
    started = lifecycle(state, fact, {"win": None, "rep": [], "at": {}},
                        keep=("allowed",))
    if started is not None:
        return started, []
    if not state.get("trip") or fact.kind not in ("positions", "tick"):
        return state, []
    state = fresh(state)
    trip = state["trip"]
    fixes = fixes_of(fact, trip)
    note_arrival(trip, fixes)
    if trip["arrived"] is not None:
        fixes = [f for f in fixes if f[0] <= trip["arrived"]]
    slow = float(config["speed_kmh"]) * 10
    new = [[f[0], int(_stopped_outside(trip, f, slow))] for f in fixes]
    win = merge(unpack(state["win"]), new)
    state["win"] = pack(win)
    # where each stopped fix was, for the alert (kept only for stopped fixes in the window)
    at = {**state["at"], **{str(f[0]): [f[1], f[2]] for f, n in zip(fixes, new, strict=True)
                            if n[1]}}
    kept = {str(w[0]) for w in win if w[1]}
    state["at"] = {t: p for t, p in at.items() if t in kept}
    now = fact.device_ts if fact.kind == "tick" and trip["arrived"] is None else 0
    long_ms = int(config["minutes"]) * 60_000
    found = [r for r in runs(win, 1, int(config["k_end"]))
             if max(r[1], now if r[2] else 0) - r[0] > long_ms]
    out: list[Finding] = []
    for action, rep in reconcile(state["rep"], end_at_arrival(found, trip)):
        subject = f"{trip['id']}/{rep[2]}"
        if action == "raise":
            lat, lon = state["at"].get(str(rep[0]), (None, None))
            detail = {"trip_id": trip["id"], "from_ts": rep[0], "lat_e6": lat, "lon_e6": lon}
            out += [Alert(CODE, fact.device_id, True, "warning", subject, detail),
                    TripEvent(trip["id"], CODE, rep[0], {"lat_e6": lat, "lon_e6": lon})]
        else:
            out += [Alert(CODE, fact.device_id, False, "warning", subject,
                          {"trip_id": trip["id"], "from_ts": rep[0], "to_ts": rep[1]}),
                    TripEvent(trip["id"], "moving_again", rep[1], {"from_ts": rep[0]})]
    return state, out
