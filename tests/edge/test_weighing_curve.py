"""The weight curve summary a weighing carries (edge/drivers/weighing.py), from scripted
timelines; run under pytest and MicroPython."""

from edge.drivers.weighing import WeighingDetector

CLEAR = {"entry_blocked": False, "exit_blocked": False}
ENTRY = {"entry_blocked": True, "exit_blocked": False}


def reading(gross, stable=True, motion=False, position=None):
    return {"gross_kg": gross, "tare_kg": 15000, "net_kg": gross - 15000,
            "status": {"stable": stable, "motion": motion, "zero": False},
            "position": position or CLEAR, "plate": "辽B12345"}


def curve(w):
    names = ("samples", "settle_ms", "max_step_kg", "reversals", "restarts")
    assert len(w["curve"]) == len(names)
    return {names[i]: w["curve"][i] for i in range(len(names))}


def weigh(timeline, stable_ms=1000):
    det = WeighingDetector(division_kg=20, min_weight_kg=500, stable_ms=stable_ms)
    out = []
    for t, r in timeline:
        for kind, body in det.update(t, r):
            if kind == "weighing":
                out.append(body)
    return out


def drive_on(t=0):
    tl = [(t, reading(8000, False, True, ENTRY)), (t + 100, reading(30000, False, True, ENTRY)),
          (t + 200, reading(45300, False, True))]
    return tl, t + 300


def test_weighing_curve_of_an_honest_settle_has_small_steps_and_no_restart():
    tl, t = drive_on()
    for i, g in enumerate((45260, 45240, 45240, 45240, 45240, 45240, 45240, 45240, 45240,
                           45240, 45240, 45240, 45240, 45240)):
        tl.append((t + i * 100, reading(g)))
    [w] = weigh(tl)
    c = curve(w)
    assert (c["max_step_kg"], c["reversals"], c["restarts"]) == (20, 0, 0)
    assert c["samples"] == 3 + 11  # weighed at the 11th stable reading (1000 ms on)
    assert c["settle_ms"] == 300  # the stable run began at the first stable reading
    assert "blocked" not in w  # never weighed with a sensor blocked: not sent


def test_weighing_curve_records_a_step_while_stable_as_a_restart_and_its_size():
    """A resistor switched into the cable while the indicator says stable: 900 kg less."""
    tl, t = drive_on()
    for i in range(6):
        tl.append((t + i * 100, reading(45240)))
    t += 600
    for i in range(12):
        tl.append((t + i * 100, reading(44340)))
    [w] = weigh(tl)
    c = curve(w)
    assert w["gross_kg"] == 44340
    assert (c["max_step_kg"], c["restarts"], c["reversals"]) == (900, 1, 0)
    assert c["settle_ms"] == 900  # the weighed run started at the step


def test_weighing_curve_counts_reversals_of_a_weight_see_sawing_while_stable():
    tl, t = drive_on()
    g = 45240
    for i in range(8):  # up and down by 2 e, never more than 1 e from the run's start
        tl.append((t + i * 100, reading(g + (20 if i % 2 else 0))))
    t += 800
    for i in range(12):
        tl.append((t + i * 100, reading(g)))
    [w] = weigh(tl)
    c = curve(w)
    assert c["reversals"] == 7 and c["max_step_kg"] == 20 and c["restarts"] == 0


def test_weighing_curve_ignores_steps_across_motion_and_starts_afresh_per_visit():
    tl, t = drive_on()
    tl += [(t, reading(45240)), (t + 100, reading(46240, False, True)),
           (t + 200, reading(45240))]
    t += 300
    for i in range(12):
        tl.append((t + i * 100, reading(45240)))
    t += 1200
    tl += [(t, reading(20000, False, True, {"entry_blocked": False, "exit_blocked": True})),
           (t + 100, reading(0))]
    second, t2 = drive_on(t + 200)
    for i in range(12):
        second.append((t2 + i * 100, reading(45240)))
    first, again = weigh(tl + second)
    assert curve(first)["max_step_kg"] == 0 and curve(first)["restarts"] == 0
    assert curve(again)["samples"] == 3 + 11 and curve(again)["max_step_kg"] == 0
