"""A truck off its corridor: ``corridor_deviation`` (critical) while its fixes lie outside
the corridor's band (half the segment's width plus a margin).

Hysteresis against GPS jitter: an excursion starts only at ``k`` consecutive fixes outside
and ends only at ``k`` consecutive inside, in device-time order. The fixes are kept sorted
in a bounded window and re-scanned at every batch, so a detour made during a coverage gap
is found when the backlog lands after later live fixes: raised then (once) and cleared at
once if the truck was back on the corridor. One alert per excursion (subject
``trip/start``), with a ``corridor_deviation`` and a ``corridor_rejoined`` trip event.
Fixes after arrival at the destination, and fixes too poor to place the truck (few
satellites, a large HDOP), are not judged; a fix that reports neither (0: a JT/T 808
terminal without the satellites extra) is.
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
    lifecycle,
    merge,
    note_arrival,
    off_corridor,
    open_reports,
    pack,
    reconcile,
    runs,
    unpack,
)

NAME = "trip_corridor"
KINDS = TRIP_KINDS - {"tick"}  # the clock alone changes nothing here
# a fix with fewer satellites or a worse HDOP than these is not judged: multipath near
# buildings and under cranes throws such fixes hundreds of metres off
DEFAULTS: Mapping[str, Any] = {"k": 3, "margin_m": 15.0, "min_sats": 4, "max_hdop_x10": 50}
CODE = "corridor_deviation"


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    if closing(state, fact):  # the trip was cancelled: its open excursion is no longer watched
        return {}, [Alert(CODE, fact.device_id, False, "critical", f"{state['trip']['id']}/{r[2]}",
                          {"trip_id": state["trip"]["id"], "closed": True})
                    for r in open_reports(state)]
    started = lifecycle(state, fact, {"win": None, "rep": []}, keep=("corridor",))
    if started is not None:
        return started, []
    if not state.get("trip") or fact.kind != "positions":
        return state, []
    state = fresh(state)
    trip = state["trip"]
    fixes = fixes_of(fact, trip)
    note_arrival(trip, fixes)
    if trip["arrived"] is not None:
        fixes = [f for f in fixes if f[0] <= trip["arrived"]]
    margin = float(config["margin_m"])
    # 0 is "not reported", not "none": a JT/T 808 terminal sends satellites only as an
    # optional extra and never an HDOP, and such fixes must still be judged
    fixes = [f for f in fixes
             if (f[5] == 0 or f[5] >= int(config["min_sats"]))
             and f[6] <= int(config["max_hdop_x10"])]
    win = merge(unpack(state["win"]), ([f[0], int(off_corridor(trip, f, margin))]
                                       for f in fixes))
    state["win"] = pack(win)
    k = int(config["k"])
    out: list[Finding] = []
    for action, rep in reconcile(state["rep"], end_at_arrival(runs(win, k, k), trip)):
        subject = f"{trip['id']}/{rep[2]}"
        if action == "raise":
            detail = {"trip_id": trip["id"], "corridor": trip["corridor"]["id"],
                      "from_ts": rep[0]}
            out += [Alert(CODE, fact.device_id, True, "critical", subject, detail),
                    TripEvent(trip["id"], CODE, rep[0], {"corridor": trip["corridor"]["id"]})]
        else:
            out += [Alert(CODE, fact.device_id, False, "critical", subject,
                          {"trip_id": trip["id"], "from_ts": rep[0], "to_ts": rep[1]}),
                    TripEvent(trip["id"], "corridor_rejoined", rep[1], {"from_ts": rep[0]})]
    return state, out
