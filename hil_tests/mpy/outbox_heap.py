"""Outbox under an ESP32-sized heap: a 1,000-record backlog of 300-byte payloads.

Run: MICROPYPATH=<repo>:.frozen micropython -X heapsize=96K outbox_heap.py DIR [N] [PAYLOAD]
Appends N records, reopens (a reboot: recovery), reads the whole backlog back through
pending() in agent-sized batches and in one pass, checks every byte, acks it all, and prints
one JSON line of figures. Exits non-zero (MemoryError or assert) if the heap does not suffice.
"""

import gc
import json
import sys
import time

gc.collect()
_base = gc.mem_alloc()

from edge.outbox import Outbox  # noqa: E402  (measure the heap the import costs)

gc.collect()
_imported = gc.mem_alloc()

TOPIC = b"pw/v1/dl/wb-gate-01/events"


def ticks():
    try:
        return time.ticks_ms()
    except AttributeError:  # CPython, for a dry run
        return int(time.monotonic() * 1000)


def fill(buf, seq):
    """A 300-byte payload whose bytes depend on seq, written in place: no allocation."""
    for i in range(len(buf)):
        buf[i] = (seq * 7 + i) & 0xFF


def check(seq, topic, payload, plen):
    assert topic == TOPIC, seq
    assert len(payload) == plen, seq
    for i in (0, plen // 2, plen - 1):
        assert payload[i] == (seq * 7 + i) & 0xFF, seq


class Low:
    """Tracks the lowest free heap seen, and the largest live set after a collection."""

    def __init__(self):
        self.free = gc.mem_free()
        self.live = 0

    def sample(self, collect=False):
        if collect:
            gc.collect()
            self.live = max(self.live, gc.mem_alloc())
        self.free = min(self.free, gc.mem_free())


def main(d, n, plen):
    low = Low()
    buf = bytearray(plen)
    max_bytes = n * (24 + len(TOPIC) + plen) + 16 * 1024  # room for the backlog
    gc.collect()
    before = gc.mem_alloc()
    ob = Outbox(d, max_bytes=max_bytes)
    t0 = ticks()
    for _ in range(n):
        seq = ob.next_seq()
        fill(buf, seq)
        ob.append(seq, TOPIC, buf)
        low.sample(seq % 50 == 0)
    append_ms = ticks() - t0
    del ob
    gc.collect()

    t0 = ticks()
    ob = Outbox(d, max_bytes=max_bytes)  # reboot: recovery scans the tail segment
    recover_ms = ticks() - t0
    assert ob.next_seq() == n + 1 and ob.backlog()[0] == n, ob.backlog()
    gc.collect()
    outbox_live = gc.mem_alloc() - before  # the Outbox object with its index and buffers
    low.sample(True)

    t0 = ticks()
    after = ob.acked()
    seen = 0
    while True:  # as the agent would: batches of 32 after the last one sent
        got = 0
        for seq, topic, payload in ob.pending(after_seq=after, limit=32):
            assert seq == after + 1, seq
            check(seq, topic, payload, plen)
            after = seq
            got += 1
        seen += got
        low.sample(True)
        if not got:
            break
    batch_ms = ticks() - t0
    assert seen == n, seen

    t0 = ticks()
    seen = 0
    for seq, topic, payload in ob.pending(limit=n + 1):
        check(seq, topic, payload, plen)
        seen += 1
        low.sample(seq % 50 == 0)
    one_pass_ms = ticks() - t0
    assert seen == n, seen

    t0 = ticks()
    released = 0
    for upto in range(100, n + 1, 100):
        released += ob.ack(upto)
    ack_ms = ticks() - t0
    assert released == n and ob.backlog()[0] == 0
    low.sample(True)
    assert ob.stats["crc_errors"] == 0 and ob.stats["recovered_truncated"] == 0

    print(json.dumps({
        "records": n, "payload_bytes": plen, "outbox_bytes": n * (24 + len(TOPIC) + plen),
        "heap_total": gc.mem_alloc() + gc.mem_free(), "import_bytes": _imported - _base,
        "min_free": low.free, "max_live": low.live, "outbox_live": outbox_live,
        "append_ms": append_ms, "recover_ms": recover_ms, "pending_batches_ms": batch_ms,
        "pending_one_pass_ms": one_pass_ms, "ack_ms": ack_ms,
    }))


main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000,
     int(sys.argv[3]) if len(sys.argv) > 3 else 300)
