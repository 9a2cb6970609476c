"""Persistence helper tests: run under pytest and under MicroPython (tests/mpy_runner.py)."""

import os
import struct
from binascii import crc32

from edge.persist import BootCounter, makedirs, read_slot, remove, replace, write_slot
from shared_support import make_tmpdir, read_file, rmtree, write_file


def _slot(magic, value):
    """A slot built from its documented layout: magic, u32 value, crc32 of the first 8 bytes."""
    head = magic + struct.pack("<I", value)
    return head + struct.pack("<I", crc32(head) & 0xFFFFFFFF)


def test_write_slot_replaces_content_and_leaves_no_tmp():
    d = make_tmpdir("ps")
    try:
        path = d + "/state"
        write_slot(path, b"TEST", 1)
        write_slot(path, b"TEST", 0xFFFFFFFF)
        assert read_file(path) == _slot(b"TEST", 0xFFFFFFFF)
        assert read_file(path) == b"TEST\xff\xff\xff\xff:KO;"
        assert os.listdir(d) == ["state"]
        assert read_slot(path, b"TEST") == 0xFFFFFFFF
    finally:
        rmtree(d)


def test_read_slot_falls_back_to_tmp_when_main_is_missing_or_bad():
    d = make_tmpdir("ps")
    try:
        path = d + "/ack"
        assert read_slot(path, b"TEST") is None
        write_file(path + ".tmp", _slot(b"TEST", 7))  # a FAT replace cut mid-way
        assert read_slot(path, b"TEST") == 7
        write_file(path, b"rotten")
        assert read_slot(path, b"TEST") == 7
        write_file(path, _slot(b"TEST", 9))
        assert read_slot(path, b"TEST") == 9
    finally:
        rmtree(d)


def test_slot_rejects_wrong_magic_crc_or_length():
    d = make_tmpdir("ps")
    try:
        path = d + "/slot"
        good = _slot(b"TEST", 0xFFFFFFFF)
        write_file(path, good)
        assert read_slot(path, b"TEST") == 0xFFFFFFFF
        assert read_slot(path, b"OTHR") is None
        for bad in (good[:11], good + b"\x00", b""):
            write_file(path, bad)
            assert read_slot(path, b"TEST") is None, bad
        for i in range(len(good)):
            bad = bytearray(good)
            bad[i] ^= 0x01
            write_file(path, bytes(bad))
            assert read_slot(path, b"TEST") is None, i
    finally:
        rmtree(d)


def test_slot_of_bytes_round_trips_and_rejects_damage():
    d = make_tmpdir("ps")
    try:
        path = d + "/refused"
        data = b'{"count": 3, "kinds": {"weighing": 3}}'
        write_slot(path, b"PWrf", data)
        raw = read_file(path)
        assert raw == b"PWrf" + data + struct.pack("<I", crc32(b"PWrf" + data) & 0xFFFFFFFF)
        assert os.listdir(d) == ["refused"]
        assert read_slot(path, b"PWrf", True) == data
        assert read_slot(path, b"PWrf") is None  # not a u32 slot
        assert read_slot(path, b"PWak", True) is None  # another magic
        for i in range(len(raw)):  # a torn write or a rotten byte anywhere: not valid
            write_file(path, raw[:i])
            assert read_slot(path, b"PWrf", True) is None, i
            bad = bytearray(raw)
            bad[i] ^= 0x10
            write_file(path, bytes(bad))
            assert read_slot(path, b"PWrf", True) is None, i
        write_file(path + ".tmp", raw)  # a FAT replace cut mid-way: the tmp holds it
        assert read_slot(path, b"PWrf", True) == data
        write_slot(path, b"PWrf", b"")
        assert read_slot(path, b"PWrf", True) == b""
        write_slot(path, b"PWak", 7)  # the u32 form is unchanged
        assert read_slot(path, b"PWak") == 7 and read_slot(path, b"PWak", True) == b"\x07\0\0\0"
    finally:
        rmtree(d)


def test_replace_and_remove():
    d = make_tmpdir("ps")
    try:
        write_file(d + "/a.tmp", b"new")
        replace(d + "/a.tmp", d + "/a")  # nothing to replace yet
        write_file(d + "/b.tmp", b"newer")
        replace(d + "/b.tmp", d + "/a")
        assert os.listdir(d) == ["a"] and read_file(d + "/a") == b"newer"
        assert remove(d + "/a") and os.listdir(d) == []
        assert remove(d + "/a")  # gone already: still gone
        os.mkdir(d + "/sub")
        write_file(d + "/sub/x", b"")
        assert not remove(d + "/sub")  # a directory: not removed, not gone
        assert os.listdir(d) == ["sub"]
        rmtree(d + "/sub")
    finally:
        rmtree(d)


def test_makedirs_creates_missing_parents():
    d = make_tmpdir("ps")
    try:
        makedirs(d + "/a/b/c")
        makedirs(d + "/a/b/c")  # idempotent
        makedirs(d + "/a/x/")  # a trailing slash
        assert os.listdir(d + "/a/b") == ["c"]
        assert sorted(os.listdir(d + "/a")) == ["b", "x"]
        here = os.getcwd()
        os.chdir(d)
        try:
            makedirs("r/s")  # relative
        finally:
            os.chdir(here)
        assert os.listdir(d + "/r") == ["s"]
    finally:
        rmtree(d)


def test_boot_counter_counts_up_across_reboots():
    d = make_tmpdir("ps")
    try:
        path = d + "/bdseq"
        assert BootCounter(path).peek() == 0
        got = [BootCounter(path).next() for _ in range(5)]
        assert got == [1, 2, 3, 4, 5]
        assert BootCounter(path).peek() == 5
        assert sorted(os.listdir(d)) == ["bdseq.a", "bdseq.b"]
        assert read_file(path + ".a") == _slot(b"PWbc", 4)  # even boots in .a, odd in .b
        assert read_file(path + ".b") == _slot(b"PWbc", 5)
    finally:
        rmtree(d)


def test_boot_counter_survives_a_corrupt_or_torn_slot():
    d = make_tmpdir("ps")
    try:
        path = d + "/bdseq"
        for _ in range(4):
            BootCounter(path).next()
        slots = (path + ".a", path + ".b")
        saved = [read_file(p) for p in slots]
        for which in (0, 1):
            for cut in range(12):  # every torn length, and a rotten byte at every offset
                for damage in ("cut", "flip"):
                    write_file(slots[0], saved[0])
                    write_file(slots[1], saved[1])
                    if damage == "cut":
                        write_file(slots[which], saved[which][:cut])
                    else:
                        bad = bytearray(saved[which])
                        bad[cut] ^= 0x80
                        write_file(slots[which], bytes(bad))
                    bc = BootCounter(path)
                    value = bc.next()
                    assert bc.recovered == 1, (which, cut, damage)
                    # the newest slot lost: 4 is reissued (it was never confirmed written);
                    # the older slot lost: the count goes on from 4
                    assert value in (4, 5), value
                    assert value == 5 or saved[which] == _slot(b"PWbc", 4)
                    assert BootCounter(path).next() == value + 1
    finally:
        rmtree(d)


def test_boot_counter_both_slots_lost_restarts_and_says_so():
    d = make_tmpdir("ps")
    try:
        path = d + "/bdseq"
        BootCounter(path).next()
        BootCounter(path).next()
        write_file(path + ".a", b"")
        write_file(path + ".b", b"junkjunkjunk")
        bc = BootCounter(path)
        assert bc.next() == 1
        assert bc.recovered == 0
        bc = BootCounter(path)
        assert bc.next() == 2
        assert bc.recovered == 1
    finally:
        rmtree(d)
