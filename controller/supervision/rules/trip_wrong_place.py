"""A trip that ends in the wrong place (critical):

- ``wrong_destination``: the truck stands in a destination zone that is not its own,
  with the ignition off, or under ``speed_kmh`` for longer than ``minutes``;
- ``ended_off_route``: the ignition goes off outside every port zone and the destination,
  more than ``far_m`` from the corridor.

Each is raised once per trip and place and kept: unloading somewhere else is the finding
itself, even if the truck later drives on. ``ended_off_route`` is cleared at the arrival at
the trip's own destination (the truck had only stopped). Judged in device-time order over
a bounded sorted window, so a stop inside a coverage gap is found when the backlog lands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.site.geometry import corridor_distance_m
from controller.supervision.findings import Alert, Finding
from controller.supervision.trip_events import TripEvent
from controller.supervision.trip_track import (
    TRIP_KINDS,
    corridor,
    fixes_of,
    fresh,
    inside,
    lifecycle,
    merge,
    note_arrival,
    pack,
    unpack,
)

NAME = "trip_wrong_place"
KINDS = TRIP_KINDS - {"tick"}  # the clock alone changes nothing here
DEFAULTS: Mapping[str, Any] = {"minutes": 10, "speed_kmh": 3.0, "far_m": 2000.0}


def scope(fact: Fact) -> str:
    return fact.device_id


def _zone_of(trip: Mapping[str, Any], fix: Sequence[int]) -> str:
    return next((z["id"] for z in trip["others"] if inside(z["polygon"], fix)), "")


def _slow_in(trip: Mapping[str, Any], fix: Sequence[int], slow: float) -> int:
    """1 + the index of the other destination the fix stands slowly in; 0 if none."""
    if fix[3] >= slow:
        return 0
    return next((i + 1 for i, z in enumerate(trip["others"]) if inside(z["polygon"], fix)), 0)


def _stays(trip: Mapping[str, Any], win: Sequence[Sequence[Any]], long_ms: int) -> set[str]:
    """Other destinations where consecutive slow fixes span more than ``long_ms``."""
    out: set[str] = set()
    start: Sequence[Any] | None = None
    for w in win:
        if w[1]:
            if start is None or start[1] != w[1]:
                start = w
            if w[0] - start[0] > long_ms:
                out.add(str(trip["others"][w[1] - 1]["id"]))
        else:
            start = None
    return out


def _off_route(trip: Mapping[str, Any], fix: Sequence[int], far_m: float) -> bool:
    zones = [trip["destination"], *trip["allowed"], *trip["others"]]  # others: wrong_destination
    if any(inside(z["polygon"], fix) for z in zones):
        return False
    return corridor_distance_m(corridor(trip), int(fix[1]), int(fix[2]))[0] > far_m


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    started = lifecycle(state, fact, {"win": None, "seen": [], "off": None},
                        keep=("corridor", "allowed", "others"))
    if started is not None:
        return started, []
    if not state.get("trip") or fact.kind != "positions":
        return state, []
    state = fresh(state)
    trip = state["trip"]
    fixes = fixes_of(fact, trip)
    was_there = trip["arrived"] is not None
    note_arrival(trip, fixes)
    if trip["arrived"] is not None:
        fixes = [f for f in fixes if f[0] <= trip["arrived"]]
    ign_off = fact.body.get("ign") is False
    slow = float(config["speed_kmh"]) * 10
    win = merge(unpack(state["win"]), ([f[0], _slow_in(trip, f, slow)] for f in fixes))
    state["win"] = pack(win)
    places = _stays(trip, win, int(config["minutes"]) * 60_000)
    if ign_off and fixes and _zone_of(trip, fixes[-1]):
        places.add(_zone_of(trip, fixes[-1]))
    out: list[Finding] = []
    for zone in sorted(places - set(state["seen"])):
        state["seen"].append(zone)
        detail = {"trip_id": trip["id"], "zone": zone, "expected": trip["destination"]["id"]}
        out += [Alert("wrong_destination", fact.device_id, True, "critical",
                      f"{trip['id']}/{zone}", detail),
                TripEvent(trip["id"], "wrong_destination", fact.device_ts, {"zone": zone})]
    last = fixes[-1] if fixes else None
    if ign_off and last and state["off"] is None and _off_route(trip, last, config["far_m"]):
        state["off"] = last[0]
        detail = {"trip_id": trip["id"], "ts": last[0], "lat_e6": last[1], "lon_e6": last[2]}
        out += [Alert("ended_off_route", fact.device_id, True, "critical", trip["id"], detail),
                TripEvent(trip["id"], "ended_off_route", last[0],
                          {"lat_e6": last[1], "lon_e6": last[2]})]
    if not was_there and trip["arrived"] is not None and state["off"] is not None:
        out.append(Alert("ended_off_route", fact.device_id, False, "critical", trip["id"],
                         {"trip_id": trip["id"], "arrived_ts": trip["arrived"]}))
    return state, out
