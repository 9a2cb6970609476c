"""Outbox and boot counter on a real LittleFS2, the file system an ESP32 board uses.

MicroPython's own ``os.VfsLfs2`` runs on a RAM "flash chip" whose every program and erase is
counted. Run: MICROPYPATH=<repo>:.frozen micropython -X heapsize=4M outbox_littlefs.py MODE

``powercut [STEP]``  replay a workload (boot count, appends, acks across segments) once per
                     flash operation K (every STEP-th): the image as it was when operation K
                     was cut - not applied, or torn half way - is mounted again and checked:
                     every append that returned is there, byte for byte; the watermark is the
                     last ack that returned or the one in flight; seqs go on; nothing to repair.
``enospc``           an outbox allowed more than the chip holds: OutboxFull when LittleFS
                     runs out, nothing lost, and appends resume after an ack frees segments.
Prints one JSON line of figures; exits non-zero on a failed check.
"""

import json
import os
import sys

from edge.outbox import Outbox, OutboxFull
from edge.persist import BootCounter

BLOCK = 512
TOPIC = b"pw/v1/dl/wb1/events"


def payload(seq):
    return b'{"seq":%d,"gross_kg":%d}' % (seq, 30000 + seq) + b"." * (seq % 13)


class Flash:
    """A RAM block device (MicroPython's extended interface); can be cut at operation K."""

    def __init__(self, blocks, data=None):
        self.data = bytearray(data) if data else bytearray(b"\xff" * (blocks * BLOCK))
        self.ops = 0
        self.cut_at = -1
        self.torn = False
        self.image = None
        self.progress = None
        self.at_cut = None

    def readblocks(self, block, buf, off=0):
        a = block * BLOCK + off
        buf[:] = self.data[a:a + len(buf)]

    def _cut(self, a, buf):
        self.ops += 1
        if self.ops != self.cut_at:
            return
        image = bytearray(self.data)
        if self.torn:  # half the operation reached the chip
            half = len(buf) // 2
            image[a:a + half] = buf[:half]
        self.image = bytes(image)
        self.at_cut = dict(self.progress)

    def writeblocks(self, block, buf, off=None):
        a = block * BLOCK + (off or 0)
        self._cut(a, buf)
        self.data[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // BLOCK
        if op == 5:
            return BLOCK
        if op == 6:
            a = arg * BLOCK
            self._cut(a, b"\xff" * BLOCK)
            self.data[a:a + BLOCK] = b"\xff" * BLOCK
        return 0


def mount(flash, where):
    vfs = os.VfsLfs2(flash)
    os.mount(vfs, where)


def formatted(blocks):
    flash = Flash(blocks)
    os.VfsLfs2.mkfs(flash)
    return bytes(flash.data)


def workload(flash, progress):
    """Boot, append 60 records, ack every 8th, as an agent would. Progress is noted before and
    after each call so the check knows what had returned when the power went."""
    flash.progress = progress
    mount(flash, "/w")
    try:
        progress["boot"] = BootCounter("/w/bdseq").next()
        ob = Outbox("/w/ob", max_bytes=8 * 1024, segment_bytes=1024)
        for seq in range(1, 61):
            ob.append(seq, TOPIC, payload(seq))
            progress["returned"] = seq
            if seq % 8 == 0:
                progress["acking"] = seq - 3
                ob.ack(seq - 3)
                progress["acked"] = seq - 3
    finally:
        os.umount("/w")


def check(image, at_cut):
    """Mount the image left by the cut, reboot the outbox and check nothing was lost."""
    flash = Flash(0, image)
    mount(flash, "/c")
    try:
        boot = BootCounter("/c/bdseq").peek()
        assert boot in (at_cut.get("boot", 0), at_cut.get("boot", 0) + 1), (boot, at_cut)
        ob = Outbox("/c/ob", max_bytes=8 * 1024, segment_bytes=1024)
        returned = at_cut.get("returned", 0)
        acked = at_cut.get("acked", 0)
        acking = at_cut.get("acking", acked)
        assert acked <= ob.acked() <= max(acked, acking), (ob.acked(), at_cut)
        assert ob.next_seq() in (returned + 1, returned + 2), (ob.next_seq(), at_cut)
        want = ob.acked() + 1
        for seq, topic, body in ob.pending(limit=1000):
            assert seq == want and topic == TOPIC and body == payload(seq), (seq, at_cut)
            want += 1
        assert want == ob.next_seq(), (want, at_cut)
        assert ob.stats["crc_errors"] == 0 and ob.stats["recovered_truncated"] == 0, ob.stats
        seq = ob.next_seq()  # and the device carries on
        ob.append(seq, TOPIC, payload(seq))
        assert [r[0] for r in ob.pending(after_seq=seq - 1)] == [seq]
        return (seq == returned + 2), (ob.acked() > acked)
    finally:
        os.umount("/c")


def powercut(step):
    blank = formatted(128)  # 64 KiB chip
    dry = Flash(0, blank)
    workload(dry, {})
    total = dry.ops
    cuts = append_landed = ack_landed = 0
    for k in range(1, total + 1, step):
        for torn in (False, True):
            flash = Flash(0, blank)
            flash.cut_at = k
            flash.torn = torn
            workload(flash, {})
            landed = check(flash.image, flash.at_cut)
            cuts += 1
            append_landed += landed[0]
            ack_landed += landed[1]
    # how often the call in flight had already reached flash: both kinds of cut were seen
    return {"mode": "powercut", "flash_ops": total, "cuts_checked": cuts,
            "in_flight_append_landed": append_landed, "in_flight_ack_landed": ack_landed}


def enospc():
    flash = Flash(0, formatted(24))  # 12 KiB chip, outbox allowed 1 MiB
    mount(flash, "/e")
    try:
        ob = Outbox("/e/ob", max_bytes=1 << 20, segment_bytes=1024)
        seq = 1
        while True:
            try:
                ob.append(seq, TOPIC, payload(seq))
            except OutboxFull:
                break
            seq += 1
        stored = seq - 1
        assert stored > 20 and ob.next_seq() == seq, (stored, ob.next_seq())
        assert ob.stats["disk_errors"] >= 1 and ob.stats["full_rejections"] >= 1, ob.stats
        at_full = dict(ob.stats)
        again = Outbox("/e/ob", max_bytes=1 << 20, segment_bytes=1024)  # reboot while full
        assert [r[0] for r in again.pending(limit=1000)] == list(range(1, seq))
        assert ob.ack(stored - 5) == stored - 5
        ob.append(seq, TOPIC, payload(seq))  # space is back: the same seq goes in
        ob = Outbox("/e/ob", max_bytes=1 << 20, segment_bytes=1024)
        records = list(ob.pending(limit=1000))
        assert [r[0] for r in records] == list(range(stored - 4, seq + 1)), records
        for s, topic, body in records:
            assert topic == TOPIC and body == payload(s), s
        return {"mode": "enospc", "stored_before_full": stored, "stats_at_full": at_full}
    finally:
        os.umount("/e")


mode = sys.argv[1] if len(sys.argv) > 1 else "powercut"
if mode == "powercut":
    print(json.dumps(powercut(int(sys.argv[2]) if len(sys.argv) > 2 else 1)))
else:
    print(json.dumps(enospc()))
