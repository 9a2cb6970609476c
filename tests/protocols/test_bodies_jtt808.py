"""The positions body's optional JT/T 808 fields (alarm_bits, status_bits); pytest and
MicroPython."""

from protocols import bodies

FIXES = [[1764549015000, 38912345, 121612345, 452, 271, 9, 0],
         [1764549020000, 38912400, 121612400, 455, 270, 9, 0]]


def _body(**extra):
    body = {"fixes": FIXES, "ign": True, "ext_power": True, "tamper": False, "src": "jtt808"}
    body.update(extra)
    return body


def test_positions_alarm_and_status_bits_one_per_fix_are_accepted():
    assert bodies.check("evt", "positions", _body(alarm_bits=[0, 256],
                                                  status_bits=[3, 0xFFFFFFFF])) is None


def test_positions_bits_of_wrong_length_or_range_are_refused():
    assert "alarm_bits" in bodies.check("evt", "positions", _body(alarm_bits=[0]))
    assert "status_bits" in bodies.check("evt", "positions", _body(status_bits=[3, -1]))
    assert "status_bits" in bodies.check("evt", "positions", _body(status_bits=[3, 2**32]))
    assert "alarm_bits" in bodies.check("evt", "positions", _body(alarm_bits="3,3"))
    assert "alarm_bits" in bodies.check("evt", "positions", _body(alarm_bits=[1.0, 2]))
