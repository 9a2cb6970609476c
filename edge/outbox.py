"""Persistent store-and-forward outbox: custody evidence waits here until the controller commits it.

Runs under MicroPython (ESP32 + LittleFS in the field, the unix port in tests) and CPython.
The edge may drop a message only once the controller has said "committed up to seq N"
(cumulative, see docs/ARCHITECTURE.md, Delivery). Sequence numbers are per device,
contiguous, and never reused for a record that ``append`` returned from (one limit: rot in the
last record's body_crc field, edge/FAILURES.md).

    ob = Outbox("/data/outbox")             # recovers on open
    ob.append(ob.next_seq(), topic, payload)  # in custody once it returns; then publish it
    ob.append(ob.next_seq(), topic, payload, reserve=4096)  # not into the last 4 KiB
    for seq, topic, payload in ob.pending(after_seq=sent, limit=16): ...
    ob.ack(upto)                             # the controller's "committed up to seq upto"

RAM: nothing but one 256-byte buffer (header, read-ahead, crc and copy chunk) and a
per-segment index (first seq, size) is kept; ``pending()`` reads one record at a time from
flash and holds no file open across a ``yield``, so acks and appends may interleave with an
iteration. Code: on the device the imported code lives on the same 96 KiB heap as the data,
so this module, edge/outbox_records.py (the record format) and edge/persist.py keep to few
functions and classes and short messages (``python -m tools.footprint``: about 9 KB together;
hil_tests/test_outbox_heap.py holds the import under 9.5 KiB).

Files in ``dirpath``
--------------------
``NNNNNNNNNN.seg``  segments, named by the seq their first record carries (10 digits, zero
                    padded), so the order is the name order and segment i covers seqs
                    [first_i, first_(i+1) - 1]; the last (tail) segment covers up to the last
                    appended seq. Records are only ever appended to the tail.
``ack``             the acknowledged watermark, replaced by ``persist.write_slot`` (tmp +
                    rename).

Records: see edge/outbox_records.py for the byte layout and its two CRCs.
``ack`` layout (12 bytes, a persist slot): b"PWak", u32 acked seq, crc32 of the first 8 bytes.

Recovery on open (never raises on corrupt data; counts in ``stats``)
--------------------------------------------------------------------
* Stray ``*.seg.tmp`` files (a cut during a tail rewrite) are removed; the segment they were
  replacing is still whole.
* acked = max(``ack`` file (or ``ack.tmp``), first kept segment - 1): segments are deleted
  oldest first and only when fully acknowledged, so a cut between deleting segments and writing
  ``ack`` (in either order) loses nothing; at worst acknowledged records are sent again, and
  the controller dedupes on (device, seq). Segments fully at or below acked are deleted.
* Only the tail segment is scanned. Its last record may be torn by a cut during ``append``: a
  header that fails its CRC with no valid record after it, or a valid header whose body runs past
  the end of the file. Those bytes are cut off (copy the good prefix to ``.tmp``, rename over)
  and counted in ``recovered_truncated``/``recovered_truncated_bytes``. That record's seq is
  reused: ``append`` had not returned, so the caller had not published it.
* Except when the bytes are a whole record whose header rotted (the crc of the bytes after its
  24-byte header still matches its body_crc field): then that seq stays consumed, reported lost.
* The tail segment is kept even when fully acknowledged: its name is the floor for
  ``next_seq()`` if the ``ack`` file is lost, so seqs never go backwards.

A write that fails (``OutboxFull`` on ENOSPC, ``OutboxError`` otherwise; ``disk_errors``)
consumes nothing: whatever it left at the tail is cut before the next append, which takes the
same seq. (Likewise a torn tail that could not be cut at open: ``append`` retries the cut first.)

Errors carry short arguments, not sentences (every string costs heap on the device):
``ValueError("next_seq", n)`` (append it with seq n), ``ValueError("too big", size)`` (over
``segment_bytes``: split it), ``OutboxFull("max_bytes", bytes_held)`` (also when only the
``reserve`` is left), ``OutboxFull("disk
full")``, ``OutboxError("write", oserror)``.

Corrupt records found later by ``pending()`` are reported as ``(seq, None, None)``: the seq
stays in order so the agent can publish a loss notice and the controller's cumulative commit
can move past it. Each distinct bad seq is counted once in ``stats["crc_errors"]`` (the last 8
are in ``bad_seqs``).
"""

import os
import struct
from binascii import crc32

from edge.outbox_records import BUF_SIZE, HEADER_FMT, HEADER_SIZE, MAGIC, find, scan
from edge.persist import makedirs, read_slot, remove, replace, write_slot


class OutboxError(Exception):
    """Root of the outbox's errors: the record was not stored; keep it in custody and retry."""


class OutboxFull(OutboxError):
    """The outbox is at max_bytes, or the file system is full: nothing was written.

    Keep the evidence where it is (the weighbridge barrier stays denied), raise an alarm, and
    retry after the controller acknowledges and ``ack()`` frees segments.
    """


class Outbox:
    def __init__(self, dirpath, max_bytes=256 * 1024, segment_bytes=16 * 1024):
        self.dir = dirpath
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        # keyword arguments: their names become qstrs, which the keys used below then share;
        # string literals this long would each cost a str object on the device's heap
        self.stats = st = dict(appended=0, acked=0, full_rejections=0, disk_errors=0,
                               crc_errors=0, recovered_truncated=0,
                               recovered_truncated_bytes=0, acks_beyond=0, meta_errors=0)
        self.bad_seqs = []
        self._seg = dirpath.replace("%", "%%") + "/%010d.seg"  # % first seq: a segment's path
        self._buf = bytearray(BUF_SIZE)  # header, read-ahead and copy buffer, allocated once
        self._firsts = firsts = []  # first seq of each segment, ascending
        self._sizes = []  # bytes of whole records in each segment
        self._bytes = 0
        self._need_fix = 0  # 1: a failed write's leftovers await a cut; 2: the tail, a scan
        makedirs(dirpath)
        # -- recovery: see the module docstring
        acked = read_slot(dirpath + "/ack", b"PWak") or 0
        for name in os.listdir(dirpath):
            if name.endswith(".seg.tmp"):
                remove(dirpath + "/" + name)
            elif name.endswith(".seg") and len(name) == 14 and name[:10].isdigit():
                firsts.append(int(name[:10]))
        firsts.sort()
        for first in firsts:
            size = os.stat(self._seg % first)[6]
            self._sizes.append(size)
            self._bytes += size
        if firsts:
            acked = max(acked, firsts[0] - 1)
        self._acked = self._last = self._tail_last = acked  # _tail_last: last seq in the tail
        if firsts:
            try:
                self._fix(True)
            except OSError:  # cannot cut the torn tail now (disk full?): append retries first
                st["disk_errors"] += 1
        self._drop_acked()

    # -- the contract ------------------------------------------------------------------------

    def next_seq(self):
        """The seq the next ``append`` must carry."""
        return self._last + 1

    def acked(self):
        return self._acked

    def backlog(self):
        """(records not yet acknowledged, bytes the outbox holds on flash)."""
        return self._last - self._acked, self._bytes

    def append(self, seq, topic, payload, reserve=0):
        """Store one record; it is in custody once this returns. Publish it only after that.

        ``payload``: bytes, or a tuple of buffers stored one after another (no joined copy:
        ``edge.signer`` ``seal(parts=True)``). ``reserve``: bytes under ``max_bytes`` this
        record may not use (the agent keeps the last of the outbox for weighings:
        edge/FAILURES.md, Outbox at its bound)."""
        st = self.stats
        firsts = self._firsts
        sizes = self._sizes
        h = self._buf
        try:
            if self._need_fix:  # first, as it may move next_seq(): the check below sees that
                self._fix(self._need_fix > 1)
            if seq != self._last + 1:
                raise ValueError("next_seq", self._last + 1)  # not the seq it must be
            if isinstance(topic, str):
                topic = topic.encode()
            if isinstance(payload, str):
                payload = payload.encode()
            # a tuple of buffers, written one after another (edge.signer seal(parts=True))
            parts = payload if type(payload) is tuple else (payload,)
            plen = 0
            body_crc = crc32(topic)
            for p in parts:
                plen += len(p)
                body_crc = crc32(p, body_crc)
            size = HEADER_SIZE + len(topic) + plen
            if len(topic) > 0xFFFF or size > self.segment_bytes:
                raise ValueError("too big", size)  # > segment_bytes: split it
            if self._bytes + size > self.max_bytes - reserve:
                st["full_rejections"] += 1
                raise OutboxFull("max_bytes", self._bytes)  # bytes held: wait for an ack
            if not firsts or self._tail_last != seq - 1 or sizes[-1] + size > self.segment_bytes:
                if firsts and not sizes[-1]:  # an empty tail with a stale name
                    remove(self._seg % firsts.pop())
                    sizes.pop()
                firsts.append(seq)
                sizes.append(0)
            # the header (layout: edge/outbox_records.py), head_crc last
            struct.pack_into(HEADER_FMT, h, 0, MAGIC, seq, plen, len(topic), 0,
                             body_crc & 0xFFFFFFFF, 0)
            struct.pack_into("<I", h, 20, crc32(h[:20]) & 0xFFFFFFFF)
            with open(self._seg % firsts[-1], "ab") as f:
                f.write(h[:HEADER_SIZE])
                f.write(topic)
                for p in parts:
                    f.write(p)
        except OSError as e:
            # a partial record may sit at the tail: cut it before the seq is used again
            self._need_fix = self._need_fix or 1
            st["disk_errors"] += 1
            if e.errno == 28:  # ENOSPC
                st["full_rejections"] += 1
                raise OutboxFull("disk full")
            raise OutboxError("write", e)
        sizes[-1] += size
        self._bytes += size
        self._last = self._tail_last = seq
        st["appended"] += 1
        if sizes[-1] == size:  # a new segment: the previous one may now be wholly acked
            self._drop_acked()

    def ack(self, upto):
        """The controller committed everything up to ``upto``: release it. Returns records released.

        ``upto`` at or below the watermark is ignored. ``upto`` beyond the last appended seq is
        ignored whole and counted in ``acks_beyond``: clamping it would release records that may
        never have been sent.
        """
        st = self.stats
        if upto <= self._acked:
            return 0
        if upto > self._last:
            st["acks_beyond"] += 1
            return 0
        released = upto - self._acked
        self._acked = upto
        # Delete first (frees space when the disk is full), then persist the watermark; a cut
        # in between recovers acked from the oldest kept segment.
        self._drop_acked()
        try:
            write_slot(self.dir + "/ack", b"PWak", upto)
        except OSError:
            st["meta_errors"] += 1  # RAM watermark holds; a reboot would resend a little
        st["acked"] += released
        return released

    def pending(self, after_seq=None, limit=32, out=None):
        """Iterate (seq, topic, payload) not yet acked, in seq order, from ``after_seq`` + 1.

        Lazy: one record in RAM at a time. A record that cannot be read back comes as
        (seq, None, None) in its place. Acked records are skipped even mid-iteration (also
        those acked between this call and the first step). ``out``: a bytearray the caller
        keeps for this; a record that fits is read into it and comes as memoryviews valid
        until the next step (no allocation per record), a bigger one's payload as an
        ``edge.outbox_spill.Spill``, read from flash into ``out`` as it is sent (without
        ``out``: bytes).
        """
        want = (self._acked if after_seq is None else after_seq) + 1
        seg = -1
        off = 0
        while limit > 0:
            if want <= self._acked:
                want = self._acked + 1
            if want > self._last:
                return
            firsts = self._firsts
            i = len(firsts) - 1
            while i >= 0 and firsts[i] > want:
                i -= 1
            rec = None
            if i >= 0:
                if firsts[i] != seg:
                    seg = firsts[i]
                    off = 0
                try:
                    path = self._seg % seg
                    with open(path, "rb") as f:
                        rec = find(f, off, want, self._sizes[i], self._buf, out, path)
                except OSError:  # released by an ack meanwhile, or lost: decided below
                    pass
            if rec and rec[0] == want:
                off = rec[2]
                topic, payload = rec[3], rec[4]
            else:
                if not rec and want <= self._acked:
                    continue  # its segment was released while we were suspended
                if rec:
                    off = rec[1]  # a later record: the seqs before it are lost
                topic = payload = None
            if topic is None:
                self._bad(want)
            yield want, topic, payload
            want += 1
            limit -= 1

    # -- recovery and segments ---------------------------------------------------------------

    def _fix(self, scan_it):
        """Put the tail back to its last whole record. Idempotent; OSError if it cannot.

        ``scan_it`` (at open, or when the tail is shorter than we wrote): trust only what a
        scan finds, and count a cut in ``recovered_truncated``. Else cut what a failed append
        left past the records we know: the caller was told it was not stored, and will append
        it again under the same seq. The cut copies the good prefix to ``.tmp`` and renames it
        over. The RAM index is set before the cut, so next_seq() is right even if the cut
        fails; ``_need_fix`` then stays set and append() retries first (a scan that failed is
        retried as a scan).
        """
        self._need_fix = scan_it + 1
        first = self._firsts[-1]
        path = self._seg % first
        try:
            size = os.stat(path)[6]
        except OSError:  # the tail was being created when the write failed
            size = 0
        good = self._sizes[-1]
        if size < good:
            scan_it = True
        if scan_it:
            good = 0
            last = first - 1
            if size:
                with open(path, "rb") as f:
                    good, last = scan(f, size, first, self._buf, self._bad)
            self._bytes += good - self._sizes[-1]
            self._sizes[-1] = good
            self._tail_last = last
            self._last = max(self._last, last)
        if good < size:
            mv = memoryview(self._buf)
            n = good
            with open(path, "rb") as src, open(path + ".tmp", "wb") as dst:
                while n:
                    k = src.readinto(mv[:min(n, BUF_SIZE)])
                    if not k:
                        break
                    dst.write(mv[:k])
                    n -= k
            replace(path + ".tmp", path)
            if scan_it:
                self.stats["recovered_truncated"] += 1
                self.stats["recovered_truncated_bytes"] += size - good
        self._need_fix = 0

    def _drop_acked(self):
        """Delete, oldest first, segments whose every seq is acked; the tail always stays."""
        firsts = self._firsts
        while len(firsts) > 1 and firsts[1] - 1 <= self._acked:
            if not remove(self._seg % firsts[0]):
                return  # cannot delete now; keep the order contiguous and try at the next ack
            self._bytes -= self._sizes.pop(0)
            firsts.pop(0)

    def _bad(self, seq):
        """Count a seq that cannot be read back, once (the last 8 are in ``bad_seqs``)."""
        if seq not in self.bad_seqs:
            self.stats["crc_errors"] += 1
            self.bad_seqs = self.bad_seqs[-7:] + [seq]
