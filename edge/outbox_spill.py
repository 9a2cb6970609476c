"""A record too big for the uplink's buffer, sent from flash piece by piece.

MicroPython-compatible. ``edge.outbox_records.find`` checks such a record's crc in pieces
and hands its payload out as a ``Spill``; ``edge.net.mqtt`` writes its ``parts()`` to the
socket one after another. Apart from edge/outbox_records.py so that an agent whose records
all fit its buffer (the weighbridge) does not carry this code; edge/main.py loads it at boot
for the agents with big events (their ``EVENT_BYTES``).
"""


class Spill:
    """A record's payload too big for the caller's buffer, left on flash and read in
    pieces into that buffer as it is sent (edge/uplink.py): no piece of heap its size is
    needed (a 40-car train is 2.5 KB). ``len()``; ``parts()``: memoryviews of the buffer,
    each valid until the next, the file opened for each and closed before it is yielded;
    ``read(a, b)`` and ``[a:b]``: bytes of the payload (negative: from its end, ``b`` 0:
    to it). A segment gone meanwhile (acked while it was resent) is an OSError."""

    def __init__(self, path, pos, n, buf):
        self.path = path
        self.pos = pos
        self.n = n
        self.buf = buf

    def __len__(self):
        return self.n

    def __getitem__(self, k):  # a slice of the payload as bytes, read from flash
        return self.read(k.start or 0, k.stop or 0)

    def read(self, a, b):
        if a < 0:
            a += self.n
        if b <= 0:
            b += self.n
        with open(self.path, "rb") as f:
            f.seek(self.pos + a)
            return f.read(b - a)

    def parts(self):
        mv = memoryview(self.buf)
        done = 0
        while done < self.n:
            with open(self.path, "rb") as f:
                f.seek(self.pos + done)
                k = f.readinto(mv[:min(self.n - done, len(mv))])
            if not k:
                raise OSError(5)  # EIO: shorter than its header said (cut meanwhile)
            done += k
            yield mv[:k]


def read_big(f, seq, off, end, tlen, plen, body_crc, out, path):
    """``edge.outbox_records.find``'s answer for a record bigger than ``out``: its topic as
    bytes and its payload as a ``Spill``, its crc checked in pieces read into ``out``."""
    from binascii import crc32

    topic = f.read(tlen)
    c = crc32(topic)
    mv = memoryview(out)
    n = len(topic)
    while n < tlen + plen:
        k = f.readinto(mv[:min(tlen + plen - n, len(out))])
        if not k:
            break
        c = crc32(mv[:k], c)
        n += k
    if n != tlen + plen or c & 0xFFFFFFFF != body_crc:
        return seq, off, end, None, None
    return seq, off, end, topic, Spill(path, off + 24 + tlen, plen, out)  # 24: HEADER_SIZE


import edge.outbox_records  # noqa: E402 - set once this module is loaded

edge.outbox_records.BIG = read_big

