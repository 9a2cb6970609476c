"""Weighing detector tests with scripted timelines; run under pytest and MicroPython."""

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
