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
  possible_unweighed_crossing     (one-shot) the deck was empty before and after a
                                  reading gap long enough for a whole crossing

A *settled* reading is stable, without motion, trusted and with every position
sensor clear: the vehicle is wholly on the deck and at rest. Only settled
readings are weighed or compared.

Weight curve. Each weighing carries ``curve``, a summary of the readings from the
vehicle's arrival to the weighing, kept as running integers (no list of
samples: heap), sent as ``[samples, settle_ms, max_step_kg, reversals,
restarts]``: readings; arrival to the start of the stable run that was
weighed; the largest change between two consecutive readings the indicator
called stable and motionless; changes of direction between such readings;
stable runs broken by a weight change while the indicator still said stable.
A load at rest moves by at most a division or two between readings; a step of
many divisions while "stable" is what a resistor switched into the load cell
cable by remote control looks like (the controller's
``weight_curve_interference``). The body's optional ``blocked`` (position
sensors blocked at the weighed reading) is never sent by this detector: a
blocked sensor stops the weighing, so a weighing with a curve was weighed
with every sensor clear.

Same vehicle. Two settled readings belong to the same vehicle when both carry a
plate and the plates are equal; when either has none, when their gross differ by
at most ``max(5 e, 0.5 %)`` of the vehicle's reference gross (the weighed gross,
else the gross of its last settled run). Why this bound: a load at rest reads
within the in-service error of a class III scale (at most 3 e, OIML R76) and
changes by a person getting in or out (80-100 kg, about 5 e at e = 20 kg); the
0.5 % covers heavy loads (water running off, liquid settling) and is the
controller's tolerance for a possible second ticket, so both ends call the
same pair of readings one vehicle. Plates decide over weights: the reader reads
one plate per vehicle at the entry and holds it while it is on the deck.

Change of vehicle without an empty deck. When the agent is stalled (a frozen
process, a long GC, an unreachable indicator) while one vehicle leaves and the
next drives on, the deck is never seen empty. The detector therefore compares
each settled reading with the current vehicle, but only after *movement
evidence* since the last settled reading: a position sensor was blocked, or
readings were missed (a gap). A vehicle cannot leave or arrive without crossing
a deck edge, so without that evidence a different gross is the same vehicle's
load changing (``weight_changed`` after the weighing, a restarted stable timer
before it); with it, a different plate or a gross beyond the bound above is a
new vehicle. The new visit starts at that reading (``arrived_ts`` = its time)
and is weighed normally; the old one just ends if weighed, else raises
``left_unweighed`` (``left_ts`` = the same time).

Reading gaps. Two readings more than ``gap_ms`` apart are a gap (the driver
keeps calling ``update`` as readings come; nothing else to call). Stability is
not assumed across it (the stable timer restarts) and it counts as movement
evidence. What the detector can then say:
  occupied before, empty after  the vehicle left: ``left_unweighed`` if it was
                                not weighed, nothing if it was
  empty before, occupied after  it arrived unseen: a visit from the first reading,
                                weighed normally
  occupied before and after     compared as above: same or new vehicle
  empty before and after        ``possible_unweighed_crossing`` once, detail
                                {gap_ms, from_ts: the last reading before it}, when
                                the gap is at least ``min_crossing_ms`` (a whole
                                vehicle could have driven on and off unseen)
Limits: a gap is inferred from device time, so a clock step forward looks like
one; a whole crossing hidden in a gap that also hides an arrival or a
departure is not flagged; two vehicles without plates whose gross differ by
less than the bound and swap unseen are taken for one (the second is not
weighed, or the first leaves without ``left_unweighed``).

Reboots. ``snapshot()`` is a small JSON-able dict of the visit on the deck;
``version`` grows whenever it would change, so the driver writes it to flash
only then. ``restore(snapshot)`` at boot, before the first reading, continues
that visit with movement evidence set: the same vehicle is not weighed again
and does not raise ``left_unweighed`` when it leaves; a different vehicle ends
it and is weighed with its own ``arrived_ts``; an empty deck ends it
(``left_unweighed`` if it was not weighed). A visit counts as weighed in the
snapshot only once the driver has called ``weighed(seq, arrived_ts)`` for the
weighing it stored: a power cut before that weighs the vehicle again under the
same ``arrived_ts`` (the controller's second-ticket check) rather than losing
it. The detector cannot bound the outage of a reboot, so an empty deck before
and after one raises nothing (the controller sees the reboot). Raised lasting
alarms are not kept across a reboot.
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
                 motion_alarm_ms=60000, model="", gap_ms=2000, min_crossing_ms=4000):
        self.division = division_kg
        self.min_weight = min_weight_kg
        self.stable_ms = stable_ms
        self.motion_alarm_ms = motion_alarm_ms
        self.model = model
        self.gap_ms = gap_ms
        self.min_crossing_ms = min_crossing_ms
        self.state = EMPTY
        self.arrived = 0
        self.stable_since = None
        self.stable_gross = 0
        self.weighed_gross = 0
        self.plate = ""
        self.seq = 0  # outbox seq of this visit's weighing, once the driver says so
        self.moved = False  # a sensor blocked or a gap since the last settled reading
        self.last = None  # time of the last reading
        self.version = 0  # grows whenever snapshot() would change
        self.motion_since = None
        self.blocked_since = None
        self.zero_off_since = None
        self.active = {}  # alarm code -> True while raised
        self._curve_reset()

    def snapshot(self):
        """What a reboot must know of the visit on the deck, as a JSON-able dict."""
        if self.state == EMPTY:
            return {"phase": EMPTY}
        done = self.state == WEIGHED and self.seq
        return {"phase": WEIGHED if done else OCCUPIED, "plate": self.plate,
                "arrived_ts": self.arrived, "gross_kg": self.weighed_gross, "seq": self.seq}

    def restore(self, snap):
        """Continue the visit of a ``snapshot()``, at boot before the first reading.

        Returns True when a visit was restored; False for an empty deck or a
        snapshot it cannot read (then the detector starts empty)."""
        version = self.version
        try:
            phase = snap.get("phase")
            if phase in (OCCUPIED, WEIGHED):
                self._arrive(int(snap["arrived_ts"]), str(snap.get("plate") or ""))
                self.weighed_gross = self.stable_gross = int(snap.get("gross_kg") or 0)
                self.seq = int(snap.get("seq") or 0)
                self.state = phase
                self.moved = True
        except (AttributeError, KeyError, TypeError, ValueError):
            self.state = EMPTY
        self.version = version
        return self.state != EMPTY

    def weighed(self, seq, arrived_ts):
        """The driver stored this visit's weighing under ``seq``: a reboot will not weigh
        it again. Ignored if that visit is no longer the one on the deck."""
        if self.state == WEIGHED and arrived_ts == self.arrived and seq != self.seq:
            self.seq = seq
            self.version += 1

    def _curve_reset(self):
        # the weight curve of the visit: running values only (module docstring)
        self.c_n = 0
        self.c_step = 0
        self.c_rev = 0
        self.c_dir = 0
        self.c_prev = None
        self.c_restarts = 0

    def _alarm(self, events, code, raised, detail=None):
        if raised == bool(self.active.get(code)):
            return
        self.active[code] = raised
        body = {"alarm": code, "state": "raised" if raised else "cleared"}
        if detail:
            body["detail"] = detail
        events.append(("alarm", body))

    def update(self, t, r):
        """Advance with one reading taken at device time ``t`` (ms); return new events.

        One method for the whole step (a reading's alarms, gaps, the change of vehicle and
        the stable timer) rather than one per concern: on the device every function costs
        heap (edge/FAILURES.md, Heap)."""
        events = []
        status = r.get("status", {})
        position = r.get("position", {})
        gross = round_to_division(r.get("gross_kg", 0), self.division)
        for bit, code in _STATUS_ALARMS:
            self._alarm(events, code, bool(status.get(bit)), {"gross_kg": gross} if bit ==
                        "overload" else None)
        untrusted = status.get("setup") or status.get("remote_cal") or status.get("overload")
        present = gross >= self.min_weight
        last, self.last = self.last, t
        if last is not None and t - last > self.gap_ms:
            self.stable_since = None
            self.moved = True
            if self.state == EMPTY and not present and t - last >= self.min_crossing_ms:
                events.append(("alarm", {"alarm": "possible_unweighed_crossing",
                                         "state": "raised",
                                         "detail": {"gap_ms": t - last, "from_ts": last}}))
        blocked = any(position.values())
        if blocked:
            self.moved = True
        plate = r.get("plate") or ""
        # settled: the vehicle wholly on the deck and at rest, a reading worth comparing
        settled = status.get("stable") and not (status.get("motion") or blocked or untrusted)
        if self.state == EMPTY:
            # stable, empty, but off its zero for stable_ms: zero_drift
            if status.get("stable") and not status.get("zero") and not present and gross != 0:
                if self.zero_off_since is None:
                    self.zero_off_since = t
                if t - self.zero_off_since >= self.stable_ms:
                    self._alarm(events, "zero_drift", True, {"gross_kg": gross})
            else:
                self.zero_off_since = None
                self._alarm(events, "zero_drift", False)
            if present:
                self._arrive(t, plate)
                self.c_n = 1  # the arrival reading is the curve's first
            return events
        if not present:
            self._left(events, t)
            return events
        if settled and self.moved:
            self.moved = False
            # the vehicle of this visit? (module docstring: Same vehicle)
            if plate and self.plate:
                same = plate == self.plate
            else:
                ref = self.weighed_gross if self.state == WEIGHED else self.stable_gross
                same = not ref or abs(gross - ref) <= max(5 * self.division, ref // 200)
            if not same:
                self._left(events, t)
                self._arrive(t, plate)
        if plate and not self.plate and not self.moved:  # read late, not a newcomer's
            self.plate = plate
            self.version += 1
        if self.state == WEIGHED:
            if settled and abs(gross - self.weighed_gross) > 5 * self.division:
                events.append(("alarm", {"alarm": "weight_changed", "state": "raised",
                                         "detail": {"weighed_kg": self.weighed_gross,
                                                    "now_kg": gross, "plate": self.plate}}))
                self.weighed_gross = gross
                self.version += 1
            return events
        # occupied, not weighed yet: the curve, motion and blocked sensors, then the timer
        moving = status.get("motion") or not status.get("stable")
        self.c_n += 1
        if moving or untrusted:
            self.c_prev = None
        else:
            if self.c_prev is not None and gross != self.c_prev:
                d = gross - self.c_prev
                if abs(d) > self.c_step:
                    self.c_step = abs(d)
                sign = 1 if d > 0 else -1
                if self.c_dir and sign != self.c_dir:
                    self.c_rev += 1
                self.c_dir = sign
            self.c_prev = gross
        if moving:
            if self.motion_since is None:
                self.motion_since = t
            if t - self.motion_since >= self.motion_alarm_ms:
                self._alarm(events, "motion_timeout", True, {"since_ts": self.motion_since})
        else:
            self.motion_since = None
            self._alarm(events, "motion_timeout", False)
        if blocked and not moving:  # at rest with a sensor blocked: not wholly on the deck
            if self.blocked_since is None:
                self.blocked_since = t
            if t - self.blocked_since >= self.stable_ms:
                names = []
                for k in position:
                    if position[k]:
                        names.append(k)
                self._alarm(events, "vehicle_off_deck", True,
                            {"blocked": names, "plate": self.plate})
        else:
            self.blocked_since = None
            self._alarm(events, "vehicle_off_deck", False)
        if moving or blocked or untrusted:
            self.stable_since = None
        elif self.stable_since is None or abs(gross - self.stable_gross) > self.division:
            if self.stable_since is not None:
                self.c_restarts += 1  # the weight moved while the indicator said stable
            self.stable_since = t
            self.stable_gross = gross
        elif t - self.stable_since >= self.stable_ms:
            self.state = WEIGHED
            self.weighed_gross = gross
            self.version += 1
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
                # [samples, settle_ms, max_step_kg, reversals, restarts]: an array, not an
                # object, to keep every outbox record ~70 B shorter (protocols/bodies.py)
                "curve": [self.c_n, self.stable_since - self.arrived, self.c_step,
                          self.c_rev, self.c_restarts],
            }))
        return events

    def _arrive(self, t, plate):
        self.state = OCCUPIED
        self.arrived = t
        self.plate = plate
        self.stable_since = None
        self.stable_gross = 0
        self.weighed_gross = 0
        self.seq = 0
        self.moved = False
        self.motion_since = None
        self.blocked_since = None
        self._curve_reset()
        self.version += 1

    def _left(self, events, t):
        if self.state == OCCUPIED:
            events.append(("alarm", {"alarm": "left_unweighed", "state": "raised", "detail": {
                "plate": self.plate, "arrived_ts": self.arrived, "left_ts": t}}))
        self._alarm(events, "motion_timeout", False)
        self._alarm(events, "vehicle_off_deck", False)
        self.state = EMPTY
        self.stable_since = None
        self.version += 1
