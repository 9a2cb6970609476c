"""The AEI reader's line protocol; run under pytest and MicroPython.

The checksums in the literal lines were computed by hand from the payload's bytes, not
by ``protocols.aeiline``.
"""

from protocols import aeiline


def _reason(line):
    try:
        aeiline.parse(line)
    except aeiline.AeiError as exc:
        assert isinstance(exc, ValueError)
        return exc.reason
    return None


def test_aeiline_frame_literal_checksum():
    # X^Y = 0x01, then ^Z -> 0x5B
    assert aeiline.frame("XYZ") == b"XYZ*5B\r\n"
    assert aeiline.xor("TRN") == 0x54 ^ 0x52 ^ 0x4E


def test_aeiline_roundtrip_each_kind():
    trn = aeiline.frame("TRN,T7,1764550000000,O,152,168")[:-2]
    assert aeiline.parse(trn) == ("TRN", "T7", 1764550000000, "out", 152, 168)
    tag = aeiline.frame("TAG,3,9EA488C030426A179000000000000331,2,81234")[:-2]
    assert aeiline.parse(tag) == ("TAG", 3, "9EA488C030426A179000000000000331", 2, 81234)
    tag = aeiline.frame("TAG,4,9EA488C030426A179000000000000331,1,")[:-2]
    assert aeiline.parse(tag.decode())[4] is None
    end = aeiline.frame("END,T7,1764550060000,42")[:-2]
    assert aeiline.parse(end) == ("END", "T7", 1764550060000, 42)


def test_aeiline_bad_lines_reasons():
    good = aeiline.frame("END,T7,1764550060000,42")[:-2]
    assert _reason(good[:-1] + (b"0" if good[-1:] != b"0" else b"1")) == "bad_checksum"
    assert _reason(b"END,T7,1,2") == "malformed"
    assert _reason(b"\xff\xfe*00") == "malformed"
    assert _reason(aeiline.frame("FOO,1")[:-2]) == "unsupported"
    assert _reason(aeiline.frame("TRN,T7,1,X,1,1")[:-2]) == "malformed"
    assert _reason(aeiline.frame("TRN,T7,1,I,1,abc")[:-2]) == "bad_field"
    assert _reason(aeiline.frame("TAG,0,9EA488C030426A179000000000000331,1,")[:-2]) == \
        "bad_field"
    assert _reason(aeiline.frame("TAG,1,9EA4,1,")[:-2]) == "malformed"
    assert _reason(b"X" * 120 + b"*00") == "malformed"
