"""The demo's trucks (tools/demo_trucks.py): who drives, what they drive and how fast, so that
a one-minute run shows trips departing and arriving and exactly one deviation.

The trajectories are the GPS emulator's own on the bundled demo site; whether a fix is on
the corridor is controller.site.geometry's answer, as the trip_corridor rule uses it.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from controller.api.models import ID_PATTERN
from controller.site import current_site
from controller.site.geometry import in_corridor
from tools.demo_trucks import (
    DETOUR,
    FIRST_WAVE,
    JTT_REPORT_MS,
    MAX_FLEET,
    OFFICE_DESTINATION,
    TRIP_SPEED,
    Truck,
    pick_truck,
    sampled,
    truck_identity,
)
from tools.gps_emulator import Script, TruckPlan, trajectory

START = 1_796_083_200_000


def _wall_s(fixes: list, ts_ms: int) -> float:
    return (ts_ms - fixes[0].ts_ms) / 1000 / TRIP_SPEED


def test_first_wave_has_one_detour_and_drives_both_corridors() -> None:
    site = current_site()
    assert [detour for _, detour in FIRST_WAVE].count(True) == 1
    assert {corridor for corridor, _ in FIRST_WAVE} == set(site.corridors)
    assert OFFICE_DESTINATION in {site.corridors[c].to_zone for c, _ in FIRST_WAVE}
    kinds = [truck_identity(n + 1)[2] is not None for n in range(len(FIRST_WAVE))]
    assert kinds.count(True) == 1 and kinds.count(False) >= 2  # 1 JT/T 808, the rest agents


def test_detour_leaves_the_corridor_for_half_a_minute_and_arrives_in_time() -> None:
    site = current_site()
    [corridor_id] = [c for c, detour in FIRST_WAVE if detour]
    corridor = site.corridors[corridor_id]
    fixes = trajectory(site, TruckPlan(corridor_id, START, seed=1, weigh_s=1,
                                       script=Script(detours=(DETOUR,))))
    off = [f for f in fixes if not in_corridor(corridor, f.true_lat_e6, f.true_lon_e6)]
    assert off, "the detour never leaves the corridor"
    # raised within 15 s of the departure, open long enough for an operator to ack it
    assert _wall_s(fixes, off[0].ts_ms) < 15
    assert _wall_s(fixes, off[-1].ts_ms) - _wall_s(fixes, off[0].ts_ms) >= 20
    # one excursion, then the truck stays on its corridor to the destination
    ts = [f.ts_ms for f in off]
    assert max(b - a for a, b in itertools.pairwise(ts)) == 1000
    arrived = next(f for f in fixes if f.phase == "arrived")
    assert _wall_s(fixes, arrived.ts_ms) < 60
    assert (arrived.ts_ms - fixes[0].ts_ms) / 60_000 < corridor.max_minutes  # not overdue


@pytest.mark.parametrize("corridor_id", ["c-feed-mill", "c-grain-depot"])
def test_clean_trips_arrive_within_a_minute_of_wall_time(corridor_id: str) -> None:
    site = current_site()
    fixes = trajectory(site, TruckPlan(corridor_id, START, seed=3, weigh_s=1))
    arrived = next(f for f in fixes if f.phase == "arrived")
    assert _wall_s(fixes, arrived.ts_ms) < 60
    corridor = site.corridors[corridor_id]
    assert all(in_corridor(corridor, f.true_lat_e6, f.true_lon_e6) for f in fixes)


def test_truck_identity_gives_valid_distinct_ids_and_every_fourth_a_terminal() -> None:
    import re

    ids = [truck_identity(n) for n in range(1, MAX_FLEET + 1)]
    assert len({p for p, _, _ in ids}) == len({t for _, t, _ in ids}) == MAX_FLEET
    assert all(re.fullmatch(ID_PATTERN, t) for _, t, _ in ids)
    terminals = [(t, phone) for _, t, phone in ids if phone is not None]
    assert len(terminals) == MAX_FLEET // 4
    assert all(t == f"jt-{phone}" and phone.isdigit() and len(phone) == 11
               for t, phone in terminals)


def test_pick_truck_waits_for_the_wall_to_catch_up_with_a_trackers_clock() -> None:
    now = START
    busy = Truck(1, "辽BT0001", "trk-01", False, busy=True)
    ahead = Truck(2, "辽BT0002", "trk-02", False, last_ts=now + 20 * 60_000, trips=1)
    back = Truck(3, "辽BT0003", "trk-03", False, last_ts=now - 1000, trips=2)
    fresh = Truck(4, "辽BT0004", "trk-04", False, trips=0)
    assert pick_truck([busy, ahead, back, fresh], now) is fresh  # fewest trips first
    assert pick_truck([busy, ahead, back], now) is back
    assert pick_truck([busy, ahead], now) is None
    assert pick_truck([busy, ahead], now + 20 * 60_000 + 1) is ahead  # its time has come


def test_sampled_reports_every_five_seconds_ignition_changes_and_the_last_fix() -> None:
    site = current_site()
    fixes = trajectory(site, TruckPlan("c-feed-mill", START, seed=2, weigh_s=1))
    out = sampled(fixes)
    assert out[0] == fixes[0] and out[-1] == fixes[-1]
    gaps = Counter(b.ts_ms - a.ts_ms >= JTT_REPORT_MS or a.ign != b.ign
                   for a, b in itertools.pairwise(out))
    assert gaps[False] <= 1  # only the last fix may come sooner
    ign_changes = [(a.ts_ms, b.ign) for a, b in itertools.pairwise(fixes)
                   if a.ign != b.ign]
    assert ign_changes and all(any(f.ts_ms > t and f.ign == on for f in out)
                               for t, on in ign_changes)
    assert len(out) < len(fixes) / 4
