"""AAR S-918 tags; run under pytest and MicroPython.

The three tags are the published examples of the aei_tag_parser crate's README (QNSL 502
a locomotive, IOCC 3088 and IOCC 85123 railcars), with the fields that crate's tests give.
"""

from protocols import s918

QNSL_502 = "2F3E06C007DB1E139000000000000331"
IOCC_3088 = "9EA488C030426A179000000000000331"
IOCC_85123 = "9EA488C5320CC01B9000000000000331"


def _reason(tag):
    try:
        s918.decode(tag)
    except s918.TagError as exc:
        assert isinstance(exc, ValueError)
        return exc.reason
    return None


def test_decode_published_locomotive():
    t = s918.decode(QNSL_502)
    assert t["group"] == s918.GROUP_LOCOMOTIVE
    assert t["initial"] == "QNSL" and t["number"] == 502
    assert t["side"] == 1 and t["length_dm"] == 286 and t["axles"] == 4
    assert t["tag_type"] == 3 and t["data_format"] == 51


def test_decode_published_railcars():
    a = s918.decode(IOCC_3088)
    assert (a["group"], a["initial"], a["number"], a["side"]) == (19, "IOCC", 3088, 1)
    assert a["length_dm"] == 106 and a["axles"] == 4
    b = s918.decode(IOCC_85123)
    assert (b["initial"], b["number"], b["side"], b["length_dm"]) == ("IOCC", 85123, 0, 192)


def test_encode_published_roundtrip():
    for tag in (QNSL_502, IOCC_3088, IOCC_85123):
        t = s918.decode(tag)
        again = s918.encode(t["initial"], t["number"], side=t["side"], length_dm=t["length_dm"],
                            axles=t["axles"], group=t["group"], tag_type=t["tag_type"],
                            bearing=t["bearing"], platform=t["platform"],
                            data_format=t["data_format"])
        assert again == tag, (again, tag)


def test_encode_fields_roundtrip():
    cases = (("A", 0, 0, 0, 1), ("ZZZZ", 999999, 1, 4095, 32), ("DLCX", 123456, 1, 2150, 6),
             ("TT", 7, 0, 513, 8))
    for initial, number, side, length, axles in cases:
        t = s918.decode(s918.encode(initial, number, side=side, length_dm=length, axles=axles))
        assert (t["initial"], t["number"], t["side"], t["length_dm"], t["axles"]) == \
            (initial, number, side, length, axles)


def test_decode_checksum_corrupted_is_error():
    assert _reason(s918.corrupt(IOCC_3088)) == "checksum"
    assert _reason(s918.corrupt(s918.encode("DLCX", 5))) == "checksum"


def test_decode_flipped_bit_mostly_caught():
    # one flipped bit among the checked ones (5-59, 69-123) changes a parity: always caught
    v = int(IOCC_3088, 16)
    for bit in (5, 20, 45, 59, 70, 100, 123):
        tag = "%032X" % (v ^ (1 << (127 - bit)))
        assert _reason(tag) == "checksum", bit


def test_decode_bad_input_is_error():
    assert _reason("00F") == "hex"
    assert _reason("9EA488C5320CC01B900000000000033T") == "hex"
    assert _reason(None) == "hex"
    assert _reason("9EA488C5320CC01B9000000000000330") == "frame"


def test_encode_out_of_range_is_error():
    for kwargs in ({"axles": 0}, {"length_dm": 4096}):
        try:
            s918.encode("IOCC", 1, **kwargs)
        except ValueError:
            continue
        raise AssertionError(kwargs)
    for bad in ("", "ABCDE", "A1"):
        try:
            s918.initial_code(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_decode_into_matches_decode():
    from binascii import unhexlify

    out = [None] * 6
    for tag in (QNSL_502, IOCC_3088, IOCC_85123, s918.encode("DLCX", 123456, side=1,
                                                             length_dm=2150, axles=6)):
        t = s918.decode(tag)
        assert s918.decode_into(unhexlify(tag), out)
        assert out == [t["group"], s918.initial_code(t["initial"]), t["number"], t["side"],
                       t["length_dm"], t["axles"]]
        assert s918.initial_text(out[1]) == t["initial"]
    out = [None] * 6
    assert not s918.decode_into(unhexlify(s918.corrupt(IOCC_3088)), out)
    assert not s918.decode_into(b"\x00" * 16, out) and out == [None] * 6
