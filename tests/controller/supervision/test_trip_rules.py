"""The trip rules over scripted timelines (pure: no store): corridor deviation with
hysteresis and device-time order, unplanned stops, tracking gaps by ticks, overdue
arrival, arrival, wrong place, tamper and power loss during a trip."""

from __future__ import annotations

import random

from trip_timeline import (
    MIN,
    T0,
    alarm,
    alerts,
    departure,
    drive,
    events,
    fix,
    positions,
    run,
    tick,
)

from controller.supervision.findings import Alert
from controller.supervision.rules import (
    trip_arrival,
    trip_corridor,
    trip_gap,
    trip_overdue,
    trip_stop,
    trip_tamper,
    trip_wrong_place,
)
from controller.supervision.trip_events import TripEvent


def test_corridor_jittery_clean_trip_raises_nothing() -> None:
    rnd = random.Random(7)
    # GPS noise up to the band's edge (50 m + 15 m margin), and single and double
    # spikes beyond it: fewer than k=3 consecutive outside fixes is jitter
    fixes = [fix(m / 12, rnd.uniform(-60, 60), m / 12 * 500) for m in range(1, 400)]
    for i in range(20, 380, 37):
        fixes[i] = fix((i + 1) / 12, 90, (i + 1) / 12 * 500)
        if i % 2:
            fixes[i + 1] = fix((i + 2) / 12, -95, (i + 2) / 12 * 500)
    batches = [positions(s, fixes[i:i + 16]) for s, i in enumerate(range(0, 399, 16), 1)]
    _, found = run(trip_corridor, [departure(), *batches])
    assert found == []


def test_corridor_detour_raises_after_k_outside_and_clears_after_k_inside() -> None:
    state, found = run(trip_corridor, [departure(), positions(1, drive([1, 2, 3])),
                                       positions(2, drive([4, 5], east=400))])
    assert found == []  # two outside: not yet
    state, found = run(trip_corridor, [positions(3, drive([6], east=400))], state=state)
    assert alerts(found) == [("corridor_deviation", True)]
    raised = found[0]
    assert isinstance(raised, Alert) and raised.severity == "critical"
    assert raised.detail["from_ts"] == T0 + 4 * MIN
    state, found = run(trip_corridor, [positions(4, drive([7, 8])),
                                       positions(5, drive([9, 10]))], state=state)
    assert alerts(found) == [("corridor_deviation", False)]
    assert events(found) == ["corridor_rejoined"] and found[0].subject == raised.subject


def test_corridor_detour_in_a_backlog_after_later_live_fixes_raises_once() -> None:
    live = [positions(1, drive([1, 2, 3, 4])), positions(5, drive([20, 21, 22, 23]))]
    backlog = [positions(2, drive([5, 6, 7])), positions(3, drive([8, 9, 10, 11], east=600)),
               positions(4, drive([12, 13, 14, 15]))]
    state, found = run(trip_corridor, [departure(), *live])
    assert found == []
    state, found = run(trip_corridor, backlog, state=state)
    assert alerts(found) == [("corridor_deviation", True), ("corridor_deviation", False)]
    assert events(found) == ["corridor_deviation", "corridor_rejoined"]
    assert [e.ts for e in found if isinstance(e, TripEvent)] == [T0 + 8 * MIN, T0 + 11 * MIN]
    # the same backlog again (another gateway's copy) and more live fixes: nothing new
    state, found = run(trip_corridor, [positions(6, drive([9, 10], east=600)),
                                       positions(7, drive([24, 25]))], state=state)
    assert found == []


def test_corridor_fixes_before_departure_are_not_judged() -> None:
    _, found = run(trip_corridor, [departure(at=T0 + 10 * MIN),
                                   positions(1, drive([1, 2, 3, 4], east=900))])
    assert found == []


def test_stop_longer_than_n_minutes_outside_zones_raises_and_clears_when_moving() -> None:
    stopped = [fix(m, 20, 5000, kmh=1) for m in range(10, 23)]
    state, found = run(trip_stop, [departure(), positions(1, drive([1, 5, 9])),
                                   positions(2, stopped[:10])])
    assert found == []  # 9 minutes
    state, found = run(trip_stop, [positions(3, stopped[10:])], state=state)
    assert alerts(found) == [("unplanned_stop", True)]
    state, found = run(trip_stop, [positions(4, drive([23, 24, 25]))], state=state)
    assert alerts(found) == [("unplanned_stop", False)] and events(found) == ["moving_again"]


def test_stop_in_a_parking_zone_or_short_raises_nothing() -> None:
    parked = [fix(m, -400, 8000, kmh=0) for m in range(20, 45)]
    short = [fix(m, 20, 12000, kmh=0) for m in range(50, 58)]
    _, found = run(trip_stop, [departure(deadline_min=120), positions(1, parked),
                               positions(2, short), positions(3, drive([60, 61, 62]))])
    assert found == []


def test_stop_open_while_the_tracker_is_silent_is_raised_by_ticks() -> None:
    state, found = run(trip_stop, [departure(), positions(1, [fix(m, 0, 5000, 0)
                                                              for m in (10, 11, 12)]),
                                   tick(20)])
    assert found == []
    _, found = run(trip_stop, [tick(23)], state=state)
    assert alerts(found) == [("unplanned_stop", True)]


def test_gap_raised_by_ticks_cleared_by_live_fixes_and_not_raised_again_by_backlog() -> None:
    state, found = run(trip_gap, [departure(), positions(1, drive([1, 2, 3])), tick(7)])
    assert found == []  # 4 minutes quiet
    state, found = run(trip_gap, [tick(8.5), tick(9)], state=state)
    assert alerts(found) == [("tracking_gap", True)] and events(found) == ["tracking_gap"]
    state, found = run(trip_gap, [positions(9, drive([12, 13]))], state=state)
    assert alerts(found) == [("tracking_gap", False)]
    assert isinstance(found[0], Alert) and found[0].detail["to_ts"] == T0 + 13 * MIN
    assert found[0].detail["holes"] == [[T0 + 3 * MIN, T0 + 12 * MIN]]
    # the backlog of the gap lands after the live fixes: no new gap, it is noted filled
    state, found = run(trip_gap, [positions(4, drive([4, 5, 6, 7, 8, 9, 10, 11])), tick(14)],
                       state=state)
    assert alerts(found) == [] and events(found) == ["tracking_gap_filled"]
    assert isinstance(found[0], TripEvent) and found[0].detail["fixes"] == 8


def test_gap_after_arrival_is_not_raised() -> None:
    _, found = run(trip_gap, [departure(), positions(1, [fix(40, 0, 20000)]), tick(60)])
    assert found == []


def test_overdue_raised_by_tick_past_deadline_and_cleared_at_arrival() -> None:
    state, found = run(trip_overdue, [departure(deadline_min=30), positions(1, drive([5])),
                                      tick(29)])
    assert found == []
    state, found = run(trip_overdue, [tick(31), tick(32)], state=state)
    assert alerts(found) == [("trip_overdue", True)]
    _, found = run(trip_overdue, [positions(2, [fix(45, 0, 20000)])], state=state)
    assert alerts(found) == [("trip_overdue", False)]
    assert isinstance(found[0], Alert) and found[0].detail["late_ms"] == 15 * MIN


def test_overdue_arrival_in_time_raises_nothing_and_late_backlog_is_on_record() -> None:
    _, found = run(trip_overdue, [departure(deadline_min=60), positions(1, [fix(45, 0, 20000)]),
                                  tick(70)])
    assert found == []
    _, found = run(trip_overdue, [departure(deadline_min=30), positions(1, [fix(45, 0, 20000)])])
    assert alerts(found) == [("trip_overdue", True), ("trip_overdue", False)]


def test_arrival_first_fix_in_destination_closes_once_even_with_an_earlier_backlog() -> None:
    state, found = run(trip_arrival, [departure(), positions(1, drive([10, 20])),
                                      positions(3, [fix(41, 0, 20000, 5), fix(42, 10, 20010)])])
    assert events(found) == ["arrived"]
    assert isinstance(found[0], TripEvent) and found[0].ts == T0 + 41 * MIN
    _, found = run(trip_arrival, [positions(2, [fix(39, 0, 19900, 5)])], state=state)
    assert found == []


def test_wrong_place_ignition_off_in_another_destination_is_critical() -> None:
    _, found = run(trip_wrong_place, [departure(), positions(1, drive([5, 10])),
                                      positions(2, [fix(25, 3000, 10000, 0)], ign=False)])
    assert alerts(found) == [("wrong_destination", True)]
    assert isinstance(found[0], Alert) and found[0].severity == "critical"
    assert found[0].detail["zone"] == "dest-east"


def test_wrong_place_parked_long_in_another_destination_raises_once() -> None:
    parked = [fix(m, 3050, 10050, 1) for m in range(20, 40)]
    _, found = run(trip_wrong_place, [departure(), positions(1, parked[:8]),
                                      positions(2, parked[8:]), positions(3, parked[8:])])
    assert alerts(found) == [("wrong_destination", True)]


def test_wrong_place_ignition_off_far_from_corridor_then_arrival_clears() -> None:
    state, found = run(trip_wrong_place, [departure(), positions(1, drive([5])),
                                          positions(2, [fix(20, 5000, 9000, 0)], ign=False)])
    assert alerts(found) == [("ended_off_route", True)]
    _, found = run(trip_wrong_place, [positions(3, [fix(50, 0, 20000)])], state=state)
    assert alerts(found) == [("ended_off_route", False)]


def test_wrong_place_ignition_off_on_the_corridor_raises_nothing() -> None:
    _, found = run(trip_wrong_place, [departure(), positions(1, [fix(20, 30, 9000, 0)],
                                                             ign=False)])
    assert found == []


def test_tamper_and_power_loss_during_a_trip_are_critical_trip_alerts() -> None:
    state, found = run(trip_tamper, [alarm(1, -5, "case_tamper", "raised"), departure(),
                                     alarm(2, 10, "ext_power_lost", "raised"),
                                     alarm(3, 12, "ext_power_lost", "raised")])
    assert alerts(found) == [("trip_power_lost", True)]
    assert isinstance(found[0], Alert) and found[0].severity == "critical"
    _, found = run(trip_tamper, [alarm(4, 14, "ext_power_lost", "cleared"),
                                 alarm(5, 15, "case_tamper", "cleared")], state=state)
    assert alerts(found) == [("trip_power_lost", False)]
    assert events(found) == ["trip_power_lost_cleared"]


def test_trip_rules_forget_a_trip_closed_by_the_controller() -> None:
    from controller.facts import Fact
    closed = Fact("gps-1", 0, 0, "trip_closed", T0 + MIN, T0 + MIN, {"trip_id": "o-trip1"})
    for rule in (trip_corridor, trip_stop, trip_gap, trip_overdue, trip_arrival,
                 trip_wrong_place, trip_tamper):
        state, found = run(rule, [departure(deadline_min=1), closed, tick(30),
                                  positions(1, drive([31, 32, 33], east=900))])
        assert state == {} and found == [], rule.NAME


def test_trip_rules_clear_their_open_alerts_when_the_controller_ends_the_trip() -> None:
    from controller.facts import Fact
    closed = Fact("gps-1", 0, 0, "trip_closed", T0 + 40 * MIN, T0 + 40 * MIN,
                  {"trip_id": "o-trip1"})
    scripts = {
        trip_corridor: [positions(1, drive([1, 2, 3, 4], east=500))],
        trip_stop: [positions(1, [fix(m, 30, 5000, 0) for m in range(5, 20)])],
        trip_gap: [positions(1, drive([1])), tick(10)],
        trip_overdue: [tick(31)],
        trip_tamper: [alarm(1, 3, "case_tamper", "raised")],
    }
    for rule, facts in scripts.items():
        state, found = run(rule, [departure(deadline_min=30), *facts])
        assert [a for a, on in alerts(found) if on], rule.NAME
        state, found = run(rule, [closed], state=state)
        assert state == {} and [on for _, on in alerts(found)] == [False], rule.NAME


def test_trip_stop_and_corridor_runs_open_at_arrival_are_closed_by_it() -> None:
    arrive = positions(3, [fix(40, 0, 20000)])
    state, found = run(trip_stop, [departure(), positions(1, [fix(m, 30, 5000, 0)
                                                              for m in range(5, 20)])])
    assert alerts(found) == [("unplanned_stop", True)]
    _, found = run(trip_stop, [arrive], state=state)
    assert alerts(found) == [("unplanned_stop", False)]
    state, found = run(trip_corridor, [departure(), positions(1, drive([30, 31, 32],
                                                                       east=800))])
    assert alerts(found) == [("corridor_deviation", True)]
    _, found = run(trip_corridor, [arrive], state=state)
    assert alerts(found) == [("corridor_deviation", False)]


def test_corridor_poor_fixes_far_off_are_not_judged() -> None:
    poor = [fix(m, 700, m * 500) for m in (5, 6, 7, 8)]
    for f in poor[:2]:
        f[6] = 120  # HDOP 12
    for f in poor[2:]:
        f[5] = 3    # three satellites
    _, found = run(trip_corridor, [departure(), positions(1, drive([1, 2, 3, 4])),
                                   positions(2, poor), positions(3, drive([9, 10, 11]))])
    assert found == []


def test_gap_no_tick_saw_is_raised_from_the_fixes_device_times() -> None:
    # fixes run ahead of the controller's clock (a replay): no tick ever finds the trip quiet
    state, found = run(trip_gap, [departure(), positions(1, drive([1, 2, 3])),
                                  positions(2, drive([12, 13]))])
    assert alerts(found) == [("tracking_gap", True)] and events(found) == ["tracking_gap"]
    raised = found[0]
    assert isinstance(raised, Alert) and raised.detail["quiet_ms"] == 9 * MIN
    # the same fixes again (a resent batch) raise nothing more
    state, found = run(trip_gap, [positions(3, drive([12, 13]))], state=state)
    assert found == []
    # the tracker was in a coverage gap, not off: its backlog fills the hole and clears it
    state, found = run(trip_gap, [positions(4, drive([4, 5, 6, 7, 8, 9, 10, 11]))],
                       state=state)
    assert alerts(found) == [("tracking_gap", False)]
    assert events(found) == ["tracking_gap_filled"]


def test_gap_from_fixes_stays_open_when_no_backlog_fills_it() -> None:
    state, found = run(trip_gap, [departure(), positions(1, drive([1, 2])),
                                  positions(2, drive([10, 11]))])
    assert alerts(found) == [("tracking_gap", True)]
    # a partial backlog leaves a stretch longer than the limit: still open
    _, found = run(trip_gap, [positions(3, drive([3]))], state=state)
    assert alerts(found) == []
