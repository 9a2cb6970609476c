"""NMEA 0183 parser and UART line splitter; run under pytest and MicroPython.

Sentences marked "published" are copied with their checksums from receiver
documentation (u-blox protocol specification; the classic GGA/RMC examples); the
others were written for Dalian's latitude and checksummed independently of
``protocols.nmea`` (their checksums are literals here).
"""

from protocols import nmea

PUBLISHED = (
    "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
    "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
    "$GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,*5B",
    "$GPRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A*57",
    "$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00*74",
)
DALIAN_GGA = "$BDGGA,062735.00,3854.9284,N,12139.1247,E,1,14,0.8,12.6,M,-9.1,M,,*50"
DALIAN_GGA_DGPS = "$GNGGA,062736.00,3854.9301,N,12139.1188,E,2,21,0.6,-3.2,M,-9.1,M,1.0,0000*6D"
DALIAN_RMC_41 = "$GNRMC,062735.00,A,3854.9284,N,12139.1247,E,23.5,276.3,120325,,,A,V*09"
SYDNEY_WEST_RMC = "$GLRMC,235959.99,A,3354.1234,S,15112.5678,W,0.0,,311299,,,D*69"
LEAP_DAY_RMC = "$GPRMC,000000.00,A,0000.0000,N,00000.0000,E,0.0,0.0,290224,,,A*51"
NO_FIX = ("$GPGGA,,,,,,0,00,99.99,,,,,,*48", "$GPRMC,,V,,,,,,,,,,N*53",
          "$GPGGA,062735.00,,,,,0,00,,,M,,M,,*4D",
          "$GNRMC,062735.00,V,3854.9284,N,12139.1247,E,,,120325,,,N,V*25")


def _near(a, b, tol=1e-6):
    return a is not None and abs(a - b) <= tol


def _reason(line):
    """The NMEAError reason for ``line``, or None when it parses; any other error fails."""
    try:
        nmea.parse(line)
    except nmea.NMEAError as exc:
        assert isinstance(exc, ValueError)
        assert exc.reason in str(exc)
        return exc.reason
    return None


def _body(line):
    return line[1 : line.index("*")]


def _resigned(line, old, new):
    """``line`` with ``old`` replaced by ``new`` and a correct checksum again."""
    body = _body(line)
    assert old in body, old
    return nmea.sentence(body.replace(old, new, 1))


def test_checksum_matches_published_sentences():
    for line in PUBLISHED + (DALIAN_GGA, DALIAN_RMC_41, SYDNEY_WEST_RMC, LEAP_DAY_RMC) + NO_FIX:
        assert nmea.checksum(_body(line)) == int(line[-2:], 16), line
        assert nmea.sentence(_body(line)) == line


def test_gga_published_example():
    g = nmea.parse(PUBLISHED[0])
    assert (g["sentence"], g["talker"], g["quality"], g["satellites"]) == ("GGA", "GP", 1, 8)
    assert g["time_ms"] == (12 * 3600 + 35 * 60 + 19) * 1000
    assert g["lat_e6"] == 48117300 and g["lon_e6"] == 11516667
    assert _near(g["lat"], 48.1173) and _near(g["lon"], 11.516667)
    assert _near(g["hdop"], 0.9) and _near(g["alt_m"], 545.4) and _near(g["geoid_m"], 46.9)


def test_gga_ublox_example_keeps_five_decimals_of_minutes():
    g = nmea.parse(PUBLISHED[2])
    assert g["time_ms"] == (9 * 3600 + 27 * 60 + 25) * 1000
    assert g["lat_e6"] == 47285233  # 47 + 17.11399 / 60 = 47.2852331...
    assert g["lon_e6"] == 8565265  # 8 + 33.91590 / 60 = 8.5652650
    assert _near(g["hdop"], 1.01) and _near(g["alt_m"], 499.6)


def test_gga_any_talker_negative_altitude_and_dgps():
    g = nmea.parse(DALIAN_GGA)
    assert (g["talker"], g["satellites"]) == ("BD", 14)
    assert g["lat_e6"] == 38915473 and g["lon_e6"] == 121652078
    assert _near(g["geoid_m"], -9.1)
    d = nmea.parse(DALIAN_GGA_DGPS)
    assert (d["talker"], d["quality"], d["satellites"]) == ("GN", 2, 21)
    assert _near(d["alt_m"], -3.2)


def test_rmc_published_example():
    r = nmea.parse(PUBLISHED[1])
    assert (r["sentence"], r["talker"], r["mode"]) == ("RMC", "GP", None)
    assert r["ts"] == 764426119000  # 1994-03-23 12:35:19 UTC
    assert _near(r["speed_kmh"], 22.4 * 1.852, 1e-9 * 100)
    assert _near(r["course"], 84.4, 1e-4)
    assert r["lat_e6"] == 48117300 and r["lon_e6"] == 11516667


def test_rmc_ublox_example():
    r = nmea.parse(PUBLISHED[3])
    assert r["ts"] == 1039422959000  # 2002-12-09 08:35:59 UTC
    assert r["mode"] == "A"
    assert _near(r["speed_kmh"], 0.004 * 1.852) and _near(r["course"], 77.52, 1e-4)


def test_rmc_nmea41_with_nav_status_field():
    r = nmea.parse(DALIAN_RMC_41)
    assert r["ts"] == 1741760855000  # 2025-03-12 06:27:35 UTC
    assert _near(r["speed_kmh"], 23.5 * 1.852, 1e-6) and _near(r["course"], 276.3, 1e-4)
    assert r["lat_e6"] == 38915473


def test_rmc_south_and_west_are_negative_and_empty_course_is_none():
    r = nmea.parse(SYDNEY_WEST_RMC)
    assert r["lat_e6"] == -33902057 and r["lon_e6"] == -151209463
    assert r["lat"] < 0 and r["lon"] < 0
    assert r["course"] is None and r["speed_kmh"] == 0
    assert r["ts"] == 946684799990  # 1999-12-31 23:59:59.99 UTC: two-digit year 99 is 1999
    assert r["mode"] == "D"


def test_rmc_leap_day_and_zero_position():
    r = nmea.parse(LEAP_DAY_RMC)
    assert r["ts"] == 1709164800000  # 2024-02-29 00:00:00 UTC
    assert r["lat_e6"] == 0 and r["lon_e6"] == 0


def test_parse_takes_bytes_str_bytearray_with_or_without_crlf():
    line = PUBLISHED[0]
    want = nmea.parse(line)
    for form in (line.encode(), bytearray(line.encode()), line + "\r\n", line.encode() + b"\n",
                 memoryview(line.encode() + b"\r\n")):
        assert nmea.parse(form) == want


def test_checksum_hex_may_be_lowercase():
    assert nmea.parse(PUBLISHED[1][:-2] + "6a")["ts"] == 764426119000


def test_no_fix_is_its_own_reason():
    for line in NO_FIX:
        assert _reason(line) == "no_fix", line
    # a fix flag with the coordinates left empty is no fix either
    assert _reason(_resigned(PUBLISHED[0], "4807.038,N,01131.000,E", ",,,")) == "no_fix"


def test_bad_checksum():
    assert _reason(PUBLISHED[0][:-2] + "48") == "bad_checksum"
    assert _reason(PUBLISHED[0].replace("4807.038", "4807.039")) == "bad_checksum"
    assert _reason(PUBLISHED[1].replace("A,4807", "V,4807")) == "bad_checksum"


def test_framing_errors_are_malformed():
    line = PUBLISHED[0]
    for bad in (line[:-3], line[:-1], line + "7", line[:-2] + "G7", line[:-2] + " 7",
                line[1:], "!" + line[1:], line[: len(line) // 2], "", "$", "*", "$*00",
                "$GPGGA*56", _resigned(line, "GPGGA", "GP1GA"), _resigned(line, "GPGGA", "GPGGAX"),
                _resigned(line, "GPGGA", "gpgga"), "$GPGGA,1" + line,
                nmea.sentence("GPGGA,123519$GPGGA,1")):
        assert _reason(bad) == "malformed", bad


def test_truncated_fields_are_malformed():
    for line in (PUBLISHED[0], PUBLISHED[1]):
        fields = _body(line).split(",")
        for n in range(1, len(fields)):
            assert _reason(nmea.sentence(",".join(fields[:n]))) == "malformed", n
    extra = nmea.sentence(_body(PUBLISHED[0]) + ",1")
    assert _reason(extra) == "malformed"


def test_non_numeric_fields_are_bad_field():
    gga, rmc = PUBLISHED[0], PUBLISHED[1]
    for line, old, new in ((gga, "4807.038", "48O7.038"), (gga, "4807.038", "4807.0.38"),
                           (gga, "4807.038", "-4807.038"), (gga, "01131.000", "0113l.000"),
                           (gga, ",08,", ",8a,"), (gga, ",08,", ",-8,"), (gga, "0.9", "0.9x"),
                           (gga, "0.9", "nan"), (gga, "0.9", ".9"), (gga, "545.4", "--545.4"),
                           (gga, "545.4", "5e2"), (gga, "545.4", " 545.4"), (gga, ",1,08", ",x,08"),
                           (gga, ",1,08", ",9,08"), (gga, "123519", "12:35:19"),
                           (gga, "123519", "12351"), (gga, "545.4,M", "545.4,F"),
                           (rmc, "022.4", "fast"), (rmc, "022.4", "inf"), (rmc, "022.4", "1_0"),
                           (rmc, "084.4", "361.0"), (rmc, "230394", "23031994"),
                           (rmc, "230394", "2303x4"), (rmc, ",A,", ",X,"), (rmc, ",A,", ",,"),
                           (rmc, "123519,A", ",A")):
        assert _reason(_resigned(line, old, new)) == "bad_field", (old, new)


def test_wrong_hemisphere_letters_are_bad_field():
    gga = PUBLISHED[0]
    for old, new in ((",N,", ",X,"), (",N,", ",n,"), (",N,", ",E,"), (",E,1", ",N,1"),
                     (",E,1", ",W W,1"), (",N,", ",,"), ("4807.038,N", ",N")):
        assert _reason(_resigned(gga, old, new)) == "bad_field", (old, new)


def test_out_of_range_coordinates_are_bad_field():
    gga = PUBLISHED[0]
    for old, new in (("4807.038", "9100.000"), ("4807.038", "9000.001"),
                     ("4807.038", "4860.000"), ("4807.038", "48077.038"),
                     ("01131.000", "18000.001"), ("01131.000", "19131.000"),
                     ("01131.000", "01160.5"), ("01131.000", "131.000000000001")):
        assert _reason(_resigned(gga, old, new)) == "bad_field", (old, new)
    edge = nmea.parse(_resigned(gga, "4807.038,N,01131.000,E", "9000.000,S,18000.000,W"))
    assert edge["lat_e6"] == -90000000 and edge["lon_e6"] == -180000000


def test_impossible_times_and_dates_are_bad_field():
    rmc = PUBLISHED[1]
    for old, new in (("123519", "243519"), ("123519", "126019"), ("123519", "123561"),
                     ("230394", "310294"), ("230394", "290223"), ("230394", "001394"),
                     ("230394", "230094"), ("230394", "000394")):
        assert _reason(_resigned(rmc, old, new)) == "bad_field", (old, new)
    leap_second = nmea.parse(_resigned(rmc, "123519", "235960"))
    assert leap_second["time_ms"] == 86400000


def test_overlong_line_is_too_long():
    body = "GNGGA,062736.00,3854.93012,N,12139.11881,E,2,21,0.6,-3.2,M,-9.1,M,1.0,0000"
    while len(body) < 82 - 4:
        body = body.replace("-3.2", "-3.20", 1)
    longest = nmea.sentence(body)
    assert len(longest) == 82
    assert nmea.parse(longest + "\r\n")["quality"] == 2
    too_long = nmea.sentence(body.replace("-3.2", "-3.20", 1))
    assert len(too_long) == 83 and _reason(too_long) == "too_long"
    assert _reason("$" + "A" * 500) == "too_long"


def test_non_ascii_and_control_bytes_are_bad_char():
    line = PUBLISHED[0].encode()
    for bad in (b"\xff" + line, line[:10] + b"\x00" + line[10:], line[:10] + b"\t" + line[10:],
                line.replace(b"N", b"\xc3\x91"), line[:-2] + b"\x80\x81", b"\x1b[2J" + line,
                line + b"\r\x00\n"):
        assert _reason(bad) == "bad_char", bad
    assert _reason(PUBLISHED[0].replace("N", "\u00d1")) == "bad_char"


def test_other_sentences_are_unsupported():
    assert _reason(PUBLISHED[4]) == "unsupported"
    assert _reason("$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A*25") == "unsupported"
    assert _reason(nmea.sentence("PUBX,00,1")) == "unsupported"


def test_parse_of_a_non_line_is_malformed():
    for bad in (None, 5, 1.5, ["$GPGGA"], {"a": 1}):
        assert _reason(bad) == "malformed", bad


# --- the UART line splitter ---------------------------------------------------------------

STREAM = (PUBLISHED[0] + "\r\n" + PUBLISHED[1] + "\r\n" + DALIAN_GGA + "\n").encode()
LINES = [PUBLISHED[0].encode(), PUBLISHED[1].encode(), DALIAN_GGA.encode()]


def test_splitter_whole_stream_in_one_chunk():
    s = nmea.LineSplitter()
    assert s.feed(STREAM) == LINES
    assert s.discarded == 0


def test_splitter_any_chunking_gives_the_same_lines():
    for size in (1, 2, 3, 7, 13, 64, 81, 82, 83, 200):
        s = nmea.LineSplitter()
        got = []
        for i in range(0, len(STREAM), size):
            got.extend(s.feed(STREAM[i : i + size]))
        assert got == LINES, size
    for cut in range(len(STREAM)):  # every two-chunk split
        s = nmea.LineSplitter()
        assert s.feed(STREAM[:cut]) + s.feed(bytearray(STREAM[cut:])) == LINES, cut


def test_splitter_holds_a_partial_line_until_its_newline():
    s = nmea.LineSplitter()
    assert s.feed(STREAM[:30]) == []
    assert s.feed(None) == [] and s.feed(b"") == []
    assert s.feed(STREAM[30:]) == LINES


def test_splitter_discards_and_counts_overlong_garbage():
    s = nmea.LineSplitter()
    garbage = bytes(range(256)).replace(b"\n", b"") * 4  # no newline: one overlong run
    lines = s.feed(garbage[:100]) + s.feed(garbage[100:]) + s.feed(b"\n" + STREAM)
    assert lines == LINES
    assert s.discarded == 1
    assert s.feed(b"x" * 84 + b"\n" + b"y" * 84 + b"\r\n" + STREAM) == LINES
    assert s.discarded == 3
    assert len(s._buf) == nmea.MAX_LINE + 1  # the buffer never grew


def test_splitter_keeps_a_full_length_line_and_skips_empty_ones():
    s = nmea.LineSplitter()
    longest = b"$" + b"A" * 81
    assert s.feed(b"\n\r\n" + longest + b"\r\n\n") == [longest]
    assert s.discarded == 0


def test_splitter_output_feeds_the_parser_with_errors_counted():
    s = nmea.LineSplitter()
    noisy = b"\x00\xfe23519,A,48\r\n" + STREAM + b"$GPGGA,1*FF\r\n" + NO_FIX[1].encode() + b"\n"
    results = []
    for line in s.feed(noisy):
        try:
            results.append(nmea.parse(line)["sentence"])
        except nmea.NMEAError as exc:
            results.append(exc.reason)
    assert results == ["bad_char", "GGA", "RMC", "GGA", "bad_checksum", "no_fix"]
