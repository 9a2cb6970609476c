"""What the trip rules share: the trip they supervise, its fixes in device-time order, and
the runs of flagged fixes (excursions, stops) with hysteresis. Pure functions over JSON.

The trip comes from the controller's ``trip_departed`` fact (controller/trips.py): its
corridor and zones are copied from the site at departure into the fact, so a trip is
judged against the route it was given even if the site file changes while it drives, and
a rule needs no site lookup (it stays a pure function of facts).

Fixes reach a rule in acceptance order; a backlog flushed after a coverage gap arrives
after later live fixes. Each rule keeps a bounded window of recent fixes sorted by device
time and re-scans it whenever fixes arrive, so a detour made during the gap is found
when the backlog lands; intervals already reported are matched by overlap and never
reported twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from controller.facts import Fact
from controller.site.geometry import contains_point, in_corridor
from controller.site.model import Corridor

WINDOW = 720          # fixes kept per trip and rule (an hour at one fix per 5 s)
REPORTED = 64         # intervals remembered per trip and rule
CONTROLLER_KINDS = frozenset({"trip_departed", "trip_closed", "tick"})
TRIP_KINDS = frozenset({"positions", "trip_departed", "trip_closed", "tick"})

State = dict[str, Any]
Fix = list[int]  # [ts_ms, lat_e6, lon_e6, speed_dkmh, ...] as in the positions event


GEOMETRY = ("corridor", "allowed", "others")


def trip_of(fact: Fact, keep: Sequence[str] = GEOMETRY) -> dict[str, Any]:
    """The trip a ``trip_departed`` fact starts, as rule state keeps it: the destination
    (every rule sees the arrival) and the geometry in ``keep`` (state is stored at every
    batch: a rule keeps only what it reads)."""
    b = fact.body
    trip = {"id": b["trip_id"], "departed": int(b["departed_ts"]),
            "deadline": int(b["deadline_ms"]), "destination": b["destination"],
            "arrived": None}
    given = {"corridor": b["corridor"], "allowed": b.get("allowed", []),
             "others": b.get("other_destinations", [])}
    return {**trip, **{k: given[k] for k in keep}}


def fixes_of(fact: Fact, trip: Mapping[str, Any]) -> list[Fix]:
    """The fact's fixes made during the trip (from departure), sorted by device time."""
    if fact.kind != "positions":
        return []
    start = int(trip["departed"])
    return sorted((list(f) for f in fact.body.get("fixes", ()) if int(f[0]) >= start),
                  key=lambda f: int(f[0]))


def inside(polygon: Sequence[Sequence[int]], fix: Sequence[int]) -> bool:
    """Whether a fix lies in a polygon given as [[lat_e6, lon_e6], ...]."""
    return contains_point(tuple((int(p[0]), int(p[1])) for p in polygon), int(fix[1]),
                          int(fix[2]))


def arrival_ts(trip: Mapping[str, Any], fixes: Iterable[Sequence[int]]) -> int | None:
    """Device time of the earliest of ``fixes`` inside the trip's destination, or None."""
    poly = trip["destination"]["polygon"]
    found = [int(f[0]) for f in fixes if inside(poly, f)]
    return min(found) if found else None


def note_arrival(trip: dict[str, Any], fixes: Sequence[Sequence[int]]) -> bool:
    """Record in ``trip`` an arrival these fixes show (the earliest one); True if new."""
    ts = arrival_ts(trip, fixes)
    if ts is None or (trip["arrived"] is not None and trip["arrived"] <= ts):
        return False
    first = trip["arrived"] is None
    trip["arrived"] = ts
    return first


def corridor(trip: Mapping[str, Any]) -> Corridor:
    c = trip["corridor"]
    return Corridor(id=str(c["id"]), name="", from_zone="", to_zone="", max_minutes=0,
                    points=tuple((int(p[0]), int(p[1])) for p in c["points"]),
                    widths_m=tuple(float(w) for w in c["widths_m"]))


def off_corridor(trip: Mapping[str, Any], fix: Sequence[int], margin_m: float) -> bool:
    return not in_corridor(corridor(trip), int(fix[1]), int(fix[2]), margin_m)


def merge(window: list[list[Any]], new: Iterable[list[Any]],
          cap: int = WINDOW) -> list[list[Any]]:
    """``window`` ([ts, flag] pairs sorted by ts) with ``new`` ones in place (a ts already
    there is kept once), trimmed to the ``cap`` latest."""
    by_ts = {int(w[0]): w for w in window}
    for w in new:
        by_ts.setdefault(int(w[0]), w)
    return [by_ts[t] for t in sorted(by_ts)][-cap:]


def pack(window: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A window of [ts, value] entries as stored: first ts, ts deltas, values (a third of
    the JSON of the entries; rule state is written at every batch)."""
    ts = [int(w[0]) for w in window]
    return {"t0": ts[0] if ts else 0, "dt": [b - a for a, b in pairwise(ts)],
            "v": [w[1] for w in window]}


def unpack(packed: Any) -> list[list[Any]]:
    """The [ts, value] entries of a packed window (an empty one for none)."""
    if not packed or not packed.get("v"):
        return []
    ts = [int(packed["t0"])]
    for d in packed["dt"]:
        ts.append(ts[-1] + d)
    return [[t, v] for t, v in zip(ts, packed["v"], strict=True)]


def runs(window: Sequence[Sequence[int]], k_start: int, k_end: int) -> list[list[Any]]:
    """Runs of flagged entries with hysteresis: a run starts at the first of ``k_start``
    consecutive flagged entries and ends at the last flagged one before ``k_end``
    consecutive unflagged ones. [start_ts, last_flagged_ts, open] per run, oldest first."""
    out: list[list[Any]] = []
    streak: list[int] = []   # ts of consecutive flagged entries (not yet in a run)
    clean = 0
    current: list[Any] | None = None
    for ts, flag in ((int(w[0]), bool(w[1])) for w in window):
        if current is None:
            streak = [*streak, ts] if flag else []
            if len(streak) >= k_start:
                current = [streak[0], ts, True]
                out.append(current)
                streak = []
        elif flag:
            current[1], clean = ts, 0
        else:
            clean += 1
            if clean >= k_end:
                current[2], current, clean = False, None, 0
    return out


def reconcile(reported: list[list[Any]], found: Sequence[Sequence[Any]],
              ) -> list[tuple[str, list[Any]]]:
    """Match runs ``found`` now against those ``reported`` before ([start, end|None, key]
    each, updated in place; ``key`` names the run for good, its alert's subject, though a
    backlog may move its start earlier). Returns actions: ("raise", report) for a run never
    reported, ("clear", report) for a reported run now over (a run found already over gives
    both)."""
    actions: list[tuple[str, list[Any]]] = []
    for start, last, is_open in found:
        end = None if is_open else last
        match = next((r for r in reported
                      if r[0] <= last and start <= (r[1] if r[1] is not None else 2**62)), None)
        if match is None:
            match = [start, None, str(start)]
            reported.append(match)
            actions.append(("raise", match))
        else:
            match[0] = min(match[0], start)
        if end is not None and match[1] is None:
            match[1] = end
            actions.append(("clear", match))
    del reported[:-REPORTED]
    return actions


def closing(state: State, fact: Fact) -> bool:
    """Whether ``fact`` is the controller ending the trip this state follows (a cancelled
    order): the rule then clears the alerts it holds open on the trip."""
    trip = state.get("trip")
    return fact.kind == "trip_closed" and trip is not None and trip["id"] == fact.body.get(
        "trip_id")


def open_reports(state: State) -> list[list[Any]]:
    """The reported runs still open (raised, never cleared)."""
    return [r for r in state.get("rep", []) if r[1] is None]


def end_at_arrival(found: list[list[Any]], trip: Mapping[str, Any]) -> list[list[Any]]:
    """Runs as they stand once the trip has arrived: none is open any more (fixes after
    the arrival are not judged, so none would close it)."""
    if trip["arrived"] is None:
        return found
    return [[r[0], r[1], False] for r in found]


def lifecycle(state: State, fact: Fact, fresh: Mapping[str, Any],
              keep: Sequence[str] = ()) -> State | None:
    """A rule's state after a ``trip_departed`` (a new trip: ``fresh`` plus the trip with
    the geometry in ``keep``) or ``trip_closed`` (forgotten) fact; None for other facts."""
    if fact.kind == "trip_departed":
        return {**fresh, "trip": trip_of(fact, keep)}
    if fact.kind == "trip_closed":
        trip = state.get("trip")
        return {} if trip and trip["id"] == fact.body.get("trip_id") else dict(state)
    return None


def fresh(state: State) -> State:
    """A copy of a rule's state that the rule may change without touching the runner's:
    the trip and every list but the window (which ``merge`` never changes, only replaces)
    are copied; the geometry inside the trip is shared, read-only. A deep copy cost 85 %
    of a batch's time with a full window."""
    out = dict(state)
    out["trip"] = dict(state["trip"])
    for key, value in state.items():
        if key not in ("trip", "win") and isinstance(value, list):
            out[key] = [list(v) if isinstance(v, list) else v for v in value]
    return out
