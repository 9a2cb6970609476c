"""A tracker gone quiet: ``tracking_gap`` (warning) when, by the controller's ticks, no fix
newer than ``minutes`` has come in while the trip is in transit.

The ticks raise it live: they are the controller's clock. A fix newer than the gap's start
clears it (``tracking_resumed``, up to the newest fix that came). The holes left in device
time (consecutive fixes further apart than ``minutes``) are remembered; a backlog that lands
later with fixes inside one raises nothing again and is noted on the trip
(``tracking_gap_filled``, with the count), so the record says the hole was covered.

A hole the ticks never saw is raised from the fixes themselves, by device time: the
controller was down through it, or the fixes run ahead of the controller's clock (a
replay, an accelerated emulator). That alert's subject is `<trip>/gap-<start ts>`;
it stays active (an operator resolves it: the tracker was off) unless a backlog later fills
the hole, which clears it (``tracking_gap_filled``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
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
    merge,
    note_arrival,
    pack,
    unpack,
)

NAME = "trip_gap"
KINDS = TRIP_KINDS
DEFAULTS: Mapping[str, Any] = {"minutes": 5}
CODE = "tracking_gap"
PAST_GAPS = 16


def scope(fact: Fact) -> str:
    return fact.device_id


def _holes(win: Sequence[Sequence[Any]], after: int, long_ms: int) -> list[list[int]]:
    """[from, to] of consecutive fixes further apart than ``long_ms``, ending after ``after``."""
    ts = [int(w[0]) for w in win]
    return [[a, b] for a, b in pairwise(ts) if b - a > long_ms and b > after]


def _fixes(state: dict[str, Any], fact: Fact, trip: dict[str, Any],
           long_ms: int) -> list[Finding]:
    fixes = fixes_of(fact, trip)
    note_arrival(trip, fixes)
    out: list[Finding] = []
    for past in state["past"]:  # [from_ts, to_ts]: a hole left by a gap already closed
        n = sum(1 for f in fixes if past[0] < f[0] < past[1])
        if n:
            out.append(TripEvent(trip["id"], "tracking_gap_filled", past[0],
                                 {"to_ts": past[1], "fixes": n}))
    win = merge(unpack(state["win"]), ([f[0], 0] for f in fixes))
    state["win"] = pack(win)
    newest = max((f[0] for f in fixes), default=0)
    out += _unseen_holes(state, fact, trip, win, fixes, long_ms)
    gap = state["gap"]
    if gap is not None and newest > gap:
        holes = _holes(win, gap, long_ms)
        detail = {"trip_id": trip["id"], "from_ts": gap, "to_ts": newest, "holes": holes}
        out += [Alert(CODE, fact.device_id, False, "warning", trip["id"], detail),
                TripEvent(trip["id"], "tracking_resumed", newest,
                          {"from_ts": gap, "holes": holes})]
        state["past"] = [*state["past"], *holes][-PAST_GAPS:]
        state["gap"] = None
    state["last"] = max(state["last"], newest)
    return out


def _unseen_holes(state: dict[str, Any], fact: Fact, trip: dict[str, Any],
                  win: Sequence[Sequence[Any]], fixes: Sequence[Sequence[int]],
                  long_ms: int) -> list[Finding]:
    """Raise the holes these fixes open that no tick saw; clear the ones they fill."""
    out: list[Finding] = []
    unseen: list[list[int]] = state.setdefault("unseen", [])
    ts = [int(w[0]) for w in win]
    for hole in list(unseen):  # filled when no stretch inside it is longer than the limit
        inner = [t for t in ts if hole[0] <= t <= hole[1]]
        if any(f[0] for f in fixes if hole[0] < f[0] < hole[1]) and all(
                b - a <= long_ms for a, b in pairwise(inner)):
            unseen.remove(hole)
            subject = f"{trip['id']}/gap-{hole[0]}"
            out += [Alert(CODE, fact.device_id, False, "warning", subject,
                          {"trip_id": trip["id"], "from_ts": hole[0], "to_ts": hole[1],
                           "filled": True}),
                    TripEvent(trip["id"], "tracking_gap_filled", hole[0],
                              {"to_ts": hole[1], "fixes": len(inner) - 2})]
    if state["gap"] is not None:  # a live gap is open: the ticks own it
        return out
    arrived = trip["arrived"]
    known = {h[0] for h in unseen} | {p[0] for p in state["past"]}
    for a, b in _holes(win, int(state["last"]), long_ms):
        if a in known or (arrived is not None and a >= arrived) or b not in {
                f[0] for f in fixes}:
            continue
        unseen.append([a, b])
        detail = {"trip_id": trip["id"], "from_ts": a, "to_ts": b, "quiet_ms": b - a,
                  "seen": "from the fixes' device times"}
        out += [Alert(CODE, fact.device_id, True, "warning", f"{trip['id']}/gap-{a}",
                      detail),
                TripEvent(trip["id"], CODE, a, {"quiet_ms": b - a, "to_ts": b})]
    state["unseen"] = unseen[-PAST_GAPS:]
    return out


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    if closing(state, fact) and state["gap"] is not None:  # cancelled: no longer tracked
        return {}, [Alert(CODE, fact.device_id, False, "warning", state["trip"]["id"],
                          {"trip_id": state["trip"]["id"], "closed": True})]
    started = lifecycle(state, fact, {"last": fact.device_ts, "gap": None, "past": [],
                                      "win": None})
    if started is not None:
        return started, []
    if not state.get("trip") or fact.kind not in ("positions", "tick"):
        return state, []
    state = fresh(state)
    trip = state["trip"]
    if fact.kind == "positions":
        return state, _fixes(state, fact, trip, int(config["minutes"]) * 60_000)
    quiet = fact.device_ts - state["last"]
    if trip["arrived"] is None and state["gap"] is None and quiet > int(config["minutes"]) * 60_000:
        state["gap"] = state["last"]
        detail = {"trip_id": trip["id"], "from_ts": state["last"], "quiet_ms": quiet}
        return state, [Alert(CODE, fact.device_id, True, "warning", trip["id"], detail),
                       TripEvent(trip["id"], CODE, state["last"], {"quiet_ms": quiet})]
    return state, []
