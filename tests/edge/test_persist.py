"""Persistence helper tests: run under pytest and under MicroPython (tests/mpy_runner.py)."""

import os

from edge.persist import (
    BootCounter,
    load_json,
    makedirs,
    pack_slot,
    read_atomic,
    save_json,
    unpack_slot,
    write_atomic,
)
from shared_support import make_tmpdir, read_file, rmtree, write_file


def test_write_atomic_replaces_content_and_leaves_no_tmp():
    d = make_tmpdir("ps")
    try:
        path = d + "/state"
        write_atomic(path, b"one")
        write_atomic(path, b"two")
        assert read_file(path) == b"two"
        assert os.listdir(d) == ["state"]
    finally:
        rmtree(d)


def test_read_atomic_falls_back_to_tmp_when_main_is_missing_or_bad():
    d = make_tmpdir("ps")
    try:
        path = d + "/ack"

        def parse(data):
            return unpack_slot(b"TEST", data)

        assert read_atomic(path, parse) is None
        write_file(path + ".tmp", pack_slot(b"TEST", 7))  # a FAT replace cut mid-way
        assert read_atomic(path, parse) == 7
        write_file(path, b"rotten")
        assert read_atomic(path, parse) == 7
        write_file(path, pack_slot(b"TEST", 9))
        assert read_atomic(path, parse) == 9
    finally:
        rmtree(d)


def test_slot_rejects_wrong_magic_crc_or_length():
    good = pack_slot(b"TEST", 0xFFFFFFFF)
    assert unpack_slot(b"TEST", good) == 0xFFFFFFFF
    assert unpack_slot(b"OTHR", good) is None
    assert unpack_slot(b"TEST", good[:11]) is None
    assert unpack_slot(b"TEST", None) is None
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x01
        assert unpack_slot(b"TEST", bytes(bad)) is None, i


def test_json_state_roundtrip_missing_and_corrupt():
    d = make_tmpdir("ps")
    try:
        path = d + "/state.json"
        assert load_json(path) is None
        assert load_json(path, {"n": 0}) == {"n": 0}
        save_json(path, {"n": 3, "plate": "辽B12345"})
        assert load_json(path) == {"n": 3, "plate": "辽B12345"}
        whole = read_file(path)
        for cut in range(1, len(whole)):
            write_file(path, whole[:cut])  # torn write on a file system without LittleFS's COW
            assert load_json(path, "default") == "default", cut
    finally:
        rmtree(d)


def test_makedirs_creates_missing_parents():
    d = make_tmpdir("ps")
    try:
        makedirs(d + "/a/b/c")
        makedirs(d + "/a/b/c")  # idempotent
        assert os.listdir(d + "/a/b") == ["c"]
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
                    assert value == 5 or unpack_slot(b"PWbc", saved[which]) == 4
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
