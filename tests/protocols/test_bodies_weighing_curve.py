"""protocols.bodies: a weighing's optional curve summary and blocked sensors; old agents'
weighings without them still validate. pytest and MicroPython."""

from protocols import bodies

W = {"plate": "辽B12345", "gross_kg": 45240, "tare_kg": 15000, "net_kg": 30240,
     "division_kg": 20, "stable_ms": 3000, "arrived_ts": 1764072000000, "model": "sim"}
CURVE = [40, 2100, 20, 1, 0]  # samples, settle_ms, max_step_kg, reversals, restarts


def _w(**extra):
    body = dict(W)
    body.update(extra)
    return body


def test_bodies_weighing_without_curve_or_blocked_still_validates():
    assert bodies.check("evt", "weighing", W) is None


def test_bodies_weighing_with_curve_and_blocked_validates():
    assert bodies.check("evt", "weighing", _w(curve=CURVE, blocked=[])) is None
    assert bodies.check("evt", "weighing", _w(blocked=["entry_blocked"])) is None


def test_bodies_weighing_curve_and_blocked_shape_errors_are_named():
    cases = [
        (_w(curve=[1, 2]), "curve must be a list of 5 integers"),
        (_w(curve={"samples": 1}), "curve must be a list of 5 integers"),
        (_w(curve=[40, 2100, -20, 1, 0]), "curve holds integers >= 0 only"),
        (_w(curve=[40, 2100, 20.5, 1, 0]), "curve holds integers >= 0 only"),
        (_w(curve=[40, 2100, True, 1, 0]), "curve holds integers >= 0 only"),
        (_w(blocked="entry"), "blocked must be a list"),
        (_w(blocked=["a"] * 9), "blocked must be a list"),
        (_w(blocked=[""]), "blocked holds sensor names"),
        (_w(blocked=[3]), "blocked holds sensor names"),
    ]
    for body, want in cases:
        got = bodies.check("evt", "weighing", body)
        assert got is not None and want in got, (want, got)
