"""Truck weighing detector: a pure state machine over decoded indicator readings.

One weighing is emitted per vehicle visit, when the deck is occupied, every
position sensor is clear, the indicator reports stable (no motion, no overload)
and the gross weight has stayed within one division for ``stable_ms``. Readings
with motion, overload, setup / remote calibration or a blocked position sensor
are never weighed: they raise alarms instead. Time is the reading's own
timestamp (device ms), so the detector is tested with scripted timelines.

Alarms (``raised`` / ``cleared`` unless noted):
  setup_mode, remote_calibration  indicator not in weighing mode: readings untrusted
  overload                        gross beyond capacity
  motion_timeout                  motion on an occupied deck for ``motion_alarm_ms``
  vehicle_off_deck                a position sensor blocked while stable for ``stable_ms``
  zero_drift                      empty deck, stable, but the indicator is off its zero
  left_unweighed (one-shot)       a vehicle left without a stable weighing
  weight_changed (one-shot)       gross moved by more than 5 divisions after the weighing
"""

EMPTY = "empty"
OCCUPIED = "occupied"
WEIGHED = "weighed"

_STATUS_ALARMS = (("setup", "setup_mode"), ("remote_cal", "remote_calibration"),
                  ("overload", "overload"))


def round_to_division(value, division):
    """Round a weight in kg to the nearest multiple of the division ``e``."""
    if value < 0:
        return -round_to_division(-value, division)
    return int((value + division / 2) // division) * division


class WeighingDetector:
    """Feed ``update(t_ms, reading)``; it returns a list of (kind, body) events."""

    def __init__(self, division_kg=20, min_weight_kg=500, stable_ms=3000,
                 motion_alarm_ms=60000, model=""):
        self.division = division_kg
        self.min_weight = min_weight_kg
        self.stable_ms = stable_ms
        self.motion_alarm_ms = motion_alarm_ms
        self.model = model
        self.state = EMPTY
        self.arrived = 0
        self.stable_since = None
        self.stable_gross = 0
        self.weighed_gross = 0
        self.plate = ""
        self.motion_since = None
        self.blocked_since = None
        self.zero_off_since = None
        self.active = {}  # alarm code -> True while raised

    def _alarm(self, events, code, raised, detail=None):
        if raised == bool(self.active.get(code)):
            return
        self.active[code] = raised
        body = {"alarm": code, "state": "raised" if raised else "cleared"}
        if detail:
            body["detail"] = detail
        events.append(("alarm", body))

    def _once(self, events, code, detail):
        events.append(("alarm", {"alarm": code, "state": "raised", "detail": detail}))

    def update(self, t, r):
        """Advance with one reading taken at device time ``t`` (ms); return new events."""
        events = []
        status = r.get("status", {})
        position = r.get("position", {})
        gross = round_to_division(r.get("gross_kg", 0), self.division)
        for bit, code in _STATUS_ALARMS:
            self._alarm(events, code, bool(status.get(bit)), {"gross_kg": gross} if bit ==
                        "overload" else None)
        untrusted = status.get("setup") or status.get("remote_cal") or status.get("overload")
        present = gross >= self.min_weight
        if self.state == EMPTY:
            self._empty(events, t, status, gross, present, r)
        elif not present:
            self._left(events, t)
        else:
            if r.get("plate"):
                self.plate = r["plate"]
            if self.state == OCCUPIED:
                self._occupied(events, t, r, status, position, gross, untrusted)
            elif self._settled(status, position) and abs(gross - self.weighed_gross) > \
                    5 * self.division:
                self._once(events, "weight_changed", {"weighed_kg": self.weighed_gross,
                                                      "now_kg": gross, "plate": self.plate})
                self.weighed_gross = gross
        return events

    def _settled(self, status, position):
        """Stable, no motion, every position sensor clear: a reading worth comparing."""
        if not status.get("stable") or status.get("motion"):
            return False
        return not any(position.values())

    def _empty(self, events, t, status, gross, present, r):
        off_zero = status.get("stable") and not status.get("zero") and not present and gross != 0
        if off_zero:
            if self.zero_off_since is None:
                self.zero_off_since = t
            if t - self.zero_off_since >= self.stable_ms:
                self._alarm(events, "zero_drift", True, {"gross_kg": gross})
        else:
            self.zero_off_since = None
            self._alarm(events, "zero_drift", False)
        if present:
            self.state = OCCUPIED
            self.arrived = t
            self.plate = r.get("plate") or ""
            self.stable_since = None
            self.motion_since = None
            self.blocked_since = None

    def _left(self, events, t):
        if self.state == OCCUPIED:
            self._once(events, "left_unweighed", {"plate": self.plate, "arrived_ts": self.arrived,
                                                  "left_ts": t})
        self._alarm(events, "motion_timeout", False)
        self._alarm(events, "vehicle_off_deck", False)
        self.state = EMPTY
        self.stable_since = None

    def _occupied(self, events, t, r, status, position, gross, untrusted):
        moving = status.get("motion") or not status.get("stable")
        blocked = any(position.values())
        self._track_motion(events, t, moving)
        self._track_blocked(events, t, blocked and not moving, position)
        if moving or blocked or untrusted:
            self.stable_since = None
            return
        if self.stable_since is None or abs(gross - self.stable_gross) > self.division:
            self.stable_since = t
            self.stable_gross = gross
            return
        if t - self.stable_since < self.stable_ms:
            return
        self.state = WEIGHED
        self.weighed_gross = gross
        d = self.division
        events.append(("weighing", {
            "plate": self.plate,
            "gross_kg": gross,
            "tare_kg": round_to_division(r.get("tare_kg", 0), d),
            "net_kg": round_to_division(r.get("net_kg", 0), d),
            "division_kg": d,
            "stable_ms": t - self.stable_since,
            "arrived_ts": self.arrived,
            "model": self.model,
        }))

    def _track_motion(self, events, t, moving):
        if not moving:
            self.motion_since = None
            self._alarm(events, "motion_timeout", False)
            return
        if self.motion_since is None:
            self.motion_since = t
        if t - self.motion_since >= self.motion_alarm_ms:
            self._alarm(events, "motion_timeout", True, {"since_ts": self.motion_since})

    def _track_blocked(self, events, t, blocked, position):
        if not blocked:
            self.blocked_since = None
            self._alarm(events, "vehicle_off_deck", False)
            return
        if self.blocked_since is None:
            self.blocked_since = t
        if t - self.blocked_since >= self.stable_ms:
            names = [k for k in position if position[k]]
            self._alarm(events, "vehicle_off_deck", True, {"blocked": names, "plate": self.plate})
