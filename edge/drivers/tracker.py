"""GPS tracker driver (device kind ``gps``): NMEA 0183 from the GNSS receiver's serial line,
fixes merged per epoch, thinned by fix time, and stored as ``positions`` batches.

Source (``source`` in the driver settings): ``tcp:<host>:<port>``, a byte stream of NMEA
lines that an emulator serves (the unix HAL; also usable on a board over Wi-Fi), or
``uart:<id>:<baud>:<tx>:<rx>``, the receiver's UART (the ESP32 HAL, ``machine.UART``: the
one part no test here can run). The line is read without blocking and looked at every
``POLL_MS``; a refused, reset or closed link is counted (``io_errors``) and opened again
after ``REOPEN_MS``: nothing is read then, nothing is made up.

Lines: ``protocols.nmea.LineSplitter`` cuts the stream, ``protocols.nmea.parse`` checks
each sentence (checksum first). Every line lands in exactly one count: ``nmea_ok``, or
``nmea_<reason>`` for each NMEAError reason (``nmea_unsupported`` is mostly GSV, GSA, VTG
a receiver sends anyway), ``no_fix`` for a sentence without a position; a line longer than
the splitter's buffer counts in ``nmea_too_long``. None stops the driver.

Fixes: the GGA and the RMC of one epoch (same UTC time of day) make one fix
``[ts_ms, lat_e6, lon_e6, speed_dkmh, course_deg, sats, hdop_x10]`` (protocols/bodies.py).
Its time is the RMC's own date and time, as epoch ms: device time from the sky, not the
board's clock. An epoch without an RMC has no date and no speed: it gives no fix (counted
in ``no_fix``). Sats and HDOP come from the GGA (0 without one). A fix not newer than the
last one (a receiver reset, a replayed stream) is dropped and counted (``fix_time_back``): a
batch is in time order.

Thinning and batching, all by fix time, never by the wall clock (so an emulator may feed an
accelerated stream): a fix is kept when ``moving_s`` (5) seconds passed since the last kept
one while the speed is over ``moving_kmh`` (5), else ``parked_s`` (60). Kept fixes gather in
a batch, stored as one ``positions`` event once it holds ``batch_fixes`` (10) or its first
fix is ``batch_max_s`` (60) old, or when the ignition changes (the batch so far goes with
the old state, the next fix is kept whatever its interval). The batch is a list of small
int lists, never parsed dicts (heap).

An event the outbox refuses (full, write error: the agent counts and reports refusals) is
not dropped: the batch stays in RAM, keeps growing, and is offered again once it has grown
by ``batch_fixes``; at ``MAX_FIXES`` (64) the oldest fix goes (``fixes_lost``). A broker
or controller outage costs nothing: the outbox holds the events and sends them in order.

Ignition, external power and case tamper: GPIO inputs on a board (``pins`` in the
settings: ``{"ign": n, "ext_power": n, "tamper": n}``, read with the ESP32 HAL's
``read_io`` once per second, 1 = on / present / open). On the unix HAL, and wherever an
emulator stands in for the wires, they come on the same stream as a proprietary sentence,
checksummed as NMEA::

    $PPWIO,<ign 0|1>,<ext_power 0|1>,<tamper 0|1>*hh

``ign`` rides in every positions body (with ``ext_power`` and ``tamper``, their state at
the last fix; all three absent until first known). Loss of external power and an opened
case become alarms, ``ext_power_lost`` and ``case_tamper``, raised and cleared; an alarm
the outbox refuses is offered again at the next reading. Which alarms are raised is kept
on flash (``<data_dir>/alarms``, a persist slot written after the event is stored): a
condition that ended while the tracker was off is cleared at the first reading after
boot, and one that lasts is not raised twice (a power cut between the event and the slot
repeats it: the controller keeps one open alert per code).
"""

import errno

from edge.persist import read_slot, write_slot
from protocols import nmea

POLL_MS = 20  # at 9600 baud a UART FIFO of 128 bytes fills in 130 ms
REOPEN_MS = 1000
IO_EVERY_MS = 1000  # GPIO inputs sampled once a second (board only)
MAX_FIXES = 64  # protocols/bodies.py MAX_FIXES (not imported: that module is not on the heap)
READ_BYTES = 128
DEFAULTS = {"moving_s": 5, "parked_s": 60, "batch_fixes": 10, "batch_max_s": 60,
            "moving_kmh": 5}


class TrackerDriver:
    """``emit(kind, body)`` stores one custody event and returns its seq, or None when it
    was refused (the agent's ``emit``); ``hal`` gives ``sleep_ms`` and the serial line."""

    def __init__(self, dcfg, emit, hal, data_dir=None):
        for key in DEFAULTS:
            dcfg.setdefault(key, DEFAULTS[key])
        self.emit = emit
        self.hal = hal
        self.source = dcfg.get("source", "")
        self.pins = dcfg.get("pins")
        self.moving_ms = int(dcfg["moving_s"] * 1000)
        self.parked_ms = int(dcfg["parked_s"] * 1000)
        self.batch_fixes = min(int(dcfg["batch_fixes"]), MAX_FIXES)
        self.batch_max_ms = int(dcfg["batch_max_s"] * 1000)
        self.moving_dkmh = int(dcfg["moving_kmh"] * 10)
        self.splitter = nmea.LineSplitter()
        # the epoch being merged: its time of day (ms), the RMC part [ts, lat, lon, speed,
        # course] and the GGA part [sats, hdop_x10]
        self.p_time = -1
        self.p_rmc = None
        self.p_gga = None
        self.last_ts = 0  # the last fix's time
        self.kept_ts = None  # the last kept fix's time
        self.force = False  # keep the next fix whatever its interval (ignition changed)
        self.batch = []
        self.retry_at = 0  # a refused batch is offered again at this many fixes
        self.ign = self.ext = self.tamper = None  # not known yet
        # the alarms raised and stored, kept on flash: a condition that ends while the
        # tracker is off is cleared at the first reading after boot (bit 0 power, 1 case)
        self.path = data_dir and data_dir + "/alarms"
        bits = (read_slot(self.path, b"PWta", False, 64) if self.path else None) or 0
        self.alarms = {"ext_power_lost": bool(bits & 1), "case_tamper": bool(bits & 2)}
        # named as health reports them; keyword arguments, so the names are shared qstrs
        self.counts = dict(nmea_ok=0, nmea_too_long=0, nmea_bad_char=0, nmea_malformed=0,
                           nmea_bad_checksum=0, nmea_unsupported=0, nmea_bad_field=0,
                           no_fix=0, fix_time_back=0, fixes=0, fixes_kept=0, fixes_lost=0,
                           batches=0, batches_refused=0, io_errors=0)

    def add_health(self, body):
        """Add this driver's figures to a flat health body."""
        c = self.counts
        body.update(c)
        # a line the splitter dropped for its length never reached parse
        body["nmea_too_long"] = c["nmea_too_long"] + self.splitter.discarded
        body["batch_pending"] = len(self.batch)
        body["ign"] = self.ign

    def feed(self, chunk):
        """Take bytes from the serial line (any chunking); act on every complete line."""
        for line in self.splitter.feed(chunk):
            self.line(line)

    def line(self, line):
        """One line without its CR LF: counted, merged into the epoch, never raises."""
        c = self.counts
        if line.startswith(b"$PPWIO,"):
            self._ppwio(line)
            return
        try:
            s = nmea.parse(line)
        except nmea.NMEAError as exc:
            if exc.reason == "no_fix":
                c["no_fix"] += 1
            else:
                c["nmea_" + exc.reason] = c.get("nmea_" + exc.reason, 0) + 1
            return
        c["nmea_ok"] += 1
        t = s["time_ms"]
        if t != self.p_time:
            self.close_epoch()
            self.p_time = t
        if s["sentence"] == "RMC":
            kmh = s["speed_kmh"]
            course = s["course"]
            self.p_rmc = [s["ts"], s["lat_e6"], s["lon_e6"],
                          0 if kmh is None else int(kmh * 10 + 0.5),
                          0 if course is None else int(course + 0.5) % 360]
        else:
            hdop = s["hdop"]
            self.p_gga = [s["satellites"] or 0, 0 if hdop is None else int(hdop * 10 + 0.5)]
        if self.p_rmc and self.p_gga:  # both parts here: no need to wait for the next epoch
            self.close_epoch()

    def close_epoch(self):
        """Make the epoch being merged a fix (or count why not) and start afresh."""
        r, g = self.p_rmc, self.p_gga
        self.p_rmc = self.p_gga = None
        self.p_time = -1
        if r is None:
            if g is not None:
                self.counts["no_fix"] += 1  # a GGA alone: no date, no speed
            return
        r.extend(g or (0, 0))
        self.fix(r)

    def fix(self, f):
        """Keep ``f`` or not (by its time and speed), and store the batch when it is due."""
        c = self.counts
        ts = f[0]
        if ts <= self.last_ts:
            c["fix_time_back"] += 1
            return
        self.last_ts = ts
        c["fixes"] += 1
        b = self.batch
        every = self.moving_ms if f[3] > self.moving_dkmh else self.parked_ms
        if self.force or self.kept_ts is None or ts - self.kept_ts >= every:
            self.force = False
            self.kept_ts = ts
            c["fixes_kept"] += 1
            if len(b) >= MAX_FIXES:  # only while the outbox refuses: the oldest goes
                b.pop(0)
                c["fixes_lost"] += 1
            b.append(f)
        if b and (len(b) >= max(self.batch_fixes, self.retry_at)
                  or (ts - b[0][0] >= self.batch_max_ms and not self.retry_at)):
            self.flush()

    def flush(self):
        """Store the batch as one positions event; refused, it stays and grows."""
        b = self.batch
        if not b:
            return
        body = {"fixes": b, "src": "nmea"}
        if self.ign is not None:
            body["ign"] = self.ign
            body["ext_power"] = self.ext
            body["tamper"] = self.tamper
        if self.emit("positions", body):
            self.batch = []
            self.retry_at = 0
            self.counts["batches"] += 1
        else:
            self.counts["batches_refused"] += 1
            self.retry_at = min(len(b) + self.batch_fixes, MAX_FIXES)

    def _ppwio(self, line):
        """``$PPWIO,i,e,t*hh``: the emulator's stand-in for the three GPIO inputs."""
        c = self.counts
        star = len(line) - 3
        if star < 7 or line[star] != 42:  # "*"
            c["nmea_malformed"] += 1
            return
        x = 0
        for ch in line[1:star]:
            x ^= ch
        try:
            ok = int(line[star + 1:], 16) == x
        except ValueError:
            c["nmea_malformed"] += 1
            return
        if not ok:
            c["nmea_bad_checksum"] += 1
            return
        v = line[7:star]
        if len(v) != 5 or v[1] != 44 or v[3] != 44 or not (
                v[0] in b"01" and v[2] in b"01" and v[4] in b"01"):
            c["nmea_bad_field"] += 1
            return
        c["nmea_ok"] += 1
        self.set_io(v[0] == 49, v[2] == 49, v[4] == 49)

    def set_io(self, ign, ext, tamper):
        """The inputs as read now: an ignition change closes the batch; power and case
        changes become alarms (offered again at the next reading if refused)."""
        if ign != self.ign and self.ign is not None:
            self.flush()
            self.force = True
        self.ign, self.ext, self.tamper = ign, ext, tamper
        a = self.alarms
        for code, on in (("ext_power_lost", not ext), ("case_tamper", tamper)):
            if on != a[code] and self.emit("alarm", {"alarm": code,
                                                     "state": "raised" if on else "cleared"}):
                a[code] = on
                if self.path:  # after the event is stored: a cut between repeats it (harmless)
                    try:
                        write_slot(self.path, b"PWta",
                                   a["ext_power_lost"] + 2 * a["case_tamper"])
                    except OSError:
                        self.counts["io_errors"] += 1

    async def run(self):
        """Read the serial line forever: every failure is counted, none raises."""
        hal = self.hal
        c = self.counts
        io_at = hal.ticks_ms()  # the GPIO inputs' last reading: kept across reopenings
        while True:
            port = None
            try:
                port = self._open()
                while True:
                    if self.pins and hal.ticks_diff(hal.ticks_ms(), io_at) >= IO_EVERY_MS:
                        io_at = hal.ticks_ms()
                        self.set_io(*hal.read_io(self.pins))
                    data = self._read(port)
                    if data:
                        self.feed(data)
                        # a backlog on the line (an emulator's burst) must not starve the
                        # uplink and health tasks: yield after each chunk
                        await hal.sleep_ms(0)
                    else:
                        await hal.sleep_ms(POLL_MS)
            except (OSError, EOFError, ValueError) as exc:
                c["io_errors"] += 1
                if c["io_errors"] < 4 or c["io_errors"] % 100 == 0:  # not one line a second
                    hal.log("gps source", self.source, "failed:", repr(exc))
            finally:  # also when a MemoryError goes up to the agent's guard: no socket leaks
                if port is not None:
                    try:
                        port.close()
                    except OSError:
                        pass
            await hal.sleep_ms(REOPEN_MS)

    def _open(self):
        src = self.source
        if src.startswith("tcp:"):
            from edge.net import sock

            colon = src.rfind(":")
            return sock.open_socket(src[4:colon], int(src[colon + 1:]))
        return self.hal.serial_open(src)  # the board's UART

    def _read(self, port):
        """What the line holds now (b"" or None when nothing); a closed link raises."""
        if not self.source.startswith("tcp:"):
            return port.read(READ_BYTES)
        try:
            b = port.recv(READ_BYTES)
        except OSError as e:
            if e.errno == errno.EAGAIN or e.errno == errno.ENOTCONN:  # ENOTCONN: connecting
                return None
            raise
        if not b:
            raise EOFError("closed")
        return b
