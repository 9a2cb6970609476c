"""Weighbridge driver: poll the weighing indicator over Modbus TCP, feed the detector.

The agent only reads (function 3 or 4, one block per poll as the register map
says); it never writes the zero, tare or calibration registers some indicators
expose. A Modbus exception, a timeout or an undecodable block is counted by kind
and the poll is skipped: no reading is ever guessed. ``unreachable_after``
consecutive failures raise ``indicator_unreachable`` (cleared by the next good
read); a heartbeat register that stops changing for ``frozen_after_ms`` raises
``indicator_frozen``.
"""


from edge.drivers.weighing import WeighingDetector
from edge.net.modbus import ModbusError, ModbusException, ModbusTCPMaster, ModbusTimeout
from protocols import regdecode

UNSTORED_MAX = 16

DEFAULTS = {"unit": 1, "poll_ms": 200, "timeout_ms": 1000, "stable_s": 3, "min_weight_kg": 500,
            "motion_alarm_s": 60, "unreachable_after": 3, "frozen_after_ms": 5000}


class WeighbridgeDriver:
    """``emit(kind, body)`` stores one custody event and returns its seq, or 0 when the
    outbox refused it (the agent's ``emit``); ``hal`` gives the clocks and ``sleep_ms``."""

    def __init__(self, dcfg, emit, hal):
        for key in DEFAULTS:
            dcfg.setdefault(key, DEFAULTS[key])
        self.cfg = dcfg
        self.emit = emit
        self.hal = hal
        self.map = regdecode.load(regdecode.path_of(dcfg["map"]))
        self.read_fn = 4 if self.map.get("function") == 4 else 3
        self.master = ModbusTCPMaster(dcfg["host"], dcfg["port"], unit=dcfg["unit"],
                                      timeout_ms=dcfg["timeout_ms"])
        self.detector = WeighingDetector(
            division_kg=dcfg.get("division_kg", self.map.get("division_kg", 20)),
            min_weight_kg=dcfg["min_weight_kg"], stable_ms=int(dcfg["stable_s"] * 1000),
            motion_alarm_ms=int(dcfg["motion_alarm_s"] * 1000), model=self.map.get("model", ""))
        self.failures = 0
        self.last_exception = 0
        self.unreachable = False
        self.heartbeat = None
        self.heartbeat_at = 0
        self.frozen = False
        self.counts = {"polls": 0, "ok": 0, "timeouts": 0, "exceptions": 0, "link_errors": 0,
                       "decode_errors": 0, "events_dropped": 0}
        self.unstored = []  # events the outbox refused, retried first (bounded: UNSTORED_MAX)

    def add_health(self, body):
        """Add this driver's figures to a flat health body."""
        c = self.counts
        body["modbus_ok"] = c["ok"]
        body["modbus_timeouts"] = c["timeouts"]
        body["modbus_exceptions"] = c["exceptions"]
        body["modbus_link_errors"] = c["link_errors"]
        body["decode_errors"] = c["decode_errors"]
        body["indicator_unreachable"] = self.unreachable
        body["deck"] = self.detector.state
        body["unstored"] = len(self.unstored)
        body["events_dropped"] = self.counts["events_dropped"]

    async def _read(self):
        start, count = self.map["start"], self.map["count"]
        if self.read_fn == 4:
            return await self.master.read_input(start, count)
        return await self.master.read_holding(start, count)

    def _flush(self):
        """Store the events the outbox refused before, oldest first; True when none is left."""
        queue = self.unstored
        while queue:
            if not self.emit(queue[0][0], queue[0][1]):
                return False
            queue.pop(0)
        return True

    def _emit(self, kind, body):
        """Store an event after any refused earlier; keep it in RAM if the outbox refuses."""
        if self._flush() and self.emit(kind, body):
            return
        if len(self.unstored) >= UNSTORED_MAX:
            self.unstored.pop(0)
            self.counts["events_dropped"] += 1
        self.unstored.append((kind, body))

    def _fail(self, what):
        self.counts[what] += 1
        self.failures += 1
        if self.failures >= self.cfg["unreachable_after"] and not self.unreachable:
            self.unreachable = True
            self._emit("alarm", {"alarm": "indicator_unreachable", "state": "raised",
                                      "detail": {"failures": self.failures, "last": what}})

    def _ok(self, now, reading):
        self.counts["ok"] += 1
        self.failures = 0
        if self.unreachable:
            self.unreachable = False
            self._emit("alarm", {"alarm": "indicator_unreachable", "state": "cleared"})
        self._watch_heartbeat(now, reading.get("heartbeat"))
        for kind, body in self.detector.update(now, reading):
            self._emit(kind, body)

    def _watch_heartbeat(self, now, beat):
        if beat is None:
            return
        if beat != self.heartbeat:
            self.heartbeat, self.heartbeat_at = beat, now
            if self.frozen:
                self.frozen = False
                self._emit("alarm", {"alarm": "indicator_frozen", "state": "cleared"})
        elif not self.frozen and now - self.heartbeat_at > self.cfg["frozen_after_ms"]:
            self.frozen = True
            self._emit("alarm", {"alarm": "indicator_frozen", "state": "raised",
                                      "detail": {"heartbeat": beat}})

    async def poll_once(self):
        """One poll: read, decode, detect; every failure is counted, none raises."""
        self.counts["polls"] += 1
        if self.unstored:
            self._flush()
        try:
            regs = await self._read()
        except ModbusException as exc:
            self.last_exception = getattr(exc, "code", 0)
            self._fail("exceptions")
            return
        except ModbusTimeout:
            self._fail("timeouts")
            return
        except (ModbusError, OSError):
            self._fail("link_errors")
            return
        try:
            reading = regdecode.decode(self.map, regs)
            if reading.get("gross_kg") is None:
                raise ValueError("gross is not a number")
        except ValueError:
            self._fail("decode_errors")
            return
        self._ok(self.hal.now_ms(), reading)

    async def run(self):
        hal = self.hal
        period = self.cfg["poll_ms"]
        while True:
            started = hal.ticks_ms()
            await self.poll_once()
            spent = hal.ticks_diff(hal.ticks_ms(), started)
            await hal.sleep_ms(max(10, period - spent))
