"""The trip rules against the GPS emulator's trucks on the demo site (tools/gps_emulator.py:
noise, multipath, bends, port speeds), sampled and batched as the tracker agent does (a fix
every 5 s moving, 60 s parked, 10 a batch) and ticked every 30 s: clean trips on both
corridors raise nothing and arrive once; a scripted detour, stop or coverage gap raises
what it should, once. Pure: the rules' update functions, no store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.facts import Fact
from controller.site import current_site, set_site
from controller.supervision.findings import Alert, Finding
from controller.supervision.rules import RULES
from controller.supervision.trip_events import TripEvent
from controller.trips import departure_fact
from tools.gps_emulator import Detour, Fix, Script, Stop, TruckPlan, Window, trajectory

T0 = 1_764_072_000_000
TRACKER = "gps-emu"
TRIP_RULES = [r for r in RULES if r.name.startswith("trip_")]
ORDER_IDS = {"c-feed-mill": "dest-feed-mill", "c-grain-depot": "dest-grain-depot"}


@pytest.fixture(autouse=True)
def demo_site() -> Iterator[None]:
    set_site(None)
    yield


def _kept(fixes: list[Fix]) -> list[Fix]:
    """The agent's sampling: a fix every 5 s over 5 km/h, else every 60 s."""
    out: list[Fix] = []
    for f in fixes:
        gap = 5000 if f.speed_dkmh > 50 else 60_000
        if not out or f.ts_ms - out[-1].ts_ms >= gap:
            out.append(f)
    return out


def _deliveries(fixes: list[Fix], blind_delay_ms: int) -> list[tuple[int, list[Fix]]]:
    """(delivery time, batch): batches of 10 sent when complete (or at an ignition change,
    or when their first fix is 60 s old);
    fixes made while the link is down are sent as one blind-area batch ``blind_delay_ms``
    after the link is back (after the live batches of that time)."""
    out: list[tuple[int, list[Fix]]] = []
    batch: list[Fix] = []
    blind: list[Fix] = []
    for f in fixes:
        if not f.link_up:
            blind.append(f)
            continue
        if blind:
            out.append((f.ts_ms + blind_delay_ms, blind))
            blind = []
        if batch and (batch[-1].ign != f.ign or f.ts_ms - batch[0].ts_ms >= 60_000):
            # an ignition change flushes the batch; so does its first fix turning 60 s old
            out.append((min(f.ts_ms, batch[0].ts_ms + 60_000), batch))
            batch = []
        batch.append(f)
        if len(batch) == 10:
            out.append((f.ts_ms, batch))
            batch = []
    if batch:
        out.append((batch[-1].ts_ms, batch))
    return out


def drive(corridor: str, script: Script | None = None, seed: int = 1,
          blind_delay_ms: int = 20_000) -> list[Finding]:
    """Every finding of the trip rules over one emulated trip."""
    site = current_site()
    plan = TruckPlan(corridor_id=corridor, start_ms=T0, seed=seed, script=script or Script())
    fixes = _kept(trajectory(site, plan))
    departed = T0 + plan.weigh_s * 1000
    order = {"tracker_id": TRACKER, "corridor": corridor, "destination": ORDER_IDS[corridor],
             "window_end_ms": T0 + 6 * 3_600_000}
    facts: list[tuple[int, int, Fact]] = [
        (departed, 0, departure_fact(site, {"trip_id": "o-emu"}, order, departed))]
    for seq, (at, batch) in enumerate(_deliveries(fixes, blind_delay_ms), 1):
        body = {"fixes": [f.row() for f in batch], "ign": batch[-1].ign,
                "ext_power": batch[-1].ext_power, "tamper": batch[-1].tamper, "src": "jtt808"}
        facts.append((at, 1, Fact(TRACKER, seq, 1, "positions", batch[-1].ts_ms, at, body)))
    end = fixes[-1].ts_ms
    facts += [(t, 2, Fact(TRACKER, 0, 0, "tick", t, t, {"trip_id": "o-emu"}))
              for t in range(departed + 30_000, end + 30_000, 30_000)]
    states: dict[str, dict] = {r.name: {} for r in TRIP_RULES}
    found: list[Finding] = []
    for _, _, fact in sorted(facts, key=lambda x: (x[0], x[1])):
        for rule in TRIP_RULES:
            if fact.kind in rule.kinds:
                states[rule.name], out = rule.update(states[rule.name], fact,
                                                     rule.defaults)
                found += out
    return found


def _alerts(found: list[Finding]) -> list[tuple[str, bool]]:
    return [(f.code, f.active) for f in found if isinstance(f, Alert)]


def _events(found: list[Finding]) -> list[str]:
    return [f.event for f in found if isinstance(f, TripEvent)]


@pytest.mark.parametrize("corridor", sorted(ORDER_IDS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_emulated_clean_trip_raises_nothing_and_arrives_once(corridor: str, seed: int) -> None:
    found = drive(corridor, seed=seed)
    assert _alerts(found) == []
    assert _events(found) == ["arrived"]


def test_emulated_detour_raises_one_deviation_and_clears_it() -> None:
    found = drive("c-feed-mill", Script(detours=(Detour(at_km=8.0, offset_m=500,
                                                          length_m=3000),)))
    assert _alerts(found) == [("corridor_deviation", True), ("corridor_deviation", False)]
    assert _events(found) == ["corridor_deviation", "corridor_rejoined", "arrived"]


def test_emulated_stop_on_the_road_raises_an_unplanned_stop() -> None:
    found = drive("c-grain-depot", Script(stops=(Stop(at_km=12.0, minutes=15),)))
    assert _alerts(found) == [("unplanned_stop", True), ("unplanned_stop", False)]


def test_emulated_detour_inside_a_coverage_gap_is_raised_once_when_the_backlog_lands() -> None:
    """A JT/T 808 terminal buffers through an 8 min coverage gap during which the truck
    leaves the corridor; the blind-area batch arrives 2 min after the live reports resumed.
    The ticks raise the gap live; the backlog raises the detour once and does not raise
    the gap again."""
    script = Script(detours=(Detour(at_km=6.0, offset_m=600, length_m=2500),),
                    coverage_gaps=(Window(at_min=5.0, minutes=8.0),))
    found = drive("c-feed-mill", script, blind_delay_ms=120_000)
    assert _alerts(found) == [("tracking_gap", True), ("tracking_gap", False),
                              ("corridor_deviation", True), ("corridor_deviation", False)]
    assert _events(found)[-1] == "arrived" and "tracking_gap_filled" in _events(found)
