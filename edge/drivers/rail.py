"""AEI rail reader driver (device kind ``rail_reader``, driver type ``rail``): one signed
``passage`` custody event per train that passes the reader at the rail yard.

Source (``source``): ``tcp:<host>:<port>``, the reader's text port (protocols/aeiline.py:
TRN header, one TAG line per tag read, END). Read without blocking every ``POLL_MS``; a
refused, reset or closed link is counted (``io_errors``) and opened again after
``REOPEN_MS``. Every line lands in one count: ``aei_ok`` or ``aei_<reason>``
(malformed, bad_checksum, bad_field, unsupported, too_long); none stops the driver.

Each tag is decoded on the device (protocols/s918.py) into a compact car array
(protocols/passage.py); a tag that fails its checks is kept as an unreadable car with its
raw hex (``unreadable``), never dropped. Locomotives (group 5) go to ``locos``. At END the
train is stored as one event. A TRN while a train is still open (its END lost) stores the
open train as it is (``trains_cut``); TAG or END lines outside a train are counted
(``orphan_lines``); an END whose tag count differs from the TAG lines received is counted
(``tags_lost``: the controller still sees every car that arrived). A train the outbox
refuses is offered again with the next train (``pending``, one train; a second refused
while one waits is counted in ``lost``).

Cars are arrays, not objects: a 40-car train is 1.7 KB of JSON. Their lists (48 of them)
are made once at boot and refilled for every train, so ``emit`` must not keep the body it
is given; a refused train keeps its own and new ones are made (edge/FAILURES.md, Rail
reader: the heap at 96K).
"""

import errno
import gc
from binascii import unhexlify

from protocols import aeiline, s918

POLL_MS = 50
REOPEN_MS = 1000
# a train refused for want of heap (it fragments most as a link comes up) is offered again
# while the reader is quiet, after 1, 2, 4, ... 32 s: not only when the next train ends
RETRY_MS = (1000, 2000, 4000, 8000, 16000, 32000)
READ_BYTES = 256
MAX_CARS = 120  # protocols/passage.py MAX_CARS (not imported: heap)
MAX_LOCOS = 8
SLOTS = 48  # car lists kept for reuse: a 40-car train and some (longer: made anew)


class RailDriver:
    """``emit(kind, body)`` stores one custody event and returns its seq, or None when it
    was refused (the agent's ``emit``); ``hal`` gives ``sleep_ms`` and logging."""

    def __init__(self, dcfg, emit, hal, data_dir=None):
        self.emit = emit
        self.hal = hal
        self.source = dcfg.get("source", "")
        # one line buffer, allocated once (a stuck line is dropped up to the next LF)
        self.buf = bytearray(aeiline.MAX_LINE + 1)
        self.n = 0
        self.skipping = False
        self.train = None
        self.tags = 0
        self.last_seq = 0
        # a 40-car train's car lists, made once at boot and refilled for every train
        self.slots = [[0] * 7 for _ in range(SLOTS)]
        self.used = 0
        self.scratch = [0] * 6
        self.names = {}
        self.pending = None
        self.retry_at = None  # hal ms of the next offer of the pending train
        self.retries = 0
        self.counts = dict(aei_ok=0, aei_malformed=0, aei_bad_checksum=0, aei_bad_field=0,
                           aei_unsupported=0, aei_too_long=0, trains=0, cars=0, unreadable=0,
                           locos=0, trains_cut=0, orphan_lines=0, tags_lost=0, cars_over=0,
                           refused=0, lost=0, io_errors=0)

    def add_health(self, body):
        """Add this driver's figures to a flat health body."""
        body.update(self.counts)
        body["passage_pending"] = self.pending is not None
        body["train_open"] = self.train is not None

    def feed(self, chunk):
        """Take bytes from the reader (any chunking); act on every complete line."""
        start, end = 0, len(chunk)
        buf = self.buf
        while start < end:
            nl = chunk.find(b"\n", start)
            stop = end if nl < 0 else nl
            k = stop - start
            if not self.skipping:
                if self.n + k > len(buf):
                    self.skipping = True
                    self.counts["aei_too_long"] += 1
                    self.n = 0
                elif k:
                    buf[self.n:self.n + k] = chunk[start:stop]
                    self.n += k
            if nl < 0:
                break
            if not self.skipping and self.n:
                n = self.n - 1 if buf[self.n - 1] == 13 else self.n
                if n:
                    self.line(bytes(buf[:n]))
            self.n = 0
            self.skipping = False
            start = nl + 1

    def line(self, line):
        """One line without CR LF: counted and acted on; never raises."""
        c = self.counts
        try:
            f = aeiline.parse(line)
        except aeiline.AeiError as exc:
            key = "aei_" + exc.reason
            c[key] = c.get(key, 0) + 1
            return
        c["aei_ok"] += 1
        kind = f[0]
        if kind == "TRN":
            if self.train is not None:
                c["trains_cut"] += 1
                self._close(self.train["started_ts"])
            self.train = {"direction": f[3], "started_ts": f[2], "ended_ts": f[2],
                          "speed_dkmh": f[4], "axles": f[5], "train": f[1], "cars": [],
                          "locos": []}
            self.tags = 0
            self.last_seq = 0
            self.used = 0
            return
        t = self.train
        if t is None or (kind == "END" and f[1] != t["train"]):
            c["orphan_lines"] += 1
            return
        if kind == "TAG":
            self.tags += 1
            self._tag(t, f[1], f[2], f[4])
            return
        if f[3] != self.tags:
            c["tags_lost"] += abs(f[3] - self.tags)
        self._close(max(f[2], t["started_ts"]))

    def _tag(self, t, seq, raw, weight):
        # decoded now into car lists made at boot (``slots``): lists made as the lines
        # arrive would be strewn among the lines' garbage, and signing the event needs a
        # few KB in one piece (seen: out of memory at 96K); decode_into makes no garbage
        c = self.counts
        if seq <= self.last_seq:
            c["orphan_lines"] += 1  # out of order: the body needs increasing seqs
            return
        self.last_seq = seq
        f = self.scratch
        try:
            ok = s918.decode_into(unhexlify(raw), f)
        except ValueError:  # not hex: unreadable, its text kept as read
            ok = False
        if ok and f[0] == s918.GROUP_LOCOMOTIVE and len(t["locos"]) < MAX_LOCOS:
            t["locos"].append([seq, self._name(f[1]), f[2]])
            c["locos"] += 1
            return
        cars = t["cars"]
        if len(cars) >= MAX_CARS:
            c["cars_over"] += 1
            return
        c["cars"] += 1
        if not ok:
            cars.append([seq, None, None, None, None, None, weight, raw])
            c["unreadable"] += 1
            return
        n = self.used
        if n < len(self.slots):
            car = self.slots[n]
            self.used = n + 1
        else:
            car = [0] * 7
        car[0] = seq
        car[1] = self._name(f[1])
        car[2] = f[2]
        car[3] = f[3]
        car[4] = f[4]
        car[5] = f[5]
        car[6] = weight
        cars.append(car)

    def _name(self, code):
        """One string per owner's initial, kept (not one per car)."""
        name = self.names.get(code)
        if name is None:
            if len(self.names) >= 32:
                self.names = {}
            name = self.names[code] = s918.initial_text(code)
        return name

    def _close(self, ended_ts):
        body = self.train
        self.train = None
        body["ended_ts"] = ended_ts
        gc.collect()
        if self.pending is not None and self.emit("passage", self.pending):
            self.counts["trains"] += 1
            self.pending = None
        if self.emit("passage", body):
            self.counts["trains"] += 1
            return
        self.counts["refused"] += 1
        if self.pending is not None:
            self.counts["lost"] += 1
        self.pending = body
        self.retries = 0
        self.retry_at = self.hal.now_ms() + RETRY_MS[0]
        self.slots = [[0] * 7 for _ in range(SLOTS)]  # the pending train keeps its own
        self.used = 0

    async def run(self):
        """Read the reader's line forever: every failure is counted, none raises."""
        hal = self.hal
        c = self.counts
        while True:
            port = None
            try:
                from edge.net import sock

                src = self.source
                colon = src.rfind(":")
                port = sock.open_socket(src[4:colon], int(src[colon + 1:]))
                while True:
                    data = self._read(port)
                    if data:
                        self.feed(data)
                        await hal.sleep_ms(0)
                    else:
                        self._retry_pending()
                        await hal.sleep_ms(POLL_MS)
            except (OSError, EOFError, ValueError) as exc:
                c["io_errors"] += 1
                if c["io_errors"] < 4 or c["io_errors"] % 100 == 0:
                    hal.log("rail source", self.source, "failed:", repr(exc))
            finally:
                if port is not None:
                    try:
                        port.close()
                    except OSError:
                        pass
            await hal.sleep_ms(REOPEN_MS)

    def _retry_pending(self):
        """Offer the refused train again when its time has come (the reader is quiet)."""
        if self.pending is None or self.retry_at is None:
            return
        now = self.hal.now_ms()
        if now < self.retry_at:
            return
        gc.collect()
        if self.emit("passage", self.pending):
            self.counts["trains"] += 1
            self.pending = None
            self.retry_at = None
            return
        self.retries += 1
        self.retry_at = (now + RETRY_MS[self.retries]
                         if self.retries < len(RETRY_MS) else None)

    def _read(self, port):
        try:
            b = port.recv(READ_BYTES)
        except OSError as e:
            if e.errno == errno.EAGAIN or e.errno == errno.ENOTCONN:
                return None
            raise
        if not b:
            raise EOFError("closed")
        return b
