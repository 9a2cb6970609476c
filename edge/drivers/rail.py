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

The train is held as a ``Train``: its cars are 16-byte records in a bytearray made at
boot (two of them: the train being read and one refused by the outbox), and it writes
the passage body's JSON straight into the agent's event buffer as it is signed
(``write_json``; edge/signer.py). So a 64-car train costs no heap as it is read, signed or
kept: a 40-car train once needed its car lists (3.8 KB on a 64-bit build) and three
pieces of 2 KB at once to be signed, which a 96 KiB heap with the link up did not always
have (edge/FAILURES.md, Rail reader). A train of more than ``MAX_CARS`` cars keeps its
first ``MAX_CARS`` and counts the rest (``cars_over``): the controller sees them missing.
"""

import errno
import gc
import json
import struct
from binascii import unhexlify

from protocols import aeiline
from protocols import s918_read as s918

POLL_MS = 50
REOPEN_MS = 1000
# a train refused for want of heap (it fragments most as a link comes up) is offered again
# while the reader is quiet, after 1, 2, 4, ... 32 s: not only when the next train ends
RETRY_MS = (1000, 2000, 4000, 8000, 16000, 32000)
READ_BYTES = 256
MAX_CARS = 64  # kept per train (protocols/passage.py allows 120): 2.7 KB of JSON at most
MAX_LOCOS = 8
CAR = "<IIIi"  # seq; code | side << 19 | axles << 20 (0: unreadable); number | length << 20;
CAR_BYTES = 16  # weight_kg (-1: none)


class Train:
    """One train as read: the TRN line's fields, its cars (``n`` records in ``cars``),
    the raw tags of its unreadable cars and its locomotives."""

    def __init__(self, f, cars):
        self.train = f[1]
        self.started_ts = self.ended_ts = f[2]
        self.direction = f[3]
        self.speed_dkmh = f[4]
        self.axles = f[5]
        self.cars = cars
        self.n = 0
        self.raw = []  # [car index, raw tag text] of its unreadable cars
        self.locos = []

    def write_json(self, w):
        """The passage body (protocols/passage.py) as JSON, written to ``w`` in pieces."""
        w.write('{"train": %s, "direction": "%s", "started_ts": %d, "ended_ts": %d, '
                '"speed_dkmh": %d, "axles": %d, "locos": %s, "cars": [' % (
                    json.dumps(self.train), self.direction, self.started_ts, self.ended_ts,
                    self.speed_dkmh, self.axles, json.dumps(self.locos)))
        raw = self.raw
        r = 0
        for i in range(self.n):
            seq, a, b, wt = struct.unpack_from(CAR, self.cars, i * CAR_BYTES)
            wt = "null" if wt < 0 else str(wt)
            if i:
                w.write(", ")
            if a >> 20:
                w.write('[%d, "%s", %d, %d, %d, %d, %s]' % (
                    seq, s918.initial_text(a & 0x7FFFF), b & 0xFFFFF, (a >> 19) & 1,
                    b >> 20, a >> 20, wt))
            else:
                while raw[r][0] != i:
                    r += 1
                w.write("[%d, null, null, null, null, null, %s, %s]" % (
                    seq, wt, json.dumps(raw[r][1])))
        w.write("]}")


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
        # the cars of the train being read, and a spare for when a refused train keeps its
        # own: made once at boot
        self.spare = bytearray(MAX_CARS * CAR_BYTES)
        self.cars = bytearray(MAX_CARS * CAR_BYTES)
        self.scratch = [0] * 6
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
                self._close(self.train.started_ts)
            self.train = Train(f, self.cars)
            self.tags = 0
            self.last_seq = 0
            return
        t = self.train
        if t is None or (kind == "END" and f[1] != t.train):
            c["orphan_lines"] += 1
            return
        if kind == "TAG":
            self.tags += 1
            self._tag(t, f[1], f[2], f[4])
            return
        if f[3] != self.tags:
            c["tags_lost"] += abs(f[3] - self.tags)
        self._close(max(f[2], t.started_ts))

    def _tag(self, t, seq, raw, weight):
        # decoded now into the train's car records (decode_into makes no garbage)
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
        if ok and f[0] == s918.GROUP_LOCOMOTIVE and len(t.locos) < MAX_LOCOS:
            t.locos.append([seq, s918.initial_text(f[1]), f[2]])
            c["locos"] += 1
            return
        if t.n >= MAX_CARS:
            c["cars_over"] += 1
            return
        c["cars"] += 1
        if ok:
            a = f[1] | f[3] << 19 | f[5] << 20
            b = f[2] | f[4] << 20
        else:
            a = b = 0
            t.raw.append([t.n, raw])
            c["unreadable"] += 1
        struct.pack_into(CAR, t.cars, t.n * CAR_BYTES, seq, a, b,
                         -1 if weight is None else weight)
        t.n += 1

    def _close(self, ended_ts):
        t = self.train
        self.train = None
        t.ended_ts = ended_ts
        gc.collect()
        if self.pending is not None and self.emit("passage", self.pending):
            self.counts["trains"] += 1
            self._release()
        if self.emit("passage", t):
            self.counts["trains"] += 1
            return
        self.counts["refused"] += 1
        if self.pending is not None:
            self.counts["lost"] += 1
            self._release()
        # the refused train keeps its records; the next one is read into the spare
        self.pending = t
        self.cars, self.spare = self.spare, None
        self.retries = 0
        self.retry_at = self.hal.now_ms() + RETRY_MS[0]

    def _release(self):
        """The pending train is stored (or lost): its records are the spare again."""
        self.spare = self.pending.cars
        self.pending = None
        self.retry_at = None

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
            self._release()
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
