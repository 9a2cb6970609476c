"""Weighing detector tests with scripted timelines; run under pytest and MicroPython."""

import json

from edge.drivers.weighing import WeighingDetector, round_to_division

CLEAR = {"entry_blocked": False, "exit_blocked": False}


def reading(gross, stable=True, motion=False, plate="辽B12345", tare=15000, position=None,
            zero=False, **status):
    st = {"stable": stable, "motion": motion, "zero": zero}
    st.update(status)
    return {"gross_kg": gross, "tare_kg": tare, "net_kg": gross - tare, "status": st,
            "position": position or CLEAR, "plate": plate}


def run(det, timeline):
    """timeline: list of (t_ms, reading); returns every event in order."""
    events = []
    for t, r in timeline:
        events.extend(det.update(t, r))
    return events


def kinds(events, kind):
    return [body for k, body in events if k == kind]


def truck(t0, gross, stable_for=2000, step=100, plate="辽B12345"):
    """Ramp with motion and the entry sensor, settle, then leave over the exit sensor."""
    tl = []
    t = t0
    for w in (2000, 10000, 30000):
        tl.append((t, reading(w, stable=False, motion=True, plate=plate,
                              position={"entry_blocked": True, "exit_blocked": False})))
        t += step
    tl.append((t, reading(gross + 40, stable=False, motion=True, plate=plate)))
    t += step
    for _ in range(stable_for // step + 1):
        tl.append((t, reading(gross, plate=plate)))
        t += step
    tl.append((t, reading(gross // 2, stable=False, motion=True, plate=plate,
                          position={"entry_blocked": False, "exit_blocked": True})))
    t += step
    tl.append((t, reading(0, zero=True, plate="")))
    return tl, t + step


def test_round_to_division():
    assert round_to_division(45231, 20) == 45240
    assert round_to_division(45229, 20) == 45220
    assert round_to_division(45210, 20) == 45220
    assert round_to_division(-15, 20) == -20
    assert round_to_division(0, 20) == 0


def test_one_stable_truck_gives_exactly_one_weighing_with_exact_weights():
    det = WeighingDetector(division_kg=20, min_weight_kg=500, stable_ms=1000)
    tl, _ = truck(0, 45240, stable_for=3000)
    events = run(det, tl)
    weighings = kinds(events, "weighing")
    assert len(weighings) == 1
    w = weighings[0]
    assert (w["gross_kg"], w["tare_kg"], w["net_kg"]) == (45240, 15000, 30240)
    assert w["plate"] == "辽B12345"
    assert w["stable_ms"] >= 1000
    assert kinds(events, "alarm") == []


def test_twenty_trucks_in_a_row_give_twenty_weighings():
    det = WeighingDetector(stable_ms=500)
    events, t = [], 0
    for i in range(20):
        tl, t = truck(t, 30000 + 20 * i, stable_for=800, plate="辽B%05d" % i)
        events.extend(run(det, tl))
    got = [(w["plate"], w["gross_kg"]) for w in kinds(events, "weighing")]
    assert got == [("辽B%05d" % i, 30000 + 20 * i) for i in range(20)]


def test_too_short_a_settle_is_not_weighed_and_raises_left_unweighed():
    det = WeighingDetector(stable_ms=2000)
    tl, _ = truck(0, 40000, stable_for=500)
    events = run(det, tl)
    assert kinds(events, "weighing") == []
    alarms = kinds(events, "alarm")
    assert [a["alarm"] for a in alarms] == ["left_unweighed"]
    assert alarms[0]["detail"]["plate"] == "辽B12345"


def test_drifting_weight_restarts_the_stable_timer():
    det = WeighingDetector(division_kg=20, stable_ms=1000)
    tl = [(0, reading(40000, stable=False, motion=True))]
    for i in range(1, 20):  # creeps 40 kg every 100 ms although the indicator says stable
        tl.append((i * 100, reading(40000 + 40 * i)))
    assert kinds(run(det, tl), "weighing") == []


def test_blocked_position_sensor_prevents_weighing_and_alarms():
    det = WeighingDetector(stable_ms=500)
    off = {"entry_blocked": False, "exit_blocked": True}
    tl = [(t, reading(42000, position=off)) for t in range(0, 1500, 100)]
    events = run(det, tl)
    assert kinds(events, "weighing") == []
    alarms = kinds(events, "alarm")
    assert [(a["alarm"], a["state"]) for a in alarms] == [("vehicle_off_deck", "raised")]
    assert alarms[0]["detail"]["blocked"] == ["exit_blocked"]
    # wheels back on the deck: cleared, then weighed
    events = run(det, [(t, reading(42000)) for t in range(1500, 2500, 100)])
    assert [(a["alarm"], a["state"]) for a in kinds(events, "alarm")] == [
        ("vehicle_off_deck", "cleared")]
    assert len(kinds(events, "weighing")) == 1


def test_overload_and_setup_mode_alarm_and_block_weighing():
    det = WeighingDetector(stable_ms=300)
    tl = [(t, reading(90000, overload=True)) for t in range(0, 1000, 100)]
    events = run(det, tl)
    assert kinds(events, "weighing") == []
    assert [(a["alarm"], a["state"]) for a in kinds(events, "alarm")] == [("overload", "raised")]
    events = run(det, [(1000, reading(90000, setup=True))])
    codes = [(a["alarm"], a["state"]) for a in kinds(events, "alarm")]
    assert ("setup_mode", "raised") in codes and ("overload", "cleared") in codes
    events = run(det, [(t, reading(60000, setup=True)) for t in range(1100, 2000, 100)])
    assert kinds(events, "weighing") == []


def test_remote_calibration_bit_raises_once_and_clears():
    det = WeighingDetector()
    events = run(det, [(0, reading(0, remote_cal=True, zero=True)),
                       (100, reading(0, remote_cal=True, zero=True)),
                       (200, reading(0, zero=True))])
    assert [(a["alarm"], a["state"]) for a in kinds(events, "alarm")] == [
        ("remote_calibration", "raised"), ("remote_calibration", "cleared")]


def test_endless_motion_raises_motion_timeout():
    det = WeighingDetector(motion_alarm_ms=1000)
    events = run(det, [(t, reading(30000, stable=False, motion=True)) for t in range(0, 1600, 100)])
    assert [(a["alarm"], a["state"]) for a in kinds(events, "alarm")] == [
        ("motion_timeout", "raised")]
    events = run(det, [(1700, reading(0, zero=True))])
    states = [(a["alarm"], a["state"]) for a in kinds(events, "alarm")]
    assert ("motion_timeout", "cleared") in states


def test_weight_change_after_weighing_is_flagged_once():
    det = WeighingDetector(stable_ms=200)
    run(det, [(t, reading(30000)) for t in range(0, 500, 100)])
    events = run(det, [(600, reading(31000)), (700, reading(31000))])
    assert [a["alarm"] for a in kinds(events, "alarm")] == ["weight_changed"]
    assert kinds(events, "weighing") == []


def test_zero_drift_on_an_empty_deck():
    det = WeighingDetector(stable_ms=500)
    events = run(det, [(t, reading(60)) for t in range(0, 800, 100)])
    assert [(a["alarm"], a["state"]) for a in kinds(events, "alarm")] == [("zero_drift", "raised")]
    events = run(det, [(900, reading(0, zero=True))])
    assert [(a["alarm"], a["state"]) for a in kinds(events, "alarm")] == [("zero_drift", "cleared")]


# ---- reboots, changes of vehicle without an empty deck, reading gaps ----

EXIT = {"entry_blocked": False, "exit_blocked": True}
ENTRY = {"entry_blocked": True, "exit_blocked": False}
BOTH = {"entry_blocked": True, "exit_blocked": True}


def steady(t0, t1, gross, plate="辽B12345", step=100):
    """Settled readings of ``gross`` from t0 to t1 (exclusive), every ``step`` ms."""
    return [(t, reading(gross, plate=plate)) for t in range(t0, t1, step)]


def leave(t, plate="辽B12345"):
    """The vehicle drives off over the exit sensor; the deck reads zero."""
    return [(t, reading(20000, stable=False, motion=True, plate=plate, position=EXIT)),
            (t + 100, reading(0, zero=True, plate=""))]


def alarm_codes(events):
    return [a["alarm"] for a in kinds(events, "alarm")]


def weighed_visit(plate="辽B12345", gross=45240, seq=7):
    """A detector (stable_ms 1000) that weighed one vehicle arriving at 0, confirmed as ``seq``."""
    det = WeighingDetector(stable_ms=1000)
    events = run(det, [(0, reading(gross, stable=False, motion=True, plate=plate,
                                   position=ENTRY))] + steady(100, 1300, gross, plate))
    w = kinds(events, "weighing")
    assert len(w) == 1 and w[0]["arrived_ts"] == 0
    if seq:
        det.weighed(seq, w[0]["arrived_ts"])
    return det


def rebooted(det, **kw):
    """A fresh detector restored from ``det``'s snapshot after a trip through JSON (flash)."""
    new = WeighingDetector(stable_ms=1000, **kw)
    assert new.restore(json.loads(json.dumps(det.snapshot())))
    return new


def test_weighing_snapshot_round_trips_through_json_and_restore_keeps_it():
    det = weighed_visit(seq=7)
    snap = det.snapshot()
    assert snap == {"phase": "weighed", "plate": "辽B12345", "arrived_ts": 0,
                    "gross_kg": 45240, "seq": 7}
    new = WeighingDetector(stable_ms=1000)
    v = new.version
    assert new.restore(json.loads(json.dumps(snap)))
    assert new.snapshot() == snap and new.state == "weighed"
    assert new.version == v  # restoring is no change to write back
    assert WeighingDetector().snapshot() == {"phase": "empty"}


def test_weighing_version_moves_only_when_the_snapshot_changes():
    det = WeighingDetector(stable_ms=500)
    tl, _ = truck(0, 45240, stable_for=3000)
    snaps, bumps = [det.snapshot()], 0
    for t, r in tl:
        v = det.version
        for kind, body in det.update(t, r):
            if kind == "weighing":
                det.weighed(3, body["arrived_ts"])
        snap = det.snapshot()
        if snap != snaps[-1]:
            assert det.version != v, (t, snap)
            snaps.append(snap)
        bumps += det.version != v
    assert [s["phase"] for s in snaps] == ["empty", "occupied", "weighed", "empty"]
    assert bumps <= 4 < len(tl)  # arrival, weighing (+ its confirmation), departure


def test_weighing_confirmation_of_another_visit_is_ignored():
    det = weighed_visit(seq=0)
    v = det.version
    det.weighed(9, 12345)  # a weighing stored late, from an earlier visit
    assert det.snapshot()["phase"] == "occupied" and det.version == v
    det.weighed(9, 0)
    assert det.snapshot()["phase"] == "weighed" and det.version == v + 1


def test_weighing_reboot_after_the_weighing_neither_weighs_again_nor_raises_left_unweighed():
    for plate in ("辽B12345", ""):  # same vehicle by plate, and by weight without plates
        det = weighed_visit(plate=plate)
        after = steady(60000, 65000, 45260, plate) + leave(65000, plate)
        # without the snapshot the vehicle still on the deck is weighed a second time
        assert len(kinds(run(WeighingDetector(stable_ms=1000), after), "weighing")) == 1
        events = run(rebooted(det), after)
        assert kinds(events, "weighing") == [] and kinds(events, "alarm") == [], plate


def test_weighing_reboot_before_the_weighing_weighs_once_with_the_original_arrival():
    det = WeighingDetector(stable_ms=1000)
    run(det, [(0, reading(45240, stable=False, motion=True, position=ENTRY))]
        + steady(100, 600, 45240))  # stable for 500 ms only, then the power goes
    assert det.snapshot() == {"phase": "occupied", "plate": "辽B12345", "arrived_ts": 0,
                              "gross_kg": 0, "seq": 0}
    new = rebooted(det)
    events = run(new, steady(60000, 60500, 45240))
    assert kinds(events, "weighing") == []  # the stable time before the cut does not count
    events = run(new, steady(60500, 62000, 45240) + leave(62000))
    w = kinds(events, "weighing")
    assert len(w) == 1 and w[0]["arrived_ts"] == 0 and w[0]["stable_ms"] >= 1000
    assert kinds(events, "alarm") == []


def test_weighing_reboot_before_the_driver_stored_the_weighing_weighs_again_same_arrival():
    det = weighed_visit(seq=0)  # weighed, but the driver never confirmed it stored
    assert det.snapshot()["phase"] == "occupied"
    w = kinds(run(rebooted(det), steady(60000, 62000, 45240)), "weighing")
    assert len(w) == 1 and w[0]["arrived_ts"] == 0  # the controller sees one visit twice


def test_weighing_reboot_with_a_different_vehicle_on_the_deck_weighs_it():
    cases = (("辽B12345", "辽B99999", 45240),  # other plate, same gross
             ("", "", 30000))  # no plates: a gross far from the weighed one
    for plate, other, gross in cases:
        det = rebooted(weighed_visit(plate=plate))
        events = run(det, steady(60000, 61500, gross, other) + leave(61500, other))
        w = kinds(events, "weighing")
        assert [(x["plate"], x["gross_kg"], x["arrived_ts"]) for x in w] == [
            (other, gross, 60000)], plate
        assert kinds(events, "alarm") == []  # the old visit was weighed: it just ends


def test_weighing_reboot_with_a_different_vehicle_after_an_unweighed_one_raises_left_unweighed():
    det = WeighingDetector(stable_ms=1000)
    run(det, [(0, reading(40000, stable=False, motion=True, plate="辽A11111"))])
    events = run(rebooted(det), steady(60000, 61500, 40000, "辽B22222"))
    assert [(a["alarm"], a["detail"]["plate"], a["detail"]["arrived_ts"])
            for a in kinds(events, "alarm")] == [("left_unweighed", "辽A11111", 0)]
    assert [(w["plate"], w["arrived_ts"]) for w in kinds(events, "weighing")] == [
        ("辽B22222", 60000)]


def test_weighing_reboot_onto_an_empty_deck_resumes_normal_weighing():
    det = rebooted(weighed_visit())
    events = run(det, [(t, reading(0, zero=True, plate="")) for t in range(60000, 61000, 100)])
    assert events == [] and det.snapshot() == {"phase": "empty"}
    tl, _ = truck(61000, 30000, stable_for=1500, plate="辽B55555")
    events = run(det, tl)
    assert [(w["plate"], w["arrived_ts"]) for w in kinds(events, "weighing")] == [
        ("辽B55555", 61000)]
    # an unweighed vehicle gone during the outage is a known vehicle that left unweighed
    det = WeighingDetector(stable_ms=1000)
    run(det, [(0, reading(40000, stable=False, motion=True))])
    events = run(rebooted(det), [(60000, reading(0, zero=True, plate=""))])
    assert [(a["alarm"], a["detail"]["arrived_ts"], a["detail"]["left_ts"])
            for a in kinds(events, "alarm")] == [("left_unweighed", 0, 60000)]


def test_weighing_restore_of_an_unusable_snapshot_starts_with_an_empty_deck():
    for snap in (None, {}, {"phase": "empty"}, {"phase": "weighed"}, {"phase": "parked"},
                 {"phase": "occupied", "arrived_ts": "soon"}, "weighed"):
        det = WeighingDetector(stable_ms=500)
        assert det.restore(snap) is False, snap
        assert det.state == "empty" and det.snapshot() == {"phase": "empty"}
        assert len(kinds(run(det, steady(0, 1000, 30000)), "weighing")) == 1


def test_weighing_stall_across_a_change_of_vehicle_weighs_the_second_by_plate():
    det = weighed_visit(plate="辽A11111")
    # frozen for 20 s while A leaves and B, of the same gross, drives on
    events = run(det, steady(21300, 23000, 45240, "辽B22222") + leave(23000, "辽B22222"))
    assert [(w["plate"], w["gross_kg"], w["arrived_ts"]) for w in kinds(events, "weighing")] \
        == [("辽B22222", 45240, 21300)]
    assert kinds(events, "alarm") == []


def test_weighing_stall_across_a_change_of_vehicle_weighs_the_second_by_weight_step():
    det = weighed_visit(plate="")
    events = run(det, steady(21300, 23000, 30000, "") + leave(23000, ""))
    assert [(w["gross_kg"], w["arrived_ts"]) for w in kinds(events, "weighing")] == [
        (30000, 21300)]
    assert kinds(events, "alarm") == []  # no weight_changed, no left_unweighed


def test_weighing_plate_first_seen_after_a_stall_is_not_taken_for_the_old_vehicle():
    det = weighed_visit(plate="")
    # after the stall B still rocks, its plate already read: not the plate of A
    tl = [(21300, reading(30040, stable=False, motion=True, plate="辽B22222"))]
    events = run(det, tl + steady(21400, 23000, 30000, "辽B22222"))
    assert [(w["plate"], w["gross_kg"], w["arrived_ts"]) for w in kinds(events, "weighing")] \
        == [("辽B22222", 30000, 21400)]
    # a plate read late for the vehicle being weighed is still adopted
    det = WeighingDetector(stable_ms=500)
    w = kinds(run(det, steady(0, 300, 30000, "") + steady(300, 1000, 30000)), "weighing")
    assert [x["plate"] for x in w] == ["辽B12345"]


def test_weighing_change_of_vehicle_seen_by_the_sensors_without_an_empty_deck():
    det = weighed_visit(plate="")
    # A drives off over the exit while B comes on at the entry: the deck never empties
    tl = [(1300, reading(30000, stable=False, motion=True, plate="", position=EXIT)),
          (1400, reading(15000, stable=False, motion=True, plate="", position=BOTH)),
          (1500, reading(25000, stable=False, motion=True, plate="", position=ENTRY)),
          (1600, reading(31020, stable=False, motion=True, plate=""))]
    events = run(det, tl + steady(1700, 3000, 31000, "") + leave(3000, ""))
    assert [(w["gross_kg"], w["arrived_ts"]) for w in kinds(events, "weighing")] == [
        (31000, 1700)]
    assert kinds(events, "alarm") == []


def test_weighing_stall_while_the_first_vehicle_was_unweighed_raises_left_unweighed_for_it():
    det = WeighingDetector(stable_ms=1000)
    run(det, [(0, reading(40000, stable=False, motion=True, plate="", position=ENTRY))]
        + steady(100, 600, 40000, ""))  # stable 500 ms: not yet weighed
    events = run(det, steady(20000, 21500, 26000, ""))
    assert [(a["alarm"], a["detail"]["arrived_ts"], a["detail"]["left_ts"])
            for a in kinds(events, "alarm")] == [("left_unweighed", 0, 20000)]
    assert [(w["gross_kg"], w["arrived_ts"]) for w in kinds(events, "weighing")] == [
        (26000, 20000)]


def test_weighing_settling_within_tolerance_is_the_same_vehicle_even_after_a_gap():
    # 45,240 kg: tolerance max(5 e, 0.5 %) = 226 kg
    for now, alarms in ((45240 + 80, []), (45240 - 100, []), (45240 + 200, ["weight_changed"])):
        det = weighed_visit(plate="")
        events = run(det, steady(21300, 23000, now, ""))
        assert kinds(events, "weighing") == [], now
        assert alarm_codes(events) == alarms, now
    det = weighed_visit(plate="")
    events = run(det, steady(21300, 23000, 45240 + 240, ""))  # 12 e: beyond, a new vehicle
    assert len(kinds(events, "weighing")) == 1


def test_weighing_weight_step_without_movement_evidence_is_weight_changed_not_a_new_visit():
    det = weighed_visit(plate="")
    events = run(det, steady(1300, 3000, 30000, ""))  # continuous readings, sensors clear
    assert kinds(events, "weighing") == []
    assert alarm_codes(events) == ["weight_changed"]


def test_weighing_vehicle_backing_off_the_exit_sensor_is_not_a_new_vehicle():
    det = weighed_visit(plate="")
    tl = [(1300, reading(44000, stable=False, motion=True, plate="", position=EXIT)),
          (1400, reading(45300, stable=False, motion=True, plate=""))]
    events = run(det, tl + steady(1500, 3000, 45240, "") + leave(3000, ""))
    assert kinds(events, "weighing") == [] and kinds(events, "alarm") == []


def test_weighing_plates_decide_over_weights():
    det = weighed_visit(plate="辽A11111")
    # same plate after a gap at a gross 2 t off: the same vehicle whose load changed
    events = run(det, steady(21300, 23000, 43240, "辽A11111"))
    assert kinds(events, "weighing") == [] and alarm_codes(events) == ["weight_changed"]


def test_weighing_gap_with_the_unweighed_vehicle_gone_raises_left_unweighed():
    det = WeighingDetector(stable_ms=1000)
    run(det, [(0, reading(40000, stable=False, motion=True, position=ENTRY))])
    events = run(det, [(9000, reading(0, zero=True, plate=""))])
    assert [(a["alarm"], a["detail"]["arrived_ts"], a["detail"]["left_ts"])
            for a in kinds(events, "alarm")] == [("left_unweighed", 0, 9000)]


def test_weighing_gap_with_the_weighed_vehicle_gone_raises_nothing():
    det = weighed_visit()
    events = run(det, [(9000, reading(0, zero=True, plate=""))])
    assert events == [] and det.state == "empty"


def test_weighing_gap_with_a_vehicle_arrived_unseen_weighs_it_after_a_full_stable_period():
    det = WeighingDetector(stable_ms=1000)
    run(det, [(0, reading(0, zero=True, plate=""))])
    events = run(det, steady(9000, 9900, 38000))
    assert events == []  # already stable when first seen, but not for 1,000 ms yet
    w = kinds(run(det, steady(9900, 10500, 38000)), "weighing")
    assert [(x["arrived_ts"], x["stable_ms"]) for x in w] == [(9000, 1000)]


def test_weighing_gap_restarts_the_stable_timer():
    det = WeighingDetector(stable_ms=1000)
    run(det, [(0, reading(38000, stable=False, motion=True))] + steady(100, 900, 38000))
    events = run(det, steady(3000, 3900, 38000))  # 2.2 s unseen in between
    assert kinds(events, "weighing") == []
    assert len(kinds(run(det, [(4000, reading(38000))]), "weighing")) == 1


def test_weighing_gap_on_an_empty_deck_long_enough_for_a_crossing_is_flagged_once():
    det = WeighingDetector(stable_ms=1000, min_crossing_ms=4000)
    empty = [(0, reading(0, zero=True, plate="")), (3000, reading(0, zero=True, plate="")),
             (6900, reading(0, zero=True, plate="")), (7000, reading(0, zero=True, plate=""))]
    events = run(det, empty)  # 3,000 ms and 3,900 ms: too short for a whole crossing
    assert events == []
    events = run(det, [(12000, reading(0, zero=True, plate="")),
                       (12100, reading(0, zero=True, plate=""))])
    assert [(a["alarm"], a["state"], a["detail"]) for a in kinds(events, "alarm")] == [
        ("possible_unweighed_crossing", "raised",
         {"gap_ms": 5000, "from_ts": 7000})]
    assert kinds(events, "weighing") == []
