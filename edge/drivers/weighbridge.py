"""Weighbridge driver: poll the weighing indicator over Modbus TCP, feed the detector,
store each weighing, and open the exit barrier only once it is stored.

Reads: one block per poll (function 3 or 4, as the register map says). A Modbus
exception, a timeout or an undecodable block is counted by kind and the poll is
skipped: no reading is ever guessed. A reply that completes later than ``timeout_ms``
after its request (the agent itself stalled mid-exchange) is dropped and counted
(``late_readings``): its sampling time is unknown, and the detector must see the stall
as a gap between readings. ``unreachable_after`` consecutive failures raise
``indicator_unreachable`` (cleared by the next good read); a heartbeat register that
stops changing for ``frozen_after_ms`` raises ``indicator_frozen``. It never writes
zero, tare or calibration registers.

The barrier (the map's ``barrier`` coil, function 05; a map without one: no barrier is
driven) fails closed. It is open only while the vehicle on the deck has its weighing in
the outbox: ``emit`` returned its seq, then the detector's state was written to flash.
It closes when the deck empties or another vehicle is recognised, and is written at the
first good read after boot. A weighing the outbox refuses (``emit`` returned None or 0)
is not kept in RAM: the barrier stays closed for that vehicle until it leaves (a reboot
does not change that), the alarm ``weighing_not_stored`` is raised for it (detail: plate,
gross, arrived_ts; it may be refused too: the agent counts refusals on flash and reports
them) and cleared with the next weighing stored, and the detector's later weighing of the
same visit is not offered again. A failed coil write is counted
(``barrier_errors``) and tried again at the next good read.

``barrier: "controller"`` in the driver config (an out-gate): the barrier opens only on the
controller's ``open`` command for the weighing on the deck (PROTOCOL.md, Commands), on
top of the rule above. edge/commands.py ``barrier`` takes the command (checked for its
signature, expiry and shape) and answers ``refused`` when ``weighing_seq`` is not the
weighing of the vehicle on the deck, so a command for one truck never opens for the next.
``open`` is answered ``done`` once the coil was written open (edge/commands.py ``answer``),
``failed`` if the vehicle left first; ``deny`` keeps it shut and is answered at once (no
shipped register map has a display to show the reason on). Nothing of a command is kept
across a reboot: the controller sends it again until it is answered. ``"local"`` (the
default): the barrier opens on its own once the weighing is stored (an in-gate).

The detector's state (``snapshot()``: the visit on the deck, whether its weighing is
stored) is written to ``<data_dir>/deck`` whenever its ``version`` moves, and restored
in the constructor, before the first reading: a power cut with a weighed vehicle on the
deck does not weigh it again nor raise ``left_unweighed`` when it leaves. File: JSON
``{"deck": snapshot, "refused": arrived_ts of a refused visit or 0}``, written to
``deck.tmp``, closed, renamed over (edge/persist.py); unreadable: the deck starts empty.
"""

import json

from edge.drivers.weighing import WEIGHED, WeighingDetector
from edge.net.modbus import ModbusError, ModbusException, ModbusTCPMaster, ModbusTimeout
from edge.persist import replace
from protocols import regdecode

DEFAULTS = {"unit": 1, "poll_ms": 200, "timeout_ms": 1000, "stable_s": 3, "min_weight_kg": 500,
            "motion_alarm_s": 60, "unreachable_after": 3, "frozen_after_ms": 5000}


class WeighbridgeDriver:
    """``emit(kind, body)`` stores one custody event and returns its seq, or None (0) when
    it was refused (the agent's ``emit``); ``hal`` gives the clocks and ``sleep_ms``;
    ``data_dir`` holds the deck state (None: not kept across reboots)."""

    def __init__(self, dcfg, emit, hal, data_dir=None):
        for key in DEFAULTS:
            dcfg.setdefault(key, DEFAULTS[key])
        self.cfg = dcfg
        # an out-gate (barrier "controller"): [the weighing seq the controller cleared (0:
        # none), that open command's id until answered, the uplink] (edge/commands.py);
        # None: a local barrier. One attribute: each one more costs heap
        self.gate = [0, None, None] if dcfg.get("barrier") == "controller" else None
        self.emit = emit
        self.hal = hal
        m = regdecode.load(regdecode.path_of(dcfg["map"]))
        self.read_fn = 4 if m.get("function") == 4 else 3
        self.coil = m.get("coils", {}).get("barrier", {}).get("addr")
        # kept in RAM for decoding: start, count and the fields without their descriptions,
        # units and encodings, which decode never reads (the image already strips the
        # descriptions; the rest: about 0.5 KB of heap)
        fields = m["fields"]
        for name in fields:
            for key in ("description", "unit", "encoding"):
                fields[name].pop(key, None)
        self.map = {"start": m["start"], "count": m["count"], "fields": fields}
        self.master = ModbusTCPMaster(dcfg["host"], dcfg["port"], unit=dcfg["unit"],
                                      timeout_ms=dcfg["timeout_ms"])
        self.detector = WeighingDetector(
            division_kg=dcfg.get("division_kg", m.get("division_kg", 20)),
            min_weight_kg=dcfg["min_weight_kg"], stable_ms=int(dcfg["stable_s"] * 1000),
            motion_alarm_ms=int(dcfg["motion_alarm_s"] * 1000), model=m.get("model", ""))
        self.failures = 0
        self.last_exception = 0
        self.unreachable = False
        self.heartbeat = None
        self.heartbeat_at = 0
        self.frozen = False
        self.barrier = None  # as last written: True open, False closed, None not known
        self.refused = 0  # arrived_ts of the visit whose weighing the outbox refused
        # named as health reports them; keyword arguments, so the names are shared qstrs
        self.counts = dict(modbus_ok=0, modbus_timeouts=0, modbus_exceptions=0,
                           modbus_link_errors=0, decode_errors=0, late_readings=0,
                           barrier_errors=0, deck_state_errors=0)
        self.path = path = data_dir and data_dir + "/deck"
        for name in (path, path + ".tmp") if path else ():  # .tmp: a cut in a FAT replace
            try:
                with open(name) as f:
                    state = json.load(f)
                self.detector.restore(state["deck"])
                self.refused = state.get("refused") or 0
                break
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
        self.saved = (self.detector.version, self.refused)
        self.not_stored = self.refused != 0  # the alarm may be raised: clear it when we can

    def add_health(self, body):
        """Add this driver's figures to a flat health body."""
        body.update(self.counts)
        body["indicator_unreachable"] = self.unreachable
        body["deck"] = self.detector.state
        body["barrier"] = self.barrier

    def _fail(self, what):
        self.counts[what] += 1
        self.failures += 1
        if self.failures >= self.cfg["unreachable_after"] and not self.unreachable:
            self.unreachable = True
            self.emit("alarm", {"alarm": "indicator_unreachable", "state": "raised",
                                "detail": {"failures": self.failures, "last": what}})

    def _ok(self, now, reading):
        self.counts["modbus_ok"] += 1
        self.failures = 0
        if self.unreachable:
            self.unreachable = False
            self.emit("alarm", {"alarm": "indicator_unreachable", "state": "cleared"})
        # the indicator's heartbeat (inline: every method costs ~90 B of heap on the device)
        beat = reading.get("heartbeat")
        if beat is None:
            pass
        elif beat != self.heartbeat:
            self.heartbeat, self.heartbeat_at = beat, now
            if self.frozen:
                self.frozen = False
                self.emit("alarm", {"alarm": "indicator_frozen", "state": "cleared"})
        elif not self.frozen and now - self.heartbeat_at > self.cfg["frozen_after_ms"]:
            self.frozen = True
            self.emit("alarm", {"alarm": "indicator_frozen", "state": "raised",
                                "detail": {"heartbeat": beat}})
        for kind, body in self.detector.update(now, reading):
            if kind != "weighing":
                self.emit(kind, body)
                continue
            # the detector hears of a weighing only once stored: then the barrier may open
            arrived = body["arrived_ts"]
            if arrived == self.refused:
                continue  # refused before a reboot: this visit stays refused
            seq = self.emit(kind, body)
            if seq:
                self.detector.weighed(seq, arrived)
                if self.not_stored and self.emit("alarm", {"alarm": "weighing_not_stored",
                                                           "state": "cleared"}):
                    self.not_stored = False
                continue
            self.refused = arrived
            self.not_stored = True
            self.emit("alarm", {"alarm": "weighing_not_stored", "state": "raised", "detail": {
                "plate": body["plate"], "gross_kg": body["gross_kg"], "arrived_ts": arrived}})
        self._save()

    def _save(self):
        """Write the deck state when it changed (tmp, close, rename). A failure is counted
        and retried at the next poll; until then the barrier stays as it was (it opens only
        on a state that is on flash: a reboot would otherwise weigh the vehicle again)."""
        now = (self.detector.version, self.refused)
        if now == self.saved:
            return
        if self.path:
            try:
                with open(self.path + ".tmp", "w") as f:
                    json.dump({"deck": self.detector.snapshot(), "refused": self.refused}, f)
                replace(self.path + ".tmp", self.path)
            except OSError:
                self.counts["deck_state_errors"] += 1
                return
        self.saved = now

    async def poll_once(self):
        """One poll: read, decode, detect, drive the barrier; every failure is counted,
        none raises."""
        hal = self.hal
        sent = hal.ticks_ms()
        m = self.master
        start, count = self.map["start"], self.map["count"]
        try:
            if self.read_fn == 4:
                regs = await m.read_input(start, count)
            else:
                regs = await m.read_holding(start, count)
        except ModbusException as exc:
            self.last_exception = getattr(exc, "code", 0)
            self._fail("modbus_exceptions")
            return
        except ModbusTimeout:
            self._fail("modbus_timeouts")
            return
        except (ModbusError, OSError):
            self._fail("modbus_link_errors")
            return
        try:
            reading = regdecode.decode(self.map, regs)
            if reading.get("gross_kg") is None:
                raise ValueError("gross is not a number")
        except ValueError:
            self._fail("decode_errors")
            return
        if hal.ticks_diff(hal.ticks_ms(), sent) > self.cfg["timeout_ms"]:
            # past the master's own deadline: the agent itself stalled (frozen, a long GC)
            # mid-exchange, so when the indicator sampled this is unknown. Stamped now it
            # would hide the stall from the detector (a reading gap is its evidence that
            # vehicles may have changed unseen); the next poll's reading shows the gap.
            self.counts["late_readings"] += 1
            return
        self._ok(hal.now_ms(), reading)
        # the barrier: open only on a weighing stored and a deck state on flash
        d = self.detector
        want = bool(d.state == WEIGHED and d.seq and self.saved[0] == d.version)
        g = self.gate
        if g:  # an out-gate: only for the weighing the controller cleared
            want = want and g[0] == d.seq
        if self.coil is None:
            return
        if want != self.barrier:
            try:
                await m.write_coil(self.coil, want)
            except (ModbusError, OSError):
                self.counts["barrier_errors"] += 1
                self.barrier = None  # not known: written again at the next good read
                return
            self.barrier = want
        if g and g[1] and (want or d.state != WEIGHED or d.seq != g[0]):
            # an open command: answered once open, or once its vehicle left
            from edge.commands import answer

            answer(g, want)

    async def run(self):
        hal = self.hal
        period = self.cfg["poll_ms"]
        while True:
            started = hal.ticks_ms()
            await self.poll_once()
            spent = hal.ticks_diff(hal.ticks_ms(), started)
            await hal.sleep_ms(max(10, period - spent))
