"""The outbox's record format, and reading, checking and repairing it in a segment file.

MicroPython-compatible. ``Records`` owns the only buffers this needs (a 24-byte header and a
256-byte chunk), allocated once; every method works on a file the caller opened. Kept apart
from edge/outbox.py so each module compiles in about half the heap (a board compiling from
source has the compiler's peak on top of everything already loaded).

Record layout (24-byte header, little-endian)::

    offset size field
    0      4    magic       b"PWR1" (format version 1)
    4      4    seq         u32
    8      4    payload_len u32
    12     2    topic_len   u16
    14     2    flags       u16, 0 (reserved)
    16     4    body_crc    crc32(topic || payload)
    20     4    head_crc    crc32(bytes 0..19)
    24     ..   topic       topic_len bytes (UTF-8)
    ..     ..   payload     payload_len bytes

Why two CRCs: a header whose own CRC holds gives a trustworthy length, so a record whose body is
damaged is skipped by length and the records after it stay readable. A header that fails its
CRC gives no length: the reader resyncs by searching for the next magic whose header CRC holds
(a false match needs a 1-in-2^32 CRC collision).
"""

import struct
from binascii import crc32

from edge.persist import replace

HEADER_SIZE = 24
MAGIC = b"PWR1"
_HFMT = "<4sIIHHI"  # magic, seq, payload_len, topic_len, flags, body_crc: bytes 0..19
_CHUNK = 256  # copy / crc / resync buffer


class Records:
    """Record codec with its buffers; one per Outbox. Not re-entrant across a yield."""

    def __init__(self):
        self.hdr = bytearray(HEADER_SIZE)
        self._buf = bytearray(_CHUNK)
        self._mv = memoryview(self._buf)

    def pack_header(self, seq, topic, payload):
        """Fill ``hdr`` for a record; write hdr, topic, payload in that order."""
        h = self.hdr
        struct.pack_into(_HFMT, h, 0, MAGIC, seq, len(payload), len(topic), 0,
                         crc32(payload, crc32(topic)) & 0xFFFFFFFF)
        struct.pack_into("<I", h, 20, crc32(memoryview(h)[:20]) & 0xFFFFFFFF)

    def header(self, f, off, size):
        """(seq, topic_len, payload_len, body_crc) of a valid header at ``off``, else None."""
        if off + HEADER_SIZE > size:
            return None
        f.seek(off)
        h = self.hdr
        if f.readinto(h) != HEADER_SIZE:
            return None
        magic, seq, plen, tlen, flags, body_crc = struct.unpack_from(_HFMT, h, 0)
        (head_crc,) = struct.unpack_from("<I", h, 20)
        if magic != MAGIC or flags or head_crc != crc32(memoryview(h)[:20]) & 0xFFFFFFFF:
            return None
        return seq, tlen, plen, body_crc

    def find(self, f, off, want, size):
        """Read ``f`` from ``off`` up to the first record with seq >= want.

        Returns None at the end of the valid data, else (seq, record offset, end offset, topic,
        payload); topic and payload are read only when seq == want, and are None when that
        record's body fails its crc.
        """
        while True:
            h = self.header(f, off, size)
            if h is None:
                off = self.resync(f, off + 1, size) if off < size else -1
                if off < 0:
                    return None
                continue
            seq, tlen, plen, body_crc = h
            end = off + HEADER_SIZE + tlen + plen
            if end > size:
                return None
            if seq < want:
                off = end
                continue
            if seq > want:
                return seq, off, end, None, None
            topic = f.read(tlen)
            payload = f.read(plen)
            if (len(topic) != tlen or len(payload) != plen
                    or crc32(payload, crc32(topic)) & 0xFFFFFFFF != body_crc):
                return seq, off, end, None, None
            return seq, off, end, topic, payload

    def scan_tail(self, f, size, first, note_bad):
        """(end of the last whole record, its seq) for the tail segment open in ``f``."""
        off = good = 0
        last = first - 1
        while off < size:
            h = self.header(f, off, size)
            if h is None:
                nxt = self.resync(f, off + 1, size)
                if nxt >= 0:
                    off = nxt  # damage in the middle: pending() reports the gap
                    continue
                if self.salvage(f, off, size):
                    last += 1
                    note_bad(last)
                    good = size
                break
            seq, tlen, plen, body_crc = h
            end = off + HEADER_SIZE + tlen + plen
            if end > size:  # torn: the header made it, the body did not
                if off > good:  # whole records with rotten headers before it keep their seqs
                    good = off
                    last = max(last, seq - 1)
                break
            if self.crc_range(f, off + HEADER_SIZE, tlen + plen) != body_crc:
                note_bad(seq)
            last = max(last, seq)
            off = good = end
        return good, last

    def resync(self, f, pos, size):
        """Offset of the next valid header at or after ``pos``, or -1."""
        buf = self._buf
        while pos + HEADER_SIZE <= size:
            f.seek(pos)
            n = f.readinto(buf)
            if not n:
                break
            i = buf.find(MAGIC)
            if 0 <= i <= n - len(MAGIC):
                if self.header(f, pos + i, size) is not None:
                    return pos + i
                pos += i + 1
            elif n <= len(MAGIC):
                break
            else:
                pos += n - len(MAGIC) + 1  # overlap: a magic may straddle two chunks
        return -1

    def salvage(self, f, off, size):
        """True if [off, size) is one whole record with a rotten header (its body crc matches)."""
        if size - off <= HEADER_SIZE:
            return False
        f.seek(off)
        if f.readinto(self.hdr) != HEADER_SIZE:
            return False
        (body_crc,) = struct.unpack_from("<I", self.hdr, 16)
        return self.crc_range(f, off + HEADER_SIZE, size - off - HEADER_SIZE) == body_crc

    def crc_range(self, f, start, length):
        f.seek(start)
        crc = 0
        while length:
            n = f.readinto(self._mv[:min(length, _CHUNK)])
            if not n:
                return None
            crc = crc32(self._mv[:n], crc)
            length -= n
        return crc & 0xFFFFFFFF

    def truncate(self, path, length):
        """Keep the first ``length`` bytes of ``path``: copy them to .tmp, rename over."""
        tmp = path + ".tmp"
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            left = length
            while left:
                n = src.readinto(self._mv[:min(left, _CHUNK)])
                if not n:
                    break
                dst.write(self._mv[:n])
                left -= n
        replace(tmp, path)
