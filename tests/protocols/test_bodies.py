"""protocols.bodies: the shape checks of message bodies; pytest and MicroPython."""

from protocols import bodies

T0 = 1764072000000
REFUSED = {"count": 3, "kinds": {"weighing": 2, "alarm": 1}, "since_ts": T0 - 60000,
           "until_ts": T0 - 1000, "reason": "outbox_full"}


def _with(**changes):
    body = dict(REFUSED)
    for k in changes:
        if changes[k] is None:
            del body[k]
        else:
            body[k] = changes[k]
    return body


def test_bodies_refused_notice_is_a_custody_event_kind():
    assert "refused" in bodies.KINDS["evt"]
    assert bodies.check("evt", "refused", REFUSED) is None
    assert bodies.check("evt", "refused", _with(reason="write_error")) is None
    one = {"count": 1, "kinds": {"weighing": 1}, "since_ts": T0, "until_ts": T0,
           "reason": "outbox_full"}
    assert bodies.check("evt", "refused", one) is None  # one refusal: the same instant
    assert "not allowed on tele" in bodies.check("tele", "refused", REFUSED)


def test_bodies_refused_notice_shape_errors_are_named():
    cases = [
        (_with(count=0), "count must be >= 1"),
        (_with(count="3"), "count must be an integer"),
        (_with(count=None), "count must be an integer"),
        (_with(count=4), "count must be the sum of kinds"),
        (_with(since_ts=-1), "since_ts must be >= 0"),
        (_with(until_ts=None), "until_ts must be an integer"),
        (_with(until_ts=T0 - 70000), "until_ts must not be before since_ts"),
        (_with(kinds={}), "kinds must be an object of kind -> count"),
        (_with(kinds=[["weighing", 3]]), "kinds must be an object of kind -> count"),
        (_with(kinds={"weighing": 3, "alarm": 0}), "kinds: alarm must be >= 1"),
        (_with(kinds={"weighing": 2.0, "alarm": 1}), "kinds: weighing must be an integer"),
        (_with(kinds={"": 3}), "kinds must be named by strings of 1-32 characters"),
        (_with(reason="disk_on_fire"), "reason must be 'outbox_full' or 'write_error'"),
        (_with(reason=None), "reason must be 'outbox_full' or 'write_error'"),
    ]
    for body, want in cases:
        assert bodies.check("evt", "refused", body) == want, (body, want)


def test_bodies_known_kinds_still_checked():
    assert bodies.check("evt", "gap", {"reason": "unreadable"}) is None
    assert bodies.check("evt", "gap", {}) == "reason must be a string of 1-48 characters"
    assert bodies.check("tele", "health", {"fw": "0.1.0", "backlog_peak": 3,
                                           "offline_ms_max": 4000}) is None
    assert "no device messages" in bodies.check("nope", "x", {})
