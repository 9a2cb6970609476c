"""The outbox's record format, and reading and checking it in a segment file.

MicroPython-compatible. Functions on a file the caller opened, with the one buffer this needs,
passed in by the caller and allocated once by it: ``buf``, a bytearray of ``BUF_SIZE`` (256)
bytes, big enough for a header, used as the read-ahead, resync and crc chunk. Nothing here
yields, so one buffer serves every call. Records are written by ``Outbox.append`` (the header
packed with ``HEADER_FMT``) and cut by ``Outbox._fix`` (edge/outbox.py). Kept apart from
edge/outbox.py so each module compiles in about half the heap (a board compiling from source
has the compiler's peak on top of everything already loaded); plain functions, because on the
device every class and function costs heap.

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

HEADER_SIZE = 24
HEADER_FMT = "<4sIIHHII"  # magic, seq, payload_len, topic_len, flags, body_crc, head_crc
MAGIC = b"PWR1"
BUF_SIZE = 256
# find()'s reader of a record bigger than the caller's buffer: set by edge/outbox_spill.py,
# which the agents with big events load at boot (edge/main.py); None: read as new bytes
BIG = None


def seek(f, pos, size, buf):
    """The first valid header at or after ``pos``, before ``size``, else None.

    A valid header: (offset, seq, topic_len, payload_len, body_crc). Each candidate is read
    with the 256 bytes after it; when its header fails, the next magic in them is tried, and
    past them the search goes on 3 bytes back (a magic may straddle two chunks).
    """
    while pos + HEADER_SIZE <= size:
        f.seek(pos)
        n = f.readinto(buf)
        if n < HEADER_SIZE:
            return None  # the file is shorter than the caller thought
        magic, seq, plen, tlen, flags, body_crc, head_crc = struct.unpack_from(HEADER_FMT, buf)
        if magic == MAGIC and not flags and head_crc == crc32(buf[:20]) & 0xFFFFFFFF:
            return pos, seq, tlen, plen, body_crc
        i = buf.find(MAGIC, 1)
        pos += i if 0 < i <= n - 4 else n - 3
    return None


def find(f, off, want, size, buf, out=None, path=None):
    """Read ``f`` from ``off`` up to the first record with seq >= want.

    Returns None at the end of the valid data, else (seq, record offset, end offset, topic,
    payload); topic and payload are read only when seq == want, and are None when that
    record's body fails its crc. ``out``: a bytearray to read them into when they fit
    (memoryviews of it are returned, valid until ``out`` is used again); a bigger one,
    given ``path`` (``f``'s) and that module loaded at boot (edge/main.py: agents with big
    events), is checked in pieces read into ``out`` and its payload comes as an
    ``edge.outbox_spill.Spill``; else as new bytes.
    """
    while True:
        h = seek(f, off, size, buf)
        if h is None:
            return None
        off, seq, tlen, plen, body_crc = h
        end = off + HEADER_SIZE + tlen + plen
        if end > size:
            return None
        if seq < want:
            off = end
            continue
        if seq > want:
            return seq, off, end, None, None
        f.seek(off + HEADER_SIZE)
        if out is not None and tlen + plen <= len(out):
            mv = memoryview(out)
            topic = mv[:tlen]
            payload = mv[tlen:tlen + plen]
            n = f.readinto(mv[:tlen + plen])
        elif out is not None and path is not None and BIG:  # sent from flash in pieces
            return BIG(f, seq, off, end, tlen, plen, body_crc, out, path)
        else:
            topic = f.read(tlen)
            payload = f.read(plen)
            n = len(topic) + len(payload)
        if n != tlen + plen or crc32(payload, crc32(topic)) & 0xFFFFFFFF != body_crc:
            return seq, off, end, None, None
        return seq, off, end, topic, payload


def scan(f, size, first, buf, bad):
    """(end of the last whole record, its seq) for the tail segment open in ``f``.

    ``bad(seq)`` is called for each seq that stays consumed but cannot be read back: a record
    whose body fails its crc, or (at the very end) bytes with no valid header that are one
    whole record whose header rotted (the crc of the bytes after its 24-byte header still
    matches its body_crc field). Damage in the middle is skipped (pending() reports the gap).
    A header that made it with a body that did not, or bytes at the end with no valid header
    and no such match, are a torn append: they are left past the returned end.
    """
    mv = memoryview(buf)
    off = good = 0
    last = first - 1
    while off < size:
        h = seek(f, off, size, buf)
        if h:
            off, seq, tlen, plen, want = h
            length = tlen + plen
            if off + HEADER_SIZE + length > size:  # torn: the header made it, the body did not
                if off > good:  # whole records with rotten headers before it keep their seqs
                    good = off
                    last = max(last, seq - 1)
                break
        elif size - off > HEADER_SIZE:  # a whole record with a rotten header? its body_crc
            f.seek(off + 16)
            want = struct.unpack("<I", f.read(4))[0]
            length = size - off - HEADER_SIZE
        else:
            break
        f.seek(off + HEADER_SIZE)  # the body's crc32, a chunk at a time
        crc = 0
        n = length
        while n:
            k = f.readinto(mv[:min(n, BUF_SIZE)])
            if not k:
                break
            crc = crc32(mv[:k], crc)
            n -= k
        ok = not n and crc & 0xFFFFFFFF == want
        if not h:
            if ok:
                last += 1
                bad(last)
                good = size
            break
        if not ok:
            bad(seq)
        last = max(last, seq)
        off = good = off + HEADER_SIZE + length
    return good, last
