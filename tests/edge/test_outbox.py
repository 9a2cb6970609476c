"""Outbox tests: run under pytest and under MicroPython (tests/mpy_runner.py).

Plain asserts and tests/shared_support.py only: no pytest features.
A "reboot" is a new Outbox on the same directory; a power cut is simulated by cutting or
damaging the files as a cut or flash rot would leave them.
"""

import os
import struct
from binascii import crc32

from edge.outbox import HEADER_SIZE, Outbox, OutboxError, OutboxFull
from edge.outbox_spill import Spill  # loaded: big records come as a Spill
from edge.persist import write_slot
from shared_support import make_tmpdir, read_file, rmtree, write_file

TOPIC = b"pw/v1/dl/wb1/events"
SMALL_SEG = 256  # about 3 records a segment: every test crosses segments


def _payload(seq):
    return b'{"seq":%d,"net_kg":%d}' % (seq, 20000 + seq) + b"#" * (seq % 5)


def _size(seq):
    return HEADER_SIZE + len(TOPIC) + len(_payload(seq))


def _fill(ob, n):
    for _ in range(n):
        seq = ob.next_seq()
        ob.append(seq, TOPIC, _payload(seq))


def _all(ob, after_seq=None):
    return list(ob.pending(after_seq=after_seq, limit=100000))


def _seqs(ob, after_seq=None):
    return [r[0] for r in _all(ob, after_seq)]


def _assert_intact(records, bad=()):
    for seq, topic, payload in records:
        if seq in bad:
            assert topic is None and payload is None, seq
        else:
            assert topic == TOPIC, (seq, topic)
            assert payload == _payload(seq), (seq, payload)


def _segments(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".seg"))


def _seg_first(name):
    return int(name[:10])


def _ack_bytes(upto):
    """The 12-byte ``ack`` file, built from its documented layout."""
    head = b"PWak" + struct.pack("<I", upto)
    return head + struct.pack("<I", crc32(head) & 0xFFFFFFFF)


def _open(d, **kw):
    kw.setdefault("segment_bytes", SMALL_SEG)
    return Outbox(d, **kw)


def test_outbox_empty_starts_at_seq_1():
    d = make_tmpdir("ob")
    try:
        ob = _open(d + "/nested/outbox")
        assert ob.next_seq() == 1
        assert ob.acked() == 0
        assert ob.backlog() == (0, 0)
        assert _all(ob) == []
    finally:
        rmtree(d)


def test_outbox_append_pending_ack_across_segments():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 40)
        assert len(_segments(d)) >= 10
        records = _all(ob)
        assert [r[0] for r in records] == list(range(1, 41))
        _assert_intact(records)
        assert ob.ack(10) == 10
        assert ob.acked() == 10
        assert _seqs(ob) == list(range(11, 41))
        # every segment left holds at least one unacked seq
        assert _seg_first(_segments(d)[1]) > 11
        assert ob.ack(40) == 30
        assert ob.backlog()[0] == 0
        assert _all(ob) == []
        assert len(_segments(d)) == 1  # the tail stays: it keeps the seq floor
        assert ob.stats["appended"] == 40 and ob.stats["acked"] == 40
    finally:
        rmtree(d)


def test_outbox_append_of_parts_stores_them_as_one_payload():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        ob.append(1, TOPIC, (b"{}", memoryview(b"\nes256:ab"), b"\nk1:cd"))
        ob.append(2, TOPIC, b"{}\nk1:ef")
        assert ob.backlog() == (2, 2 * (HEADER_SIZE + len(TOPIC)) + 17 + 8)
        reopened = _open(d)  # read back from flash: one record, crc over the whole
        assert [(r[0], bytes(r[2])) for r in reopened.pending()] == [
            (1, b"{}\nes256:ab\nk1:cd"), (2, b"{}\nk1:ef")]
    finally:
        rmtree(d)


def test_outbox_append_out_of_order_raises_value_error():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        for seq in (0, 2):
            try:
                ob.append(seq, TOPIC, b"x")
                raise AssertionError(f"accepted seq {seq}")
            except ValueError:
                pass
        ob.append(1, "pw/v1/dl/wb1/events", b"x")  # str topic is encoded
        try:
            ob.append(1, TOPIC, b"x")
            raise AssertionError("accepted a repeated seq")
        except ValueError:
            pass
        assert _all(ob) == [(1, TOPIC, b"x")]
    finally:
        rmtree(d)


def test_outbox_record_bigger_than_segment_raises_value_error():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        try:
            ob.append(1, TOPIC, b"x" * SMALL_SEG)
            raise AssertionError("accepted an oversized record")
        except ValueError:
            pass
        assert ob.next_seq() == 1
    finally:
        rmtree(d)


def test_outbox_reopen_continues_seq_without_renumbering():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 25)
        ob.ack(5)
        ob = _open(d)
        assert ob.next_seq() == 26
        assert ob.acked() == 5
        assert ob.backlog()[0] == 20
        _fill(ob, 26)
        ob = _open(d)
        records = _all(ob)
        assert [r[0] for r in records] == list(range(6, 52))
        _assert_intact(records)
        assert ob.stats["recovered_truncated"] == 0 and ob.stats["crc_errors"] == 0
    finally:
        rmtree(d)


def test_outbox_reopen_all_acked_keeps_seq_even_without_ack_file():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 30)
        ob.ack(30)
        assert _open(d).next_seq() == 31
        os.remove(d + "/ack")
        ob = _open(d)
        assert ob.next_seq() == 31  # the kept tail segment is the floor
        # the watermark falls back to the tail's first seq: acked records are resent, not lost
        assert 0 < ob.acked() <= 30
        _assert_intact(_all(ob))
    finally:
        rmtree(d)


def test_outbox_ack_persists_across_reopen():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 20)
        ob.ack(7)
        ob = _open(d)
        assert ob.acked() == 7
        assert _seqs(ob) == list(range(8, 21))
        ob.ack(13)
        assert _open(d).acked() == 13
    finally:
        rmtree(d)


def test_outbox_ack_stale_or_beyond_last_is_ignored():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 10)
        assert ob.ack(5) == 5
        assert ob.ack(3) == 0
        assert ob.ack(5) == 0
        assert ob.ack(11) == 0  # beyond the last appended seq: a forged or confused ack
        assert ob.ack(1 << 31) == 0
        assert ob.stats["acks_beyond"] == 2
        assert ob.acked() == 5
        assert _seqs(ob) == list(range(6, 11))
        assert _open(d).acked() == 5
    finally:
        rmtree(d)


def test_outbox_pending_after_seq_and_limit():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 30)
        ob.ack(4)
        assert [r[0] for r in ob.pending(after_seq=10, limit=5)] == [11, 12, 13, 14, 15]
        assert [r[0] for r in ob.pending(limit=3)] == [5, 6, 7]
        assert [r[0] for r in ob.pending(after_seq=0, limit=2)] == [5, 6]  # acked skipped
        assert list(ob.pending(after_seq=30)) == []
    finally:
        rmtree(d)


def test_outbox_pending_survives_ack_and_append_mid_iteration():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 20)
        it = ob.pending(limit=1000)
        got = [next(it)[0], next(it)[0]]
        ob.ack(15)  # deletes the segments the iterator is reading
        got.append(next(it)[0])
        _fill(ob, 5)
        records = list(it)
        _assert_intact(records)
        got.extend(r[0] for r in records)
        want = [1, 2]
        want.extend(range(16, 26))
        assert got == want
        assert ob.stats["crc_errors"] == 0
    finally:
        rmtree(d)


def _cut_last_record(d, tail_records):
    """Outbox of n records, ``tail_records`` of them in the tail; returns (n, tail, bytes, L)."""
    n = 7
    ob = _open(d, segment_bytes=4096)
    _fill(ob, n - tail_records)
    if tail_records < n:
        ob = _open(d, segment_bytes=ob.backlog()[1])  # the tail is full: the next starts anew
    _fill(ob, tail_records)
    tail = d + "/" + _segments(d)[-1]
    return n, tail, read_file(tail), _size(n)


def test_outbox_truncated_last_record_at_every_offset():
    for tail_records in (7, 1):
        d = make_tmpdir("ob")
        try:
            n, tail, whole, rec_len = _cut_last_record(d, tail_records)
            for cut in range(rec_len):
                write_file(tail, whole[:len(whole) - rec_len + cut])
                ob = _open(d)
                assert ob.next_seq() == n, (cut, ob.next_seq())  # the torn seq is reused
                records = _all(ob)
                assert [r[0] for r in records] == list(range(1, n)), cut
                _assert_intact(records)
                assert ob.stats["recovered_truncated"] == (1 if cut else 0), cut
                assert ob.stats["recovered_truncated_bytes"] == cut
                assert ob.stats["crc_errors"] == 0, cut
                assert len(read_file(tail)) == len(whole) - rec_len, cut
            ob.append(n, TOPIC, _payload(n))
            ob = _open(d)
            _assert_intact(_all(ob))
            assert ob.next_seq() == n + 1
        finally:
            rmtree(d)


def _flip(path, offset):
    data = bytearray(read_file(path))
    data[offset] ^= 0xFF
    write_file(path, bytes(data))


def test_outbox_corrupt_byte_in_middle_record_at_every_offset():
    d = make_tmpdir("ob")
    try:
        ob = _open(d, segment_bytes=4096)
        _fill(ob, 9)
        tail = d + "/" + _segments(d)[0]
        whole = read_file(tail)
        start = sum(_size(s) for s in range(1, 5))
        for i in range(_size(5)):
            write_file(tail, whole)
            _flip(tail, start + i)
            ob = _open(d, segment_bytes=4096)
            assert ob.next_seq() == 10, i
            records = _all(ob)
            assert [r[0] for r in records] == list(range(1, 10)), i
            _assert_intact(records, bad=(5,))
            assert ob.stats["crc_errors"] == 1, (i, ob.stats)
            assert ob.bad_seqs == [5]
            assert ob.stats["recovered_truncated"] == 0, i
            _fill(ob, 1)  # appending after the damage keeps everything readable
            records = _all(_open(d, segment_bytes=4096))
            assert [r[0] for r in records] == list(range(1, 11)), i
            _assert_intact(records, bad=(5,))
            os.remove(tail)
            for name in _segments(d):
                os.remove(d + "/" + name)
    finally:
        rmtree(d)


def test_outbox_corrupt_record_in_older_segment_reported_once():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 20)
        seg = d + "/" + _segments(d)[1]
        first = _seg_first(_segments(d)[1])
        for i in (0, 7, HEADER_SIZE + 3):  # magic, length, topic
            ob = _open(d)
            _flip(seg, i)
            for _ in range(2):  # a second pass does not count it again
                records = _all(ob)
                assert [r[0] for r in records] == list(range(1, 21))
                _assert_intact(records, bad=(first,))
            assert ob.stats["crc_errors"] == 1
            _flip(seg, i)
    finally:
        rmtree(d)


def test_outbox_corrupt_last_record_keeps_its_seq_unless_body_crc_hit():
    d = make_tmpdir("ob")
    try:
        ob = _open(d, segment_bytes=4096)
        _fill(ob, 6)
        tail = d + "/" + _segments(d)[0]
        whole = read_file(tail)
        start = len(whole) - _size(6)
        for i in range(_size(6)):
            write_file(tail, whole)
            _flip(tail, start + i)
            ob = _open(d, segment_bytes=4096)
            if 16 <= i < 20:
                # the body_crc field itself: indistinguishable from a torn write (FAILURES.md)
                assert ob.next_seq() == 6, i
                assert ob.stats["recovered_truncated"] == 1
            else:
                assert ob.next_seq() == 7, i
                records = _all(ob)
                assert [r[0] for r in records] == list(range(1, 7)), i
                _assert_intact(records, bad=(6,))
                assert ob.stats["crc_errors"] == 1 and ob.stats["recovered_truncated"] == 0, i
    finally:
        rmtree(d)


def _by_hand_ack(d, upto, delete, write_meta):
    """Do the two steps of ack() separately, as a power cut between them would leave them."""
    names = _segments(d)
    if delete:
        for i in range(len(names) - 1):
            if _seg_first(names[i + 1]) - 1 <= upto:
                os.remove(d + "/" + names[i])
    if write_meta:
        write_slot(d + "/ack", b"PWak", upto)


def test_outbox_cut_after_segment_delete_before_ack_write():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 40)
        ob.ack(10)
        upto = _seg_first(_segments(d)[-3])  # the first seq of a segment: it stays unreleased
        _by_hand_ack(d, upto, delete=True, write_meta=False)
        ob = _open(d)
        assert ob.acked() == upto - 1  # from the oldest kept segment: resent, not lost
        records = _all(ob)
        assert [r[0] for r in records] == list(range(upto, 41))
        _assert_intact(records)
        assert ob.ack(upto) == 1
        assert _open(d).acked() == upto
    finally:
        rmtree(d)


def test_outbox_cut_after_ack_write_before_segment_delete():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 40)
        _by_hand_ack(d, 30, delete=False, write_meta=True)
        ob = _open(d)
        assert ob.acked() == 30
        assert _seqs(ob) == list(range(31, 41))
        assert _seg_first(_segments(d)[1]) > 31  # the fully acked segments are gone
    finally:
        rmtree(d)


def test_outbox_cut_during_ack_replace_uses_tmp_or_falls_back():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 40)
        ob.ack(12)
        # FAT-style replace cut after removing "ack": only ack.tmp is left
        write_file(d + "/ack.tmp", _ack_bytes(20))
        os.remove(d + "/ack")
        assert _open(d).acked() == 20
        # a rotten ack file: fall back to the oldest segment, resend rather than lose
        write_file(d + "/ack", b"\x00garbage\xff")
        os.remove(d + "/ack.tmp")
        ob = _open(d)
        assert 0 < ob.acked() <= 20
        _assert_intact(_all(ob))
        assert _seqs(ob)[-1] == 40
    finally:
        rmtree(d)


def test_outbox_reserve_keeps_the_last_bytes_for_records_appended_without_it():
    d = make_tmpdir("ob")
    try:
        ob = _open(d, max_bytes=2048, segment_bytes=512)
        reserved = 0  # records appended with a 512-byte reserve
        while True:
            seq = ob.next_seq()
            try:
                ob.append(seq, TOPIC, _payload(seq), reserve=512)
                reserved += 1
            except OutboxFull as exc:
                assert exc.args == ("max_bytes", ob.backlog()[1])
                break
        held = ob.backlog()[1]
        assert held <= 2048 - 512 < held + _size(seq)
        assert ob.next_seq() == seq and ob.stats["full_rejections"] == 1
        free = 0  # the same records without it: into the reserve, up to the bound
        while True:
            seq = ob.next_seq()
            try:
                ob.append(seq, TOPIC, _payload(seq))
                free += 1
            except OutboxFull:
                break
        assert free >= 512 // _size(seq) and ob.backlog()[1] <= 2048
        assert _seqs(_open(d, max_bytes=2048, segment_bytes=512)) == list(
            range(1, reserved + free + 1))
    finally:
        rmtree(d)


def test_outbox_pending_reads_a_record_that_fits_into_the_callers_buffer():
    d = make_tmpdir("ob")
    try:
        ob = _open(d, segment_bytes=4096)
        big = b"B" * 600
        ob.append(1, TOPIC, _payload(1))
        ob.append(2, TOPIC, big)  # over the buffer: left on flash, read in pieces
        ob.append(3, TOPIC, _payload(3))
        out = bytearray(128)
        got = []
        for seq, topic, payload in ob.pending(out=out):
            # a view is valid until the next step: copy what the test keeps
            if isinstance(payload, Spill):
                parts = [bytes(p) for p in payload.parts()]
                assert [len(p) for p in parts] == [128] * 4 + [88] and len(payload) == 600
                assert payload.read(-3, 0) == b"BBB" and payload.read(0, 0) == big
                assert payload[-3:] == b"BBB" and payload[:] == big and payload[2:4] == b"BB"
                payload = b"".join(parts)
                kind = "spill"
            else:
                kind = type(payload).__name__
            got.append((seq, kind, bytes(topic), bytes(payload)))
        assert got == [(1, "memoryview", TOPIC, _payload(1)), (2, "spill", TOPIC, big),
                       (3, "memoryview", TOPIC, _payload(3))]
        assert [r[2] for r in ob.pending()] == [_payload(1), big, _payload(3)]  # no buffer
        assert bytes(out[:len(TOPIC)]) == TOPIC  # the last record that fitted is in it
        path = d + "/" + sorted(os.listdir(d))[0]
        data = bytearray(read_file(path))
        data[_size(1) - 2] ^= 0x01  # rot in record 1's payload: found through the view too
        write_file(path, bytes(data))
        assert [(r[0], r[2]) for r in _open(d, segment_bytes=4096).pending(out=out)][:1] == [
            (1, None)]
        data[_size(1) + HEADER_SIZE + len(TOPIC) + 300] ^= 0x01  # and in the big one's
        write_file(path, bytes(data))
        assert [r[2] for r in _open(d, segment_bytes=4096).pending(out=out)][1] is None
    finally:
        rmtree(d)


def test_outbox_full_at_bound_then_ack_frees_space():
    d = make_tmpdir("ob")
    try:
        ob = _open(d, max_bytes=2048, segment_bytes=512)
        appended = 0
        while True:
            seq = ob.next_seq()
            try:
                ob.append(seq, TOPIC, _payload(seq))
                appended += 1
            except OutboxFull:
                break
        assert appended > 20
        assert ob.stats["full_rejections"] == 1
        assert ob.next_seq() == seq  # nothing consumed: the same record can be retried
        assert ob.backlog()[1] <= 2048
        assert ob.backlog()[1] + _size(seq) > 2048
        try:
            ob.append(seq, TOPIC, _payload(seq))
            raise AssertionError("accepted past max_bytes")
        except OutboxFull:
            pass
        assert ob.stats["full_rejections"] == 2
        ob.ack(seq - 1)
        assert ob.backlog()[1] <= 512
        ob.append(seq, TOPIC, _payload(seq))
        assert _seqs(_open(d, max_bytes=2048, segment_bytes=512)) == [seq]
    finally:
        rmtree(d)


def test_outbox_failed_write_is_cut_and_the_same_seq_retried():
    d = make_tmpdir("ob")
    try:
        ob = _open(d, segment_bytes=4096)
        _fill(ob, 5)
        tail = d + "/" + _segments(d)[-1]
        good = read_file(tail)
        # what a failed write may leave behind: part of the record, or all of it
        scratch = _open(d + "/scratch", segment_bytes=4096)
        _fill(scratch, 5)
        scratch.append(6, TOPIC, b"never stored")
        whole = read_file(d + "/scratch/" + _segments(d + "/scratch")[-1])[len(good):]
        for n, leftover in enumerate((good + b"PWR1\x06\x00", good + whole)):
            os.rename(tail, tail + ".away")
            os.mkdir(tail)  # the next write fails (not ENOSPC), as a flash write error would
            try:
                ob.append(6, TOPIC, _payload(6))
                raise AssertionError("a failed write returned")
            except OutboxError as e:
                assert type(e) is OutboxError and e.args[0] == "write", e
            os.rmdir(tail)
            os.rename(tail + ".away", tail)
            write_file(tail, leftover)
            assert ob.stats["disk_errors"] == n + 1 and ob.next_seq() == 6
            assert ob.backlog() == (5, len(good))
        ob.append(6, TOPIC, _payload(6))  # cuts the leftover first, then writes
        ob = _open(d, segment_bytes=4096)
        records = _all(ob)
        assert [r[0] for r in records] == [1, 2, 3, 4, 5, 6]
        _assert_intact(records)
        assert ob.stats["recovered_truncated"] == 0 and ob.stats["crc_errors"] == 0
    finally:
        rmtree(d)


def test_outbox_backlog_counts_records_and_flash_bytes():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 30)
        total = sum(_size(s) for s in range(1, 31))
        assert ob.backlog() == (30, total)
        assert total == sum(len(read_file(d + "/" + n)) for n in _segments(d))
        ob.ack(12)
        count, held = ob.backlog()
        assert count == 18
        assert held == sum(len(read_file(d + "/" + n)) for n in _segments(d))
        assert sum(_size(s) for s in range(13, 31)) <= held < total
        assert _open(d).backlog() == (count, held)
    finally:
        rmtree(d)


def test_outbox_empty_tail_segment_left_by_a_cut():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 10)
        write_file(d + f"/{11:010d}.seg", b"")  # created, then the power went
        ob = _open(d)
        assert ob.next_seq() == 11
        _fill(ob, 3)
        ob = _open(d)
        records = _all(ob)
        assert [r[0] for r in records] == list(range(1, 14))
        _assert_intact(records)
    finally:
        rmtree(d)


def test_outbox_stray_files_ignored_and_tmp_removed():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 10)
        write_file(d + "/0000000001.seg.tmp", b"half a copy")
        write_file(d + "/notes.txt", b"not a segment")
        ob = _open(d)
        assert "0000000001.seg.tmp" not in os.listdir(d)
        assert "notes.txt" in os.listdir(d)
        _assert_intact(_all(ob))
        assert ob.next_seq() == 11
    finally:
        rmtree(d)


def test_outbox_missing_middle_segment_reported_as_lost_seqs():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        _fill(ob, 20)
        names = _segments(d)
        lost = list(range(_seg_first(names[2]), _seg_first(names[3])))
        os.remove(d + "/" + names[2])
        ob = _open(d)
        records = _all(ob)
        assert [r[0] for r in records] == list(range(1, 21))
        _assert_intact(records, bad=lost)
        assert ob.stats["crc_errors"] == len(lost)
    finally:
        rmtree(d)


def test_outbox_record_layout_matches_docstring_vector():
    d = make_tmpdir("ob")
    try:
        ob = _open(d)
        ob.append(1, b"t/1", b"{}")
        got = read_file(d + "/0000000001.seg")
        want = (b"PWR1" + b"\x01\x00\x00\x00" + b"\x02\x00\x00\x00" + b"\x03\x00" + b"\x00\x00"
                + b"\x61\x2c\xf7\xf5" + b"\x0e\xbd\x0a\x09" + b"t/1{}")
        assert got == want, got
    finally:
        rmtree(d)
