"""Persistent store-and-forward outbox: custody evidence waits here until the controller commits it.

Runs under MicroPython (ESP32 + LittleFS in the field, the unix port in tests) and CPython.
The edge may drop a message only once the controller has said "committed up to seq N"
(cumulative, see DESIGN.md, Contracts -> Delivery). Sequence numbers are per device,
contiguous, and never reused for a record that ``append`` returned from (one limit: rot in the
last record's body_crc field, edge/FAILURES.md).

    ob = Outbox("/data/outbox")             # recovers on open
    ob.append(ob.next_seq(), topic, payload)  # in custody once it returns; then publish it
    for seq, topic, payload in ob.pending(after_seq=sent, limit=16): ...
    ob.ack(upto)                             # the controller's "committed up to seq upto"

RAM: nothing but a header buffer, a copy buffer and a per-segment index (first seq, size) is
kept; ``pending()`` reads one record at a time from flash and holds no file open across a
``yield``, so acks and appends may interleave with an iteration.

Files in ``dirpath``
--------------------
``NNNNNNNNNN.seg``  segments, named by the seq their first record carries (10 digits, zero
                    padded), so the order is the name order and segment i covers seqs
                    [first_i, first_(i+1) - 1]; the last (tail) segment covers up to the last
                    appended seq. Records are only ever appended to the tail.
``ack``             the acknowledged watermark, replaced by ``write_atomic`` (tmp + rename).

Records: see edge/outbox_records.py for the byte layout and its two CRCs.
``ack`` layout (12 bytes): b"PWak", u32 acked seq, crc32 of the first 8 bytes.

Recovery on open (never raises on corrupt data; counts in ``stats``)
--------------------------------------------------------------------
* Stray ``*.seg.tmp`` files (a cut during a tail rewrite) are removed; the segment they were
  replacing is still whole.
* acked = max(``ack`` file, first kept segment - 1): segments are deleted oldest first and only
  when fully acknowledged, so a cut between deleting segments and writing ``ack`` (in either
  order) loses nothing; at worst acknowledged records are sent again, and the controller
  dedupes on (device, seq). Segments fully at or below acked are deleted.
* Only the tail segment is scanned. Its last record may be torn by a cut during ``append``: a
  header that fails its CRC with no valid record after it, or a valid header whose body runs past
  the end of the file. Those bytes are cut off (copy the good prefix to ``.tmp``, rename over)
  and counted in ``recovered_truncated``/``recovered_truncated_bytes``. That record's seq is
  reused: ``append`` had not returned, so the caller had not published it.
* Except when the bytes are a whole record whose header rotted (the crc of the bytes after its
  24-byte header still matches its body_crc field): then that seq stays consumed, reported lost.
* The tail segment is kept even when fully acknowledged: its name is the floor for
  ``next_seq()`` if the ``ack`` file is lost, so seqs never go backwards.

A write that fails (``OutboxFull`` on ENOSPC, ``OutboxError`` otherwise) consumes nothing:
whatever it left at the tail is cut before the next append, which takes the same seq.

Corrupt records found later by ``pending()`` are reported as ``(seq, None, None)``: the seq
stays in order so the agent can publish a loss notice and the controller's cumulative commit
can move past it. Each distinct bad seq is counted once in ``stats["crc_errors"]`` (the last 8
are in ``bad_seqs``).
"""

import os

from edge.outbox_records import HEADER_SIZE, Records
from edge.persist import (
    exists,
    makedirs,
    pack_slot,
    read_atomic,
    remove_quietly,
    unpack_slot,
    write_atomic,
)

_META_MAGIC = b"PWak"
_SEG = ".seg"
_ENOSPC = 28
_BAD_KEPT = 8


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
        self.stats = {
            "appended": 0,
            "acked": 0,
            "full_rejections": 0,
            "disk_errors": 0,
            "crc_errors": 0,
            "recovered_truncated": 0,
            "recovered_truncated_bytes": 0,
            "acks_beyond": 0,
            "meta_errors": 0,
        }
        self.bad_seqs = []
        self._rec = Records()  # header and copy buffers, allocated once
        self._firsts = []  # first seq of each segment, ascending
        self._sizes = []  # bytes of whole records in each segment
        self._bytes = 0
        self._acked = 0
        self._last = 0  # last seq consumed: next_seq() - 1
        self._tail_last = 0  # last seq in the tail segment (its first - 1 when empty)
        self._need_recover = False
        makedirs(dirpath)
        self._open()

    # -- the contract ------------------------------------------------------------------------

    def next_seq(self):
        """The seq the next ``append`` must carry."""
        return self._last + 1

    def acked(self):
        return self._acked

    def backlog(self):
        """(records not yet acknowledged, bytes the outbox holds on flash)."""
        return self._last - self._acked, self._bytes

    def append(self, seq, topic, payload):
        """Store one record; it is in custody once this returns. Publish it only after that."""
        if self._need_recover:
            self._retry_recover()
        if seq != self._last + 1:
            raise ValueError("outbox: seq %d out of order; append next_seq() = %d" % (
                seq, self._last + 1))
        if isinstance(topic, str):
            topic = topic.encode()
        if isinstance(payload, str):
            payload = payload.encode()
        size = HEADER_SIZE + len(topic) + len(payload)
        if len(topic) > 0xFFFF or size > self.segment_bytes:
            raise ValueError("outbox: record of %d bytes exceeds segment_bytes=%d; split it" % (
                size, self.segment_bytes))
        if self._bytes + size > self.max_bytes:
            self.stats["full_rejections"] += 1
            raise OutboxFull("outbox: %d of %d bytes used; wait for an ack before appending" % (
                self._bytes, self.max_bytes))
        self._rec.pack_header(seq, topic, payload)
        fresh = (not self._firsts or self._tail_last != seq - 1
                 or self._sizes[-1] + size > self.segment_bytes)
        if fresh:
            self._start_segment(seq)
        try:
            with open(self._path(seq if fresh else self._firsts[-1]), "ab") as f:
                f.write(self._rec.hdr)
                f.write(topic)
                f.write(payload)
        except OSError as e:
            self._write_failed(e)
        self._sizes[-1] += size
        self._bytes += size
        self._last = self._tail_last = seq
        self.stats["appended"] += 1
        if fresh:
            self._drop_acked()

    def ack(self, upto):
        """The controller committed everything up to ``upto``: release it. Returns records released.

        ``upto`` at or below the watermark is ignored. ``upto`` beyond the last appended seq is
        ignored whole and counted in ``acks_beyond``: clamping it would release records that may
        never have been sent.
        """
        if upto <= self._acked:
            return 0
        if upto > self._last:
            self.stats["acks_beyond"] += 1
            return 0
        released = upto - self._acked
        self._acked = upto
        # Delete first (frees space when the disk is full), then persist the watermark; a cut
        # in between recovers acked from the oldest kept segment.
        self._drop_acked()
        try:
            write_atomic(self._meta_path(), pack_slot(_META_MAGIC, upto))
        except OSError:
            self.stats["meta_errors"] += 1  # RAM watermark holds; a reboot would resend a little
        self.stats["acked"] += released
        return released

    def pending(self, after_seq=None, limit=32):
        """Iterate (seq, topic, payload) not yet acked, in seq order, from ``after_seq`` + 1.

        Lazy: one record in RAM at a time. A record that cannot be read back comes as
        (seq, None, None) in its place. Acked records are skipped even mid-iteration.
        """
        start = self._acked if after_seq is None else after_seq
        return self._pending(start + 1, limit)

    # -- opening and recovery ----------------------------------------------------------------

    def _path(self, first):
        return "%s/%010d%s" % (self.dir, first, _SEG)

    def _meta_path(self):
        return self.dir + "/ack"

    def _open(self):
        acked = read_atomic(self._meta_path(), self._parse_meta) or 0
        for name in os.listdir(self.dir):
            if name.endswith(_SEG + ".tmp"):
                remove_quietly(self.dir + "/" + name)
            elif name.endswith(_SEG) and len(name) == 10 + len(_SEG) and name[:10].isdigit():
                self._firsts.append(int(name[:10]))
        self._firsts.sort()
        for first in self._firsts:
            self._sizes.append(os.stat(self._path(first))[6])
        self._bytes = sum(self._sizes)
        if self._firsts:
            acked = max(acked, self._firsts[0] - 1)
        self._acked = self._last = acked
        if self._firsts:
            try:
                self._recover_tail()
            except OSError:  # cannot cut the torn tail now (disk full?): append retries first
                self.stats["disk_errors"] += 1
        self._drop_acked()

    def _parse_meta(self, data):
        return unpack_slot(_META_MAGIC, data)

    def _recover_tail(self):
        """Find the tail's last whole record and cut anything after it. Idempotent.

        The RAM index is set before the cut, so next_seq() is right even if the cut fails;
        ``_need_recover`` then stays set and append() retries the cut before writing.
        """
        self._need_recover = True
        first = self._firsts[-1]
        path = self._path(first)
        try:
            size = os.stat(path)[6]
        except OSError:  # the tail was being created when the write failed
            size = 0
        good = 0
        last = first - 1
        if size:
            with open(path, "rb") as f:
                good, last = self._rec.scan_tail(f, size, first, self._note_bad)
        self._bytes += good - self._sizes[-1]
        self._sizes[-1] = good
        self._tail_last = last
        self._last = max(self._last, last)
        if good < size:
            self._rec.truncate(path, good)
            self.stats["recovered_truncated"] += 1
            self.stats["recovered_truncated_bytes"] += size - good
        self._need_recover = False

    def _retry_recover(self):
        """After a failed write or cut: put the tail back to its last whole record we know of.

        Whatever the failed append left (part or all of its record) goes: the caller was told
        it was not stored, and will append it again under the same seq.
        """
        path = self._path(self._firsts[-1])
        try:
            try:
                size = os.stat(path)[6]
            except OSError:
                size = 0
            if size > self._sizes[-1]:
                self._rec.truncate(path, self._sizes[-1])
            elif size < self._sizes[-1]:
                self._recover_tail()  # shorter than we wrote: trust only what a scan finds
            self._need_recover = False
        except OSError as e:
            self._write_failed(e)

    def _write_failed(self, e):
        self._need_recover = True  # a partial record may sit at the tail: cut it before reuse
        self.stats["disk_errors"] += 1
        if e.args and e.args[0] == _ENOSPC:
            self.stats["full_rejections"] += 1
            raise OutboxFull("outbox: file system full (%s); wait for an ack and retry" % e)
        raise OutboxError("outbox: write failed (%s); record not stored, retry" % e)

    # -- segments ----------------------------------------------------------------------------

    def _start_segment(self, seq):
        if self._firsts and self._sizes[-1] == 0:
            remove_quietly(self._path(self._firsts.pop()))  # empty tail with a stale name
            self._sizes.pop()
        self._firsts.append(seq)
        self._sizes.append(0)

    def _drop_acked(self):
        """Delete, oldest first, segments whose every seq is acked; the tail always stays."""
        while len(self._firsts) > 1 and self._firsts[1] - 1 <= self._acked:
            path = self._path(self._firsts[0])
            if not remove_quietly(path) and exists(path):
                return  # cannot delete now; keep the order contiguous and try at the next ack
            self._bytes -= self._sizes.pop(0)
            self._firsts.pop(0)

    def _index(self, seq):
        i = len(self._firsts) - 1
        while i >= 0 and self._firsts[i] > seq:
            i -= 1
        return i

    def _note_bad(self, seq):
        if seq in self.bad_seqs:
            return
        self.stats["crc_errors"] += 1
        self.bad_seqs.append(seq)
        if len(self.bad_seqs) > _BAD_KEPT:
            self.bad_seqs.pop(0)

    def _find(self, first, off, want, size):
        """Records.find() on segment ``first``; None also when the file is gone."""
        try:
            with open(self._path(first), "rb") as f:
                return self._rec.find(f, off, want, size)
        except OSError:  # released by an ack meanwhile, or lost: the caller decides
            return None

    def _pending(self, want, limit):
        seg = -1
        off = 0
        sent = 0
        while sent < limit:
            if want <= self._acked:
                want = self._acked + 1
            if want > self._last:
                return
            i = self._index(want)
            rec = None
            if i >= 0:
                if self._firsts[i] != seg:
                    seg = self._firsts[i]
                    off = 0
                rec = self._find(seg, off, want, self._sizes[i])
            if rec is not None and rec[0] == want:
                off = rec[2]
                topic, payload = rec[3], rec[4]
            else:
                if rec is None and want <= self._acked:
                    continue  # its segment was released while we were suspended
                if rec is not None:
                    off = rec[1]  # a later record: the seqs before it are lost
                topic = payload = None
            if topic is None:
                self._note_bad(want)
            yield want, topic, payload
            want += 1
            sent += 1
