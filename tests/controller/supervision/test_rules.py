"""Scripted timelines through each supervision rule: pure updates, no store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from controller.facts import Fact
from controller.plausibility import Limits
from controller.supervision.findings import Alert
from controller.supervision.rules import (
    RULES,
    device_alarms,
    device_time,
    one_ticket_per_visit,
    refused_events,
    weighing_plausibility,
)

T0 = 1_764_072_000_000


def alarm(seq: int, code: str, state: str, **detail: Any) -> Fact:
    body: dict[str, Any] = {"alarm": code, "state": state}
    if detail:
        body["detail"] = detail
    return Fact("wb-1", seq, 1, "alarm", T0 + seq * 1000, T0 + seq * 1000 + 5, body)


def weighing(seq: int, gross: int, tare: int, net: int, division: int = 20, *,
             plate: str = "辽B12345", arrived_ts: int | None = None,
             at_s: float | None = None) -> Fact:
    ts = T0 + int((at_s if at_s is not None else seq) * 1000)
    return Fact("wb-1", seq, 1, "weighing", ts, ts + 5,
                {"plate": plate, "gross_kg": gross, "tare_kg": tare, "net_kg": net,
                 "division_kg": division, "stable_ms": 3000,
                 "arrived_ts": arrived_ts if arrived_ts is not None else ts - 8000})


def run(module: Any, facts: Sequence[Fact],
        config: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[Alert]]:
    """Feed a timeline through a rule as the runner does; return final state and findings."""
    state: dict[str, Any] = {}
    out: list[Alert] = []
    for fact in facts:
        state, found = module.update(state, fact, {**module.DEFAULTS, **(config or {})})
        out += found
    return state, out


def test_rules_are_registered_once_in_order() -> None:
    names = [r.name for r in RULES]
    assert names[:5] == ["device_alarms", "weighing_plausibility", "device_time",
                         "one_ticket_per_visit", "refused_events"]
    trip = ["trip_tamper", "trip_corridor", "trip_stop", "trip_wrong_place", "trip_gap",
            "trip_overdue", "trip_arrival"]
    # the trip rules: after device_alarms, in one block, the arrival last (rules/__init__)
    at = names.index(trip[0])
    assert names[at:at + len(trip)] == trip and len(set(names)) == len(names)
    assert RULES[0].kinds == frozenset({"alarm"})


def test_device_alarms_pair_raise_and_clear() -> None:
    state, found = run(device_alarms, [alarm(1, "overload", "raised", gross_kg=160000),
                                       alarm(2, "zero_drift", "raised"),
                                       alarm(3, "overload", "cleared")])
    assert [(a.code, a.active, a.severity) for a in found] == [
        ("overload", True, "critical"), ("zero_drift", True, "warning"),
        ("overload", False, "critical")]
    assert found[0].detail["gross_kg"] == 160000 and found[0].detail["seq"] == 1
    assert state == {"active": {"zero_drift": 2}}


def test_device_alarms_repeat_raise_and_orphan_clear_change_nothing() -> None:
    # a raise resent after a reboot, and a clear for an alarm raised before the store existed
    state, found = run(device_alarms, [alarm(1, "motion_timeout", "raised"),
                                       alarm(2, "motion_timeout", "raised"),
                                       alarm(3, "indicator_frozen", "cleared")])
    assert [(a.code, a.active) for a in found] == [("motion_timeout", True)]
    assert state == {"active": {"motion_timeout": 1}}


def test_device_alarms_one_shot_is_an_alert_per_event_never_cleared_by_the_device() -> None:
    state, found = run(device_alarms, [alarm(4, "left_unweighed", "raised", plate="辽B1"),
                                       alarm(9, "left_unweighed", "raised", plate="辽B2"),
                                       alarm(10, "left_unweighed", "cleared")])
    assert [(a.code, a.subject, a.active) for a in found] == [
        ("left_unweighed", "seq 4", True), ("left_unweighed", "seq 9", True)]
    assert found[1].detail["plate"] == "辽B2"
    assert state == {}


def test_device_alarms_severity_is_configurable() -> None:
    _, found = run(device_alarms, [alarm(1, "zero_drift", "raised")],
                   {"critical": ("zero_drift",)})
    assert found[0].severity == "critical"


def test_weighing_plausibility_accepts_a_consistent_ticket() -> None:
    assert run(weighing_plausibility, [weighing(1, 45240, 15000, 30240)]) == ({}, [])


def test_weighing_plausibility_names_every_failed_check() -> None:
    _, found = run(weighing_plausibility, [weighing(7, 160010, 15000, 145000)])
    [alert] = found
    assert (alert.code, alert.subject, alert.severity) == ("weighing_inconsistent", "seq 7",
                                                          "critical")
    problems = alert.detail["problems"]
    assert "net 145000 kg is not gross 160010 - tare 15000 kg" in problems
    assert "gross 160010 kg is not a multiple of the 20 kg division" in problems
    assert "gross 160010 kg is above the capacity of 150000 kg" in problems
    assert len(problems) == 3
    assert alert.detail["flags"] == ["net_mismatch", "over_capacity", "off_division"]


def test_weighing_plausibility_flags_non_positive_net_and_uses_the_registered_capacity() -> None:
    limits = Limits(capacity_kg=50000)
    _, found = run(weighing_plausibility, [
        replace(weighing(1, 15000, 15000, 0), limits=limits),
        replace(weighing(2, 60000, 20000, 40000), limits=limits)])
    assert [a.detail["problems"] for a in found] == [
        ["net 0 kg is not positive"], ["gross 60000 kg is above the capacity of 50000 kg"]]


def test_one_ticket_per_visit_same_arrival_is_a_second_ticket() -> None:
    # the agent rebooted with the weighed truck on the deck and weighed it again: the
    # restored visit keeps its arrival time
    _, found = run(one_ticket_per_visit, [weighing(1, 45240, 15000, 30240, arrived_ts=T0),
                                          weighing(2, 45240, 15000, 30240, arrived_ts=T0)])
    [alert] = found
    assert (alert.code, alert.severity, alert.subject) == ("second_ticket_for_visit",
                                                          "critical", "seq 2")
    assert alert.detail["first_seq"] == 1


def test_one_ticket_per_visit_same_plate_and_load_soon_after_is_suspect() -> None:
    _, found = run(one_ticket_per_visit, [weighing(1, 45240, 15000, 30240, at_s=10),
                                          weighing(2, 45260, 15020, 30240, at_s=70)])
    [alert] = found
    assert (alert.code, alert.severity) == ("possible_second_ticket", "warning")
    assert alert.detail["apart_ms"] == 60_000


def test_one_ticket_per_visit_lets_honest_traffic_through() -> None:
    state, found = run(one_ticket_per_visit, [
        weighing(1, 15000, 15000, 0, at_s=0),                     # in, empty
        weighing(2, 45240, 15000, 30240, at_s=900),                # out, loaded: other load
        weighing(3, 45240, 15000, 30240, at_s=2000),               # same load, past the window
        weighing(4, 45240, 15000, 30240, at_s=2010, plate="辽B99999"),  # another truck
    ])
    assert found == []
    assert [w["seq"] for w in state["recent"]] == [1, 2, 3, 4]


def test_one_ticket_per_visit_remembers_a_bounded_number() -> None:
    facts = [weighing(s, 40000 + s * 1000, 15000, 25000 + s * 1000, plate=f"P{s}", at_s=s)
             for s in range(1, 31)]
    state, _ = run(one_ticket_per_visit, facts)
    assert [w["seq"] for w in state["recent"]] == list(range(11, 31))


def test_refused_events_notice_is_a_critical_alert() -> None:
    notice = Fact("wb-1", 9, 2, "refused", T0, T0 + 5,
                  {"count": 2, "kinds": {"weighing": 1, "alarm": 1}, "since_ts": T0 - 60_000,
                   "until_ts": T0 - 1000, "reason": "outbox_full"})
    _, [alert] = run(refused_events, [notice])
    assert (alert.code, alert.severity, alert.subject) == ("events_refused", "critical",
                                                          "seq 9")
    assert alert.detail["count"] == 2 and alert.detail["kinds"] == {"weighing": 1, "alarm": 1}


def test_refused_events_notice_repeated_after_a_power_cut_is_one_alert() -> None:
    body = {"count": 1, "kinds": {"weighing": 1}, "since_ts": T0, "until_ts": T0,
            "reason": "outbox_full"}
    notices = [Fact("wb-1", seq, 2, "refused", T0, T0 + 5, body) for seq in (9, 10)]
    later = Fact("wb-1", 11, 2, "refused", T0, T0 + 5, {**body, "until_ts": T0 + 1})
    _, found = run(refused_events, [*notices, later])
    assert [a.subject for a in found] == ["seq 9", "seq 11"]


def test_weighing_plausibility_alerts_a_suspect_plate_apart_from_the_figures() -> None:
    _, found = run(weighing_plausibility, [weighing(1, 45240, 15000, 30240, plate=""),
                                           weighing(2, 45240, 15000, 30000,
                                                    plate="辽B\u202e4321")])
    assert [(a.code, a.subject, a.severity, a.detail["flags"]) for a in found] == [
        ("plate_suspect", "seq 1", "warning", ["empty_plate"]),
        ("weighing_inconsistent", "seq 2", "critical", ["net_mismatch"]),
        ("plate_suspect", "seq 2", "critical", ["plate_unsafe", "plate_format"])]


def test_device_time_raises_once_while_times_are_impossible_and_clears_on_a_sane_one() -> None:
    year_3000 = 32_503_680_000_000
    ahead = replace(weighing(1, 45240, 15000, 30240), device_ts=year_3000)
    ahead_alarm = replace(alarm(2, "overload", "raised"), device_ts=year_3000)
    sane = weighing(3, 45240, 15000, 30240)
    state, found = run(device_time, [ahead, ahead_alarm])
    [alert] = found
    assert (alert.code, alert.active, alert.subject) == ("device_clock_wrong", True, "")
    assert alert.detail["flags"] == ["device_time_ahead"] and alert.detail["seq"] == 1
    assert state == {"since_seq": 1}
    state, found = run(device_time, [ahead, ahead_alarm, sane])
    assert [(a.code, a.active) for a in found] == [("device_clock_wrong", True),
                                                  ("device_clock_wrong", False)]
    assert state == {}
