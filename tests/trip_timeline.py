"""Scripted trip timelines for the trip rules: a straight corridor 20 km north of a port
zone, its destination at the end, another destination off to the side; fixes placed in
metres east/north of the gate, times in minutes after departure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from controller.facts import Fact
from controller.site.geometry import from_local
from controller.supervision.findings import Alert, Finding
from controller.supervision.trip_events import TripEvent

T0 = 1_764_072_000_000
MIN = 60_000
GATE = (38_900_000, 121_600_000)
TRACKER = "gps-1"
TRIP = "o-trip1"


def pt(east: float, north: float) -> list[int]:
    return list(from_local(GATE, east, north))


def square(east: float, north: float, half: float) -> list[list[int]]:
    return [pt(east - half, north - half), pt(east + half, north - half),
            pt(east + half, north + half), pt(east - half, north + half)]


def departure(*, deadline_min: int = 60, at: int = T0) -> Fact:
    body = {"trip_id": TRIP, "departed_ts": at, "deadline_ms": at + deadline_min * MIN,
            "corridor": {"id": "c-north", "points": [pt(0, n) for n in range(0, 20001, 5000)],
                         "widths_m": [100.0] * 4},
            "destination": {"id": "dest-north", "polygon": square(0, 20000, 300)},
            "allowed": [{"id": "port", "polygon": square(0, 0, 500)},
                        {"id": "park", "polygon": square(-400, 8000, 150)}],
            "other_destinations": [{"id": "dest-east", "polygon": square(3000, 10000, 300)}]}
    return Fact(TRACKER, 0, 0, "trip_departed", at, at, body)


def fix(minute: float, east: float, north: float, kmh: float = 40.0) -> list[int]:
    lat, lon = pt(east, north)
    return [T0 + round(minute * MIN), lat, lon, round(kmh * 10), 0, 9, 8]


def positions(seq: int, fixes: Sequence[list[int]], *, ign: bool = True,
              received_min: float | None = None) -> Fact:
    last = max(f[0] for f in fixes)
    rx = last if received_min is None else T0 + round(received_min * MIN)
    return Fact(TRACKER, seq, 1, "positions", last, rx,
                {"fixes": [list(f) for f in fixes], "ign": ign, "ext_power": True,
                 "tamper": False, "src": "nmea"})


def tick(minute: float) -> Fact:
    at = T0 + round(minute * MIN)
    return Fact(TRACKER, 0, 0, "tick", at, at, {"trip_id": TRIP})


def alarm(seq: int, minute: float, code: str, state: str) -> Fact:
    at = T0 + round(minute * MIN)
    return Fact(TRACKER, seq, 1, "alarm", at, at, {"alarm": code, "state": state})


def drive(minutes: Iterable[float], *, east: float = 0.0, kmh: float = 40.0,
          speed_m_per_min: float = 500.0) -> list[list[int]]:
    """Fixes on the corridor's axis (or ``east`` of it) at the given minutes."""
    return [fix(m, east, min(m * speed_m_per_min, 19_000), kmh) for m in minutes]


def run(rule: ModuleType, facts: Iterable[Fact], config: Mapping[str, Any] | None = None,
        state: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[Finding]]:
    """Feed facts through a rule as the runner does (state in, state out)."""
    cfg = {**rule.DEFAULTS, **(config or {})}
    st: dict[str, Any] = state or {}
    found: list[Finding] = []
    for f in facts:
        assert rule.scope(f) == TRACKER
        st, out = rule.update(st, f, cfg)
        found += out
    return st, found


def alerts(found: Iterable[Finding]) -> list[tuple[str, bool]]:
    return [(f.code, f.active) for f in found if isinstance(f, Alert)]


def events(found: Iterable[Finding]) -> list[str]:
    return [f.event for f in found if isinstance(f, TripEvent)]
