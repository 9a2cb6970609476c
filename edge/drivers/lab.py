"""Grain lab analyzer driver (device kind ``lab``, driver type ``lab``): result lines from
the online analyzer on the unloading line, each stored once as a ``sample`` custody event.

Source (``source``): ``tcp:<host>:<port>``, the analyzer's text port (the unix HAL and a
board on Ethernet/Wi-Fi alike). The line is read without blocking every ``POLL_MS``; a
refused, reset or closed link is counted (``io_errors``) and opened again after
``REOPEN_MS``. Lines are cut by ``LineSplitter`` below and checked by
``protocols.labline.parse`` (checksum first); every line lands in exactly one count:
``lab_ok``, ``lab_<reason>`` (malformed, bad_checksum, bad_field, unsupported),
``lab_too_long``. None stops the driver.

Exactly once: an analyzer that reconnects re-sends its recent results. The ids of the
last ``RECENT`` stored samples are kept in RAM and on flash (``<data_dir>/samples``, a
persist slot written after the event is stored), so a repeat is counted
(``duplicates``) and not stored again, also after a reboot. A power cut between the
event and the slot may store one result twice: the controller keys samples by
(device, sample id) and keeps the first. A result the outbox refuses is offered again
at the next line (``pending``, one result; a second refused result while one waits is
counted in ``lost`` and the analyzer's re-send brings it back).
"""

import errno

from edge.persist import read_slot, write_slot
from protocols import labline

POLL_MS = 50
REOPEN_MS = 1000
READ_BYTES = 128
RECENT = 16


class LineSplitter:
    """Cut a byte stream into lines without CR LF; a line over ``max_line`` is dropped up to
    the next LF and counted in ``discarded`` (one buffer, allocated once: heap)."""

    def __init__(self, max_line=labline.MAX_LINE):
        self.buf = bytearray(max_line + 1)
        self.n = 0
        self.skipping = False
        self.discarded = 0

    def feed(self, chunk):
        out = []
        start, end = 0, len(chunk)
        while start < end:
            nl = chunk.find(b"\n", start)
            stop = end if nl < 0 else nl
            k = stop - start
            if not self.skipping:
                if self.n + k > len(self.buf):
                    self.skipping = True
                    self.discarded += 1
                    self.n = 0
                elif k:
                    self.buf[self.n:self.n + k] = chunk[start:stop]
                    self.n += k
            if nl < 0:
                break
            if not self.skipping and self.n:
                line = bytes(self.buf[:self.n])
                if line[-1] == 13:
                    line = line[:-1]
                if line:
                    out.append(line)
            self.n = 0
            self.skipping = False
            start = nl + 1
        return out


class LabDriver:
    """``emit(kind, body)`` stores one custody event and returns its seq, or None when it
    was refused (the agent's ``emit``); ``hal`` gives ``sleep_ms`` and logging."""

    def __init__(self, dcfg, emit, hal, data_dir=None):
        self.emit = emit
        self.hal = hal
        self.source = dcfg.get("source", "")
        self.splitter = LineSplitter()
        self.path = data_dir and data_dir + "/samples"
        raw = read_slot(self.path, b"PWls", True, RECENT * (labline.MAX_ID + 1) + 8) \
            if self.path else None
        self.recent = raw.decode().split("\n") if raw else []
        self.pending = None
        self.counts = dict(lab_ok=0, lab_malformed=0, lab_bad_checksum=0, lab_bad_field=0,
                           lab_unsupported=0, lab_too_long=0, samples=0, duplicates=0,
                           refused=0, lost=0, io_errors=0)

    def add_health(self, body):
        """Add this driver's figures to a flat health body."""
        body.update(self.counts)
        body["lab_too_long"] = self.counts["lab_too_long"] + self.splitter.discarded
        body["sample_pending"] = self.pending is not None

    def feed(self, chunk):
        """Take bytes from the analyzer (any chunking); act on every complete line."""
        for line in self.splitter.feed(chunk):
            self.line(line)

    def line(self, line):
        """One line without CR LF: counted, stored once if a new result; never raises."""
        c = self.counts
        try:
            body = labline.parse(line)
        except labline.LabError as exc:
            key = "lab_" + exc.reason
            c[key] = c.get(key, 0) + 1
            return
        c["lab_ok"] += 1
        if self.pending is not None:
            self._store(self.pending)
        self._store(body)

    def _store(self, body):
        sid = body["sample_id"]
        if sid in self.recent:
            self.counts["duplicates"] += 1
            if self.pending is body:
                self.pending = None
            return
        if not self.emit("sample", body):
            self.counts["refused"] += 1
            if self.pending is not None and self.pending is not body:
                self.counts["lost"] += 1
            self.pending = body
            return
        if self.pending is body:
            self.pending = None
        self.counts["samples"] += 1
        self.recent.append(sid)
        if len(self.recent) > RECENT:
            self.recent.pop(0)
        if self.path:  # after the event is stored: a cut between repeats it (deduplicated)
            try:
                write_slot(self.path, b"PWls", "\n".join(self.recent).encode())
            except OSError:
                self.counts["io_errors"] += 1

    async def run(self):
        """Read the analyzer's line forever: every failure is counted, none raises."""
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
                        await hal.sleep_ms(POLL_MS)
            except (OSError, EOFError, ValueError) as exc:
                c["io_errors"] += 1
                if c["io_errors"] < 4 or c["io_errors"] % 100 == 0:
                    hal.log("lab source", self.source, "failed:", repr(exc))
            finally:
                if port is not None:
                    try:
                        port.close()
                    except OSError:
                        pass
            await hal.sleep_ms(REOPEN_MS)

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
